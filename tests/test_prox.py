"""The unrolled-proximal view: each prox minimises its objective (checked by brute force)."""

import itertools
import math

import matplotlib
import pytest
import torch

from sae_lite import SaeLiteError
from sae_lite.book import plots
from sae_lite.core import prox
from sae_lite.core.rules.abstopk import abstopk
from sae_lite.core.rules.topk import topk

matplotlib.use("Agg")


def brute_force_scalar(u: float, name: str, lam: float) -> float:
    """argmin over a fine grid of z of 1/2 (z - u)^2 + lam R(z), for the separable rules."""
    grid = torch.cat([torch.zeros(1), torch.linspace(-4, 4, 80000)]).double()[:, None]  # 0 exactly
    values = prox.objective(grid, torch.full_like(grid, u), name, lam)
    return float(grid[values.argmin(), 0])


@pytest.mark.parametrize("name", ["relu", "jumprelu"])
def test_separable_prox_matches_brute_force(name):
    lam = 0.7
    u = torch.tensor([[-2.0, -0.3, 0.0, 0.5, 0.9, 1.25, 3.0]], dtype=torch.double)
    z = prox.prox(u, name, lam)
    for value, expected in zip(u[0].tolist(), z[0].tolist()):
        assert expected == pytest.approx(brute_force_scalar(value, name, lam), abs=2e-4)


def test_relu_is_a_shifted_relu_and_jumprelu_thresholds_at_sqrt_2_lam():
    u = torch.linspace(-3, 3, 61)[None]
    assert torch.equal(prox.prox(u, "relu", 0.5), torch.relu(u - 0.5))
    theta = math.sqrt(2 * 0.5)
    z = prox.prox(u, "jumprelu", 0.5)
    assert torch.equal(z[u > theta], u[u > theta]) and (z[u <= theta] == 0).all()


@pytest.mark.parametrize("name", ["topk", "abstopk"])
def test_k_sparse_prox_is_the_exact_projection(name):
    """Against every support of size <= k (and, for Top-k, only the non-negative part)."""
    u = torch.randn(5, 7, dtype=torch.double, generator=torch.Generator().manual_seed(0))
    k = 3
    z = prox.prox(u, name, k)
    assert torch.isfinite(prox.objective(z, u, name, k)).all()
    for row in range(u.shape[0]):
        best = math.inf
        for size in range(k + 1):
            for support in itertools.combinations(range(7), size):
                candidate = torch.zeros(1, 7, dtype=torch.double)
                values = u[row, list(support)]
                candidate[0, list(support)] = values.clamp_min(0) if name == "topk" else values
                best = min(best, float(prox.objective(candidate, u[row:row + 1], name, k)))
        assert float(prox.objective(z[row:row + 1], u[row:row + 1], name, k)) == pytest.approx(best)


def test_the_k_sparse_proxes_are_the_sae_selection_rules():
    u = torch.randn(4, 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(prox.prox(u, "topk", 5), topk(u, 5).codes)
    assert torch.equal(prox.prox(u, "abstopk", 5), abstopk(u, 5).codes)
    assert (prox.prox(u, "abstopk", 5) < 0).any() and (prox.prox(u, "topk", 5) >= 0).all()


def test_regulariser_is_infinite_outside_the_constraint():
    z = torch.tensor([[1.0, -1.0, 0.0], [1.0, 1.0, 1.0]])
    assert prox.regulariser(z, "topk", 2).isinf().all()              # a negative entry; too many entries
    assert prox.regulariser(z, "abstopk", 2).tolist() == [0.0, math.inf]
    assert prox.regulariser(z, "relu", 0.5).tolist() == [math.inf, 1.5]


def test_scalar_maps():
    u = torch.tensor([-2.0, -0.5, 0.5, 2.0])
    assert prox.scalar_map(u, "topk", tau=1.0).tolist() == [0.0, 0.0, 0.0, 2.0]
    assert prox.scalar_map(u, "abstopk", tau=1.0).tolist() == [-2.0, 0.0, 0.0, 2.0]
    assert prox.scalar_map(u, "relu", lam=0.5).tolist() == [0.0, 0.0, 0.0, 1.5]


@pytest.mark.parametrize("name, param, message", [
    ("l2", 1.0, "unknown prox"), ("relu", -1.0, "lam"), ("jumprelu", math.nan, "lam"),
    ("topk", 0, "integer"), ("abstopk", 2.5, "integer"),
])
def test_bad_input(name, param, message):
    with pytest.raises(SaeLiteError, match=message):
        prox.prox(torch.zeros(1, 4), name, param)


def test_plot_prox_maps_draws_four_panels():
    import matplotlib.pyplot as plt

    fig = plots.prox_maps(lam=0.5, tau=1.0)
    assert len(fig.axes) == 4
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["ReLU", "JumpReLU", "Top-k", "AbsTopK"]
    plt.close(fig)
