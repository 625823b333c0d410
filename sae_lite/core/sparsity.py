"""Selection rules: which latents an input keeps, each a small function of the pre-activations.

Every rule takes ``pre`` [B, N] and a budget ``k`` (plus, for some, keyword options) and returns a
`Selection`: ``acts`` [B, N] (the activations *before* selection: ReLU(pre), or |pre| for signed
rules), ``support`` [B, N] bool (the units the rule kept) and ``codes`` [B, N] (what the decoder sees).
The penalties in `sae_lite.core.penalties` act on ``acts`` and ``support``.

    topk       the k largest ReLU(pre) of each row (Gao et al. 2024)
    abstopk    the k largest |pre| of each row, sign kept (Zhu, Khalili, Zhu 2025)
    batchtopk  the B*k largest ReLU(pre) of the whole batch; at inference ReLU(pre) > a global
               threshold (Bussmann et al. 2024)
    soft       SoftSAE as its authors built it (St0pien/SoftSAE, soft_sae_clip/soft_sae.py): a LapSum
               soft top-k with a per-input budget k_hat; in the hard phase, Top-floor(k_hat) without gradient
    soft-ours  our earlier SoftSAE variant: the same soft top-k, but its hard phase passes the soft
               weights' gradient straight through (kept for comparison, chapter 8)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from sae_lite.errors import SaeLiteError


class Selection(NamedTuple):
    acts: Tensor     # [B, N] activations before selection (non-negative: ReLU(pre) or |pre|)
    support: Tensor  # [B, N] bool, the units kept
    codes: Tensor    # [B, N] the sparse code passed to the decoder


def support_of(index: Tensor, like: Tensor) -> Tensor:
    """The [B, N] boolean mask with True at ``index`` [B, k] in each row."""
    return torch.zeros_like(like, dtype=torch.bool).scatter_(1, index, True)


def as_weights(mask: Tensor, like: Tensor) -> Tensor:
    """A bool ``mask`` as 0/1 in ``like``'s dtype, so that ``like * as_weights(mask, like)`` equals
    ``like * mask`` bit for bit.

    The cast goes through uint8: PyTorch's CPU kernels that read bool tensors are not vectorised,
    and on a [256, 512] batch ``like * mask`` costs about 10 times ``like * as_weights(mask, like)``.
    """
    return mask.view(torch.uint8).to(like.dtype)


def any_row(mask: Tensor) -> Tensor:
    """[B, N] bool -> [N] bool: True where any row is True (``mask.any(0)``, without the slow bool kernel)."""
    return mask.view(torch.uint8).amax(dim=0).bool()


def topk(pre: Tensor, k: int) -> Selection:
    """Top-k (Gao et al. 2024): keep the k largest of ReLU(pre) in each row.

    Exactly k units are in the support of every row; a kept unit whose ReLU is 0 codes 0.
    """
    acts = torch.relu(pre)
    index = acts.topk(k, dim=1, sorted=False).indices
    support = support_of(index, acts)
    return Selection(acts, support, acts * as_weights(support, acts))


def abstopk(pre: Tensor, k: int) -> Selection:
    """AbsTopK (Zhu, Khalili, Zhu 2025): keep the k largest |pre| of each row with their sign, no ReLU.

    ``acts`` = |pre| (what the penalties see); ``codes`` = pre on the support, so they can be negative.
    """
    acts = pre.abs()
    support = support_of(acts.topk(k, dim=1, sorted=False).indices, acts)
    return Selection(acts, support, pre * as_weights(support, pre))


def batchtopk(pre: Tensor, k: int, threshold: float | Tensor | None = None) -> Selection:
    """BatchTopK (Bussmann et al. 2024): the B*k largest ReLU(pre) of the whole batch [B, N].

    Rows share the budget, so one input may keep more than k units and another fewer (mean k).
    With a ``threshold`` (inference) every unit whose ReLU(pre) exceeds it is kept instead, so an
    input's code no longer depends on the rest of its batch; see `batch_threshold`.
    """
    acts = torch.relu(pre)
    if threshold is not None:
        support = acts > threshold
    else:
        flat = acts.flatten()
        index = flat.topk(min(k * pre.shape[0], flat.numel()), sorted=False).indices
        support = torch.zeros_like(flat, dtype=torch.bool).scatter_(0, index, True).view_as(acts)
    return Selection(acts, support, acts * as_weights(support, acts))


def batch_threshold(selection: Selection) -> Tensor | None:
    """The smallest positive activation BatchTopK kept in this batch (a scalar), None if none is positive.

    Averaged over training batches it is the inference threshold of Bussmann et al. (2024).
    """
    kept = selection.acts[selection.support & (selection.acts > 0)]
    return kept.min().detach() if kept.numel() else None


def laplace_cdf(z: Tensor) -> Tensor:
    """F(z) = e^z / 2 for z < 0, 1 - e^-z / 2 for z >= 0 (the CDF of a unit Laplace variable).

    Chosen by a 0/1 float step, lerp(tail, 1 - tail, [z >= 0]): the values and the gradient of
    ``torch.where(z < 0, tail, 1 - tail)`` bit for bit, without its bool mask (see `as_weights`), which
    made this function about 8 times slower on a [256, 512] batch. The bisection uses `cdf_row_sums`.
    """
    tail = laplace_pdf(z)  # e^-|z| / 2, the mass beyond |z|
    upper = torch.ge(z.detach(), 0, out=torch.empty_like(z, requires_grad=False))  # 1.0 where z >= 0
    return torch.lerp(tail, 1 - tail, upper)


def laplace_pdf(z: Tensor) -> Tensor:
    """f(z) = e^-|z| / 2, the derivative of `laplace_cdf`.

    |z| is capped at 80 (e^-80 ~ 2e-35, still a normal float32): at a small temperature most |z| are
    huge, and an exp that underflows into subnormal numbers is many times slower on a CPU.
    """
    return 0.5 * torch.exp(-z.abs().clamp_max(80.0))


def soft_threshold(acts: Tensor, k_hat: Tensor, temperature: float, iters: int = 24) -> Tensor:
    """The threshold t [B] with sum_j F((acts_bj - t_b) / temperature) = k_hat_b in every row.

    Vectorised bisection (no gradient) on a bracket that provably holds the root when
    1 <= k_hat <= N - 1, then one Newton step taken with autograd on: at the root that step's
    derivative is the implicit-function gradient dt/d(k_hat) = -temperature / sum_j f_j (f = `laplace_pdf`
    at (acts_j - t) / temperature), and likewise in acts.
    """
    with torch.no_grad():
        a, target = acts.detach(), k_hat.detach().expand(acts.shape[0])
        margin = temperature * (math.log(acts.shape[1]) + 1)  # beyond it the N tails sum to < 1/(2e)
        low, high = a.min(1).values - margin, a.max(1).values + margin
        work = tuple(torch.empty_like(a) for _ in range(3))
        for _ in range(iters):
            mid = (low + high) / 2
            above = cdf_row_sums(a, mid, temperature, work) > target  # t is too low
            low, high = torch.where(above, mid, low), torch.where(above, high, mid)
        t0 = (low + high) / 2
    z = (acts - t0[:, None]) / temperature
    excess = laplace_cdf(z).sum(1) - k_hat
    slope = (laplace_pdf(z).sum(1) / temperature).clamp_min(torch.finfo(acts.dtype).tiny)
    return t0 + excess / slope


def cdf_row_sums(acts: Tensor, t: Tensor, temperature: float, work: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """sum_j `laplace_cdf`((acts_bj - t_b) / temperature) [B], without gradient: the same arithmetic, bit for
    bit, done in place in the three [B, N] tensors ``work``. The bisection calls it 24 times a step; on our
    CPU it takes 0.55 ms on [256, 512] where the fresh tensors of `laplace_cdf` take 0.67 ms at
    temperature 1 and 3.3 ms at 0.05 or below."""
    z, upper, cdf = work
    torch.sub(acts, t[:, None], out=z).div_(temperature)
    torch.ge(z, 0, out=upper)
    tail = z.abs_().clamp_max_(80.0).neg_().exp_().mul_(0.5)  # `laplace_pdf`
    return torch.lerp(tail, torch.neg(tail, out=cdf).add_(1), upper, out=cdf).sum(1)


def top_per_row(acts: Tensor, counts: Tensor) -> Tensor:
    """[B, N] bool: the ``counts[b]`` largest entries of each row b (``counts`` [B] integers)."""
    k_max = int(counts.max()) if counts.numel() else 0
    index = acts.topk(max(k_max, 1), dim=1, sorted=True).indices
    keep = torch.arange(index.shape[1], device=acts.device) < counts[:, None]
    return torch.zeros_like(acts, dtype=torch.bool).scatter_(1, index, keep)


def soft(pre: Tensor, k: int | Tensor, temperature: float = 1e-4, hard: bool = False) -> Selection:
    """SoftSAE's selection as in St0pien/SoftSAE ``soft_sae_clip/soft_sae.py`` (``SoftTopKSAE.encode``).

    ``k`` [B] (or one number) is the per-input budget k_hat. Soft (``use_hard_topk=False`` there):
    codes = ReLU(pre) * p with p the LapSum soft top-k weights (``lapsum.topk.soft_topk``): Laplace-CDF
    weights of scale ``temperature`` (their alpha) that sum to k_hat in every row (`soft_threshold`);
    differentiable in the activations and in k_hat. The support is {a > t} (p > 1/2).
    Hard (their last ``hard_topk_steps`` and inference): k_hat truncated to an integer, the top-k_hat
    units of each row, all of it under ``torch.no_grad()`` as in their code, so no gradient reaches the
    encoder or k_hat through the codes (the decoder and b_pre still learn from them).
    """
    acts = torch.relu(pre)
    budget = torch.as_tensor(k, dtype=acts.dtype, device=acts.device).expand(acts.shape[0])
    if hard:
        with torch.no_grad():
            support = top_per_row(acts, budget.long())  # .long() truncates, as their estimate_k(x).long()
            return Selection(acts, support, acts * as_weights(support, acts))
    t = soft_threshold(acts, budget, temperature)
    p = laplace_cdf((acts - t[:, None]) / temperature)
    return Selection(acts, acts > t[:, None], acts * p)


def soft_ours(pre: Tensor, k: int | Tensor, temperature: float = 0.05, hard: bool = False) -> Selection:
    """Our earlier SoftSAE selection (rule ``soft-ours``), kept to compare with `soft` (chapter 8).

    Soft: as `soft`. Hard: the top-floor(k_b) units of each row; with gradients on, the codes carry
    the soft weights' gradient (straight-through), so k_hat still learns in the hard phase; the
    authors' code (`soft`) computes the hard codes without gradient instead.
    """
    acts = torch.relu(pre)
    budget = torch.as_tensor(k, dtype=acts.dtype, device=acts.device).expand(acts.shape[0])
    need_soft = not hard or (torch.is_grad_enabled() and (pre.requires_grad or budget.requires_grad))
    if need_soft:
        t = soft_threshold(acts, budget, temperature)
        p = laplace_cdf((acts - t[:, None]) / temperature)
    if not hard:
        return Selection(acts, acts > t[:, None], acts * p)
    support = top_per_row(acts, budget.detach().floor().long())
    weights = as_weights(support, acts) + (p - p.detach() if need_soft else 0.0)
    return Selection(acts, support, acts * weights)


SELECTIONS: dict[str, Callable[..., Selection]] = {
    "topk": topk, "abstopk": abstopk, "batchtopk": batchtopk, "soft": soft, "soft-ours": soft_ours}
SIGNED = frozenset({"abstopk"})  # rules whose codes may be negative (acts = |pre|)
BUDGETED = frozenset({"soft", "soft-ours"})  # rules with a per-input budget k_hat (SoftSAE)


def get(name: str) -> Callable[..., Selection]:
    """The selection rule called ``name``."""
    if name not in SELECTIONS:
        raise SaeLiteError(f"unknown activation {name!r}; choose one of {', '.join(sorted(SELECTIONS))}")
    return SELECTIONS[name]


def has_budget(name: str) -> bool:
    """True for a SoftSAE rule, whose SAE estimates a per-input budget k_hat."""
    get(name)
    return name in BUDGETED


def is_signed(name: str) -> bool:
    """True for a selection rule whose codes may be negative."""
    get(name)
    return name in SIGNED


def check_k(k: int, n_latents: int) -> None:
    """Raise unless 0 < k < n_latents."""
    if not isinstance(k, int) or not 0 < k < n_latents:
        raise SaeLiteError(f"k must be an integer with 0 < k < n_latents={n_latents}, got {k!r}")


def check_soft(k: int, k_max: int, temperature: float, n_latents: int) -> None:
    """Raise unless k <= k_max < n_latents and temperature > 0 (SoftSAE's settings)."""
    if not isinstance(k_max, int) or not k <= k_max < n_latents:
        raise SaeLiteError(f"k_max must be an integer with k={k} <= k_max < n_latents={n_latents}, got {k_max!r}; "
                           "raise k_max or lower k")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise SaeLiteError(f"the soft top-k temperature must be a finite number > 0, got {temperature}")
