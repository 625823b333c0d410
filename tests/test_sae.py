import pytest
import torch

from sae_lite import SaeLiteError
from sae_lite.core import loss
from sae_lite.core.config import TrainConfig
from sae_lite.core.rules.base import any_row, as_weights
from sae_lite.core.rules.topk import topk
from sae_lite.core.sae import SAE, SAEOutput, geometric_median


def test_topk_support_has_exactly_k_units_and_codes_match():
    pre = torch.randn(32, 100)
    for k in (1, 7, 99):
        sel = topk(pre, k)
        assert sel.support.sum(1).eq(k).all()
        assert torch.equal(sel.codes, torch.relu(pre) * sel.support)
        kept_min = torch.where(sel.support, sel.acts, torch.inf).min(1).values
        dropped_max = torch.where(sel.support, -torch.inf, sel.acts).max(1).values
        assert (kept_min >= dropped_max).all()


def test_bool_mask_helpers_equal_the_bool_operations():
    g = torch.Generator().manual_seed(0)
    x, mask = torch.randn(7, 12, generator=g), torch.rand(7, 12, generator=g) > 0.7
    for m, values in ((mask, x), (mask.T, x.T), (mask[:, ::3], x[:, ::3])):  # contiguous, transposed, strided
        assert torch.equal(values * as_weights(m, values), values * m)
        assert torch.equal(any_row(m), m.any(0))
    assert not any_row(torch.zeros(3, 4, dtype=torch.bool)).any()


@pytest.mark.parametrize("activation", ["topk", "abstopk"])
def test_loss_reports_the_latents_that_fired_and_the_l0(activation):
    torch.manual_seed(0)
    sae = SAE(d=8, n_latents=32, k=4, rule=activation)
    x = torch.randn(6, 8)
    terms = loss.loss_terms(sae, x, TrainConfig(k=4, n_latents=32, rule=activation), torch.zeros(32, dtype=torch.bool))
    on = sae(x).codes != 0
    assert 0 < int(on.any(0).sum()) < 32 and (activation == "topk" or (sae(x).codes < 0).any())
    assert torch.equal(terms.fired, on.any(0))
    assert terms.l0.item() == on.sum(1).float().mean().item()


def test_forward_returns_named_tuple_and_k_override():
    sae = SAE(d=8, n_latents=32, k=4)
    out = sae(torch.randn(5, 8))
    assert isinstance(out, SAEOutput) and out.x_hat.shape == (5, 8) and out.pre.shape == (5, 32)
    assert out.support.sum(1).eq(4).all()
    assert sae(torch.randn(5, 8), k=10).support.sum(1).eq(10).all()


def test_initialisation_unit_atoms_and_tied_encoder():
    sae = SAE(d=16, n_latents=64, k=4, seed=3)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(64))
    assert torch.equal(sae.W_enc, sae.W_dec)  # W_enc [N, d] is the decoder's transpose as a map
    assert torch.equal(SAE(16, 64, 4, seed=3).W_dec, sae.W_dec)


def test_decoder_gradient_projection_and_renormalisation():
    sae = SAE(d=8, n_latents=16, k=2)
    sae(torch.randn(10, 8)).x_hat.square().sum().backward()
    sae.project_decoder_grad()
    parallel = (sae.W_dec.grad * sae.W_dec).sum(1)
    assert parallel.abs().max() <= 1e-6 * sae.W_dec.grad.norm(dim=1).max()
    with torch.no_grad():
        sae.W_dec.mul_(3.0)
    sae.normalize_decoder()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(16))


def test_geometric_median_resists_outliers():
    x = torch.zeros(101, 2)
    x[:50, 0] = 1.0
    x[-1] = torch.tensor([1e6, 1e6])
    median = geometric_median(x)
    assert median.norm() < 1.0
    assert x.mean(0).norm() > 1e3


@pytest.mark.parametrize("kwargs", [dict(d=4, n_latents=8, k=0), dict(d=4, n_latents=8, k=8),
                                    dict(d=4, n_latents=0, k=1), dict(d=4, n_latents=8, k=2, rule="relu")])
def test_bad_arguments(kwargs):
    with pytest.raises(SaeLiteError):
        SAE(**kwargs)


def test_wrong_input_dimension():
    with pytest.raises(SaeLiteError, match="expected inputs of shape"):
        SAE(d=4, n_latents=8, k=2)(torch.randn(3, 5))
