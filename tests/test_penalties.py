import math

import pytest
import torch

from sae_lite.core import penalties
from sae_lite.core.penalties import auxk, batch_active, l1_l2_ratio, off_support_l1
from sae_lite.core.rules.topk import topk

ACTS = torch.tensor([[3.0, 1.0, 0.0, 2.0],
                     [0.5, 4.0, 0.0, 0.0]])
SUPPORT = torch.tensor([[True, False, False, False],
                        [False, True, False, False]])  # batch-active: units 0 and 1


def test_batch_active():
    assert batch_active(SUPPORT).tolist() == [True, True, False, False]


def test_off_support_l1_by_hand():
    # masked: off-support entries in units {0, 1}: row 0 -> 1.0 (unit 1), row 1 -> 0.5 (unit 0)
    assert off_support_l1(ACTS, SUPPORT).item() == pytest.approx((1.0 + 0.5) / 2)
    # unmasked: also unit 3 of row 0 (2.0)
    assert off_support_l1(ACTS, SUPPORT, masked=False).item() == pytest.approx((1.0 + 2.0 + 0.5) / 2)


def test_ratio_by_hand():
    masked = ((3 + 1) / math.hypot(3, 1) + (0.5 + 4) / math.hypot(0.5, 4)) / 2
    unmasked = ((3 + 1 + 2) / math.sqrt(9 + 1 + 4) + (0.5 + 4) / math.hypot(0.5, 4)) / 2
    assert l1_l2_ratio(ACTS, SUPPORT).item() == pytest.approx(masked, rel=1e-6)
    assert l1_l2_ratio(ACTS, SUPPORT, masked=False).item() == pytest.approx(unmasked, rel=1e-6)


def test_ratio_is_scale_invariant():
    acts = torch.rand(16, 50)
    sel = topk(acts, 5)
    base = l1_l2_ratio(sel.acts, sel.support)
    for scale in (1e-3, 0.5, 7.0, 1e3):
        assert l1_l2_ratio(sel.acts * scale, sel.support).item() == pytest.approx(base.item(), rel=1e-5)


@pytest.mark.parametrize("penalty", [off_support_l1, l1_l2_ratio])
def test_mask_blocks_gradient_outside_batch_active_set(penalty):
    torch.manual_seed(0)
    pre = torch.randn(8, 40, requires_grad=True)
    sel = topk(pre, 3)
    outside = ~batch_active(sel.support)
    assert outside.any()
    penalty(sel.acts, sel.support, masked=True).backward()
    assert torch.all(pre.grad[:, outside] == 0)
    pre.grad = None
    sel = topk(pre, 3)
    penalty(sel.acts, sel.support, masked=False).backward()
    positive_outside = (sel.acts[:, outside] > 0)
    assert torch.all(pre.grad[:, outside][positive_outside] != 0)


@pytest.mark.parametrize("penalty", [off_support_l1, l1_l2_ratio])
@pytest.mark.parametrize("masked", [True, False])
def test_no_nan_on_degenerate_inputs(penalty, masked):
    cases = [torch.zeros(4, 10), -torch.ones(4, 10), torch.randn(4, 10)]
    for pre in cases:
        pre = pre.clone().requires_grad_(True)
        for k in (1, 9):  # k = N - 1 too
            sel = topk(pre, k)
            value = penalty(sel.acts, sel.support, masked)
            value.backward()
            assert torch.isfinite(value) and torch.isfinite(pre.grad).all()
            pre.grad = None


def test_ratio_of_all_zero_sample_is_zero():
    acts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    support = torch.tensor([[True, False, False], [True, True, False]])
    assert l1_l2_ratio(acts, support).item() == pytest.approx(math.sqrt(2) / 2, rel=1e-6)


def test_auxk_uses_only_dead_latents_and_is_zero_without_them():
    torch.manual_seed(0)
    pre = torch.randn(6, 12, requires_grad=True)
    W = torch.nn.functional.normalize(torch.randn(12, 5), dim=1)
    residual = torch.randn(6, 5)
    assert auxk(pre, residual, W, torch.zeros(12, dtype=torch.bool), 3).item() == 0
    dead = torch.zeros(12, dtype=torch.bool)
    dead[[2, 7]] = True
    loss = auxk(pre, residual, W, dead, 3)
    loss.backward()
    assert loss.item() == pytest.approx(auxk_by_loop(pre, residual, W, [2, 7], 3), rel=1e-6)
    alive = ~dead
    assert torch.all(pre.grad[:, alive] == 0) and pre.grad[:, dead].abs().sum() > 0
    dead[[0, 4, 9]] = True                    # five dead latents, two of them per input (k_aux = 2)
    for signed in (False, True):
        assert auxk(pre, residual, W, dead, 2, signed=signed).item() == pytest.approx(
            auxk_by_loop(pre, residual, W, [0, 2, 4, 7, 9], 2, signed), rel=1e-6)


def auxk_by_loop(pre, residual, W, dead: list[int], k_aux: int, signed: bool = False) -> float:
    """AuxK written out: per input, the k_aux dead latents with the largest ReLU(pre) (signed: |pre|, sign
    kept) reconstruct the residual; the squared error over the residual's total variance."""
    pre, residual, W = pre.detach().double(), residual.double(), W.double()
    error = 0.0
    for b in range(pre.shape[0]):
        score = {j: (abs(pre[b, j]) if signed else max(pre[b, j], 0.0)) for j in dead}
        chosen = sorted(dead, key=lambda j: -score[j])[:k_aux]
        estimate = sum((pre[b, j] if signed else score[j]) * W[j] for j in chosen)
        error += float((estimate - residual[b]).square().sum())
    return error / float((residual - residual.mean(0)).square().sum())


def test_registry_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown penalty"):
        penalties.get("l2")
