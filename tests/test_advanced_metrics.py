"""Measurements of chapters 7-8: signed-atom coverage, opposite atom pairs, budget tracking."""

import math

import numpy as np
import pytest
import torch

from sae_lite import SaeLiteError
from sae_lite.core.rules.softsae import SoftSAEConfig
from sae_lite.core.sae import SAE
from sae_lite.data import planted
from sae_lite.evaluation import metrics


def test_signed_atom_usage_counts_single_latents_and_opposite_pairs():
    atoms = torch.eye(4)[:3]                                     # three planted atoms in 4-d
    signed = torch.tensor([True, True, False])
    W = torch.stack([atoms[0], -atoms[0], -atoms[1], atoms[2], torch.tensor([0.0, 0.0, 0.0, 1.0])])
    usage = metrics.signed_atom_usage(W, atoms, signed)
    assert usage == {"signed_atoms": 2, "latents_per_signed_atom": 1.5, "one_latent": 0.5, "pair": 0.5,
                     "missed": 0.0}
    assert metrics.opposite_pairs(W) == 1
    with pytest.raises(SaeLiteError, match="signed"):
        metrics.signed_atom_usage(W, atoms, torch.zeros(3, dtype=torch.bool))


def test_signed_atoms_are_read_from_the_planted_codes():
    data = planted(n=2000, d=16, n_atoms=48, n_classes=2, signed_fraction=0.5, seed=3)
    signed = metrics.signed_atoms(data.codes)
    assert 0 < int(signed.sum()) <= data.meta["signed_atoms"]
    assert not metrics.signed_atoms(planted(n=500, d=16, n_atoms=48, n_classes=2).codes).any()


def test_rank_correlation():
    assert metrics.rank_correlation([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert metrics.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(metrics.rank_correlation([2, 2, 2], [1, 2, 3]))


def test_budgets_are_k_hat_for_soft_and_the_l0_otherwise():
    x = np.random.default_rng(0).standard_normal((30, 8)).astype(np.float32)
    soft = SAE(8, 40, 4, SoftSAEConfig(k_max=10)).eval()
    k_hat = metrics.budgets(soft, x)
    assert k_hat.shape == (30,) and (k_hat >= 1).all() and (k_hat <= 10).all()
    assert not torch.equal(k_hat, k_hat.floor())                 # the continuous budget, not the L0
    topk = SAE(8, 40, 4).eval()
    assert torch.equal(metrics.budgets(topk, x), (metrics.encode_all(topk, x)[0] != 0).sum(1).double())


def test_evaluate_reports_signed_usage_on_signed_planted_data():
    """A dictionary that holds one signed atom as a +/- pair and another as a single flipped latent:
    evaluate's counts equal loops over the cosines."""
    data = planted(n=600, d=16, n_atoms=48, n_classes=2, signed_fraction=0.5, seed=4)
    sae = SAE(16, 64, 4, "abstopk").eval()
    signed = (np.asarray(data.codes) < 0).any(0)
    first, second = np.flatnonzero(signed)[:2]
    with torch.no_grad():
        atoms = torch.as_tensor(data.atoms)
        sae.W_dec[0], sae.W_dec[1], sae.W_dec[2] = atoms[first], -atoms[first], -atoms[second]
    scores = metrics.evaluate(sae, data)
    W, A = sae.W_dec.detach().double().numpy(), np.asarray(data.atoms, float)
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    cos, self_cos = unit(A) @ unit(W).T, unit(W) @ unit(W).T
    plus = [(cos[a] > 0.9).sum() for a in np.flatnonzero(signed)]
    minus = [(cos[a] < -0.9).sum() for a in np.flatnonzero(signed)]
    assert scores["signed_atoms"] == signed.sum() >= 2
    assert scores["opposite_pairs"] == sum(self_cos[i, j] < -0.9 for i in range(64) for j in range(i + 1, 64)) >= 1
    assert scores["pair"] == pytest.approx(np.mean([p > 0 and m > 0 for p, m in zip(plus, minus)]))
    assert scores["one_latent"] == pytest.approx(np.mean([p + m == 1 for p, m in zip(plus, minus)]))
    assert scores["pair"] > 0 and scores["one_latent"] > 0
    assert scores["missed"] == pytest.approx(np.mean([p + m == 0 for p, m in zip(plus, minus)]))
    assert scores["latents_per_signed_atom"] == pytest.approx(np.mean(np.add(plus, minus)))


def test_chapter_figures_and_slider_rows():
    import matplotlib.pyplot as plt

    from sae_lite.book import plots
    from sae_lite.book import rows as book_rows

    rows = book_rows.soft_weight_rows(np.linspace(1, 0, 20), k_hats=(3, 7.5), temperatures=(0.01, 0.2))
    for a in (0.01, 0.2):
        total = sum(r["p"] for r in rows if r["temperature"] == a and r["method"] == "k_hat = 7.5")
        assert total == pytest.approx(7.5, abs=1e-6)
    prox_rows = book_rows.prox_rows(lams=(0.5,))
    assert {r["method"] for r in prox_rows} == {"relu", "jumprelu", "topk", "abstopk"}
    atoms = torch.eye(4)[:3]
    ax = plots.signed_usage(torch.stack([atoms[0], -atoms[0]]).numpy(), atoms.numpy(), np.array([1, 0, 0], bool))
    assert "1 of 1" in ax.get_title()
    n_active = np.repeat(np.arange(1, 6), 10)
    fig = plots.budget_vs_truth({"a": n_active + 0.5, "b": np.full(50, 3.0)}, n_active)
    assert "ρ = 1.00" in fig.axes[0].get_title() and "nan" in fig.axes[1].get_title()
    plt.close("all")
