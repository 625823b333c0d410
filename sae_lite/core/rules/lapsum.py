"""The LapSum soft top-k that SoftSAE selects with: Laplace-CDF weights that sum to a budget.

For activations a [B, N], a budget k_hat [B] and a scale ``temperature`` (SoftSAE's alpha), the
weights are p_j = F((a_j - t) / temperature), F the unit Laplace CDF, with the threshold t of each
row chosen so that sum_j p_j = k_hat (`soft_threshold`). They are differentiable in a and in k_hat.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: The cap on |z| in the Laplace tails (`laplace_pdf`): e^-80 / 2 ~ 9e-36, a weight that never reaches 0.
Z_CAP = 80.0


def laplace_cdf(z: Tensor) -> Tensor:
    """F(z) = e^z / 2 for z < 0, 1 - e^-z / 2 for z >= 0 (the CDF of a unit Laplace variable).

    Chosen by a 0/1 float step, lerp(tail, 1 - tail, [z >= 0]): the values and the gradient of
    ``torch.where(z < 0, tail, 1 - tail)`` bit for bit, without its bool mask (see
    `sae_lite.core.rules.base.as_weights`).
    """
    tail = laplace_pdf(z)  # e^-|z| / 2, the mass beyond |z|
    upper = torch.ge(z.detach(), 0, out=torch.empty_like(z, requires_grad=False))  # 1.0 where z >= 0
    return torch.lerp(tail, 1 - tail, upper)


def laplace_pdf(z: Tensor) -> Tensor:
    """f(z) = e^-|z| / 2, the derivative of `laplace_cdf`.

    |z| is capped at `Z_CAP` = 80 (e^-80 ~ 2e-35, still a normal float32): at a small temperature most
    |z| are huge, and an exp that underflows into subnormal numbers is slow on a CPU. So no weight is
    ever exactly 0 (`sae_lite.core.rules.softsae.soft` zeroes the capped ones).
    """
    return 0.5 * torch.exp(-z.abs().clamp_max(Z_CAP))


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
    bit, done in place in the three [B, N] tensors ``work`` (the bisection calls it at every iteration,
    and fresh [B, N] tensors each time would cost more than the arithmetic)."""
    z, upper, cdf = work
    torch.sub(acts, t[:, None], out=z).div_(temperature)
    torch.ge(z, 0, out=upper)
    tail = z.abs_().clamp_max_(Z_CAP).neg_().exp_().mul_(0.5)  # `laplace_pdf`
    return torch.lerp(tail, torch.neg(tail, out=cdf).add_(1), upper, out=cdf).sum(1)


def soft_weights(acts: Tensor, k_hat: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """The soft top-k weights p [B, N] of ``acts`` [B, N] at budgets ``k_hat`` [B], and the thresholds t [B]."""
    t = soft_threshold(acts, k_hat, temperature)
    return laplace_cdf((acts - t[:, None]) / temperature), t


def top_per_row(acts: Tensor, counts: Tensor) -> Tensor:
    """[B, N] bool: the ``counts[b]`` largest entries of each row b (``counts`` [B] integers)."""
    k_max = int(counts.max()) if counts.numel() else 0
    index = acts.topk(max(k_max, 1), dim=1, sorted=True).indices
    keep = torch.arange(index.shape[1], device=acts.device) < counts[:, None]
    return torch.zeros_like(acts, dtype=torch.bool).scatter_(1, index, keep)
