"""The unrolled-proximal view of an SAE encoder (Zhu, Khalili, Zhu 2025).

One proximal-gradient step from z = 0, with unit step, on  1/2 ||x - D z - b||^2 + lam R(z)  is

    z = prox_{lam R}(u),   u = D^T (x - b)   [B, N]   (an SAE's pre-activations, bias aside)

and each activation is the prox of one regulariser R (``u`` [B, N] -> ``z`` [B, N]):

    relu       R = ||z||_1 + [z >= 0]         z = max(u - lam, 0)            ReLU with bias -lam
    jumprelu   R = ||z||_0 + [z >= 0]         z = u * 1[u > sqrt(2 lam)]     JumpReLU
    topk       R = [||z||_0 <= k, z >= 0]     z = the k largest max(u, 0)    Top-k
    abstopk    R = [||z||_0 <= k]             z = the k largest |u|, signed  AbsTopK

([.] is 0 where the condition holds, +inf elsewhere.) `objective` is the function each prox
minimises, so the four can be checked against brute force.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from sae_lite.core.rules.abstopk import abstopk
from sae_lite.core.rules.topk import topk
from sae_lite.errors import SaeLiteError


def prox_relu(u: Tensor, lam: float) -> Tensor:
    """prox of lam (||z||_1 + [z >= 0]): soft thresholding restricted to z >= 0, i.e. ReLU(u - lam)."""
    return torch.relu(u - lam)


def prox_jumprelu(u: Tensor, lam: float) -> Tensor:
    """prox of lam (||z||_0 + [z >= 0]): keep u where u > sqrt(2 lam) (JumpReLU), else 0."""
    return u * (u > math.sqrt(2 * lam))


def prox_topk(u: Tensor, k: int) -> Tensor:
    """Projection onto {||z||_0 <= k, z >= 0} of each row of ``u`` [B, N]: Top-k of ReLU(u)."""
    return topk(u, k).codes


def prox_abstopk(u: Tensor, k: int) -> Tensor:
    """Projection onto {||z||_0 <= k} of each row of ``u`` [B, N]: the k largest |u|, sign kept."""
    return abstopk(u, k).codes


class Prox(NamedTuple):
    """One regulariser's prox, what its parameter is, lam R(z) [B] of rows z [B, N] (+inf off the
    constraint), and, for a budget, which u survive against the k-th largest other coordinate tau."""

    fn: Callable[[Tensor, float], Tensor]
    param: str                                          # "lam" (a weight) or "k" (a budget)
    regulariser: Callable[[Tensor, float], Tensor]
    survives: Callable[[Tensor, float], Tensor] | None = None


def _nonneg(z: Tensor, value: Tensor) -> Tensor:
    return torch.where((z >= 0).all(1), value, torch.full_like(value, math.inf))


def _at_most(z: Tensor, k: float) -> Tensor:
    return torch.where((z != 0).sum(1) <= k, 0.0, math.inf).to(z.dtype)


PROX: dict[str, Prox] = {
    "relu": Prox(prox_relu, "lam", lambda z, lam: _nonneg(z, lam * z.sum(1))),
    "jumprelu": Prox(prox_jumprelu, "lam", lambda z, lam: _nonneg(z, lam * (z != 0).sum(1).to(z.dtype))),
    "topk": Prox(prox_topk, "k", lambda z, k: _nonneg(z, _at_most(z, k)), lambda u, tau: u >= tau),
    "abstopk": Prox(prox_abstopk, "k", _at_most, lambda u, tau: u.abs() >= tau),
}


def regulariser(z: Tensor, name: str, param: float) -> Tensor:
    """lam R(z) of each row of ``z`` [B, N] for the prox ``name`` (+inf where a constraint fails)."""
    check(name, param)
    return PROX[name].regulariser(z, param)


def objective(z: Tensor, u: Tensor, name: str, param: float) -> Tensor:
    """1/2 ||z - u||^2 + lam R(z) per row [B]: the function ``prox(name)(u)`` minimises."""
    return 0.5 * (z - u).square().sum(1) + regulariser(z, name, param)


def check(name: str, param: float) -> None:
    """Raise unless ``name`` is a known prox and ``param`` fits it (lam >= 0, or an integer k >= 1)."""
    if name not in PROX:
        raise SaeLiteError(f"unknown prox {name!r}; use one of {', '.join(PROX)}")
    if PROX[name].param == "lam" and not (param >= 0 and math.isfinite(param)):
        raise SaeLiteError(f"the weight lam of {name} must be a finite number >= 0, got {param}")
    if PROX[name].param == "k" and not (float(param).is_integer() and param >= 1):
        raise SaeLiteError(f"the budget k of {name} must be an integer >= 1, got {param}")


def prox(u: Tensor, name: str, param: float) -> Tensor:
    """The prox ``name`` with its parameter (lam or k) applied to ``u`` [B, N]."""
    check(name, param)
    return PROX[name].fn(u, int(param) if PROX[name].param == "k" else float(param))


def scalar_map(u: Tensor, name: str, lam: float = 0.5, tau: float = 1.0) -> Tensor:
    """The prox ``name`` as a map of one coordinate u (any shape), the others held fixed.

    For a weight (``relu``, ``jumprelu``) the map is exact with weight ``lam``. For a budget (``topk``,
    ``abstopk``) a coordinate survives when it beats the k-th largest of the *other* coordinates;
    ``tau`` > 0 stands for that value (it depends on the input, not on a learned weight).
    """
    check(name, 1)
    if PROX[name].survives is None:
        return prox(u.reshape(1, -1), name, lam).reshape(u.shape)
    if not tau > 0:
        raise SaeLiteError(f"tau (the k-th largest other coordinate) must be > 0, got {tau}")
    return u * PROX[name].survives(u, tau)
