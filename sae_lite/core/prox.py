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

import torch
from torch import Tensor

from sae_lite.core import sparsity
from sae_lite.errors import SaeLiteError


def prox_relu(u: Tensor, lam: float) -> Tensor:
    """prox of lam (||z||_1 + [z >= 0]): soft thresholding restricted to z >= 0, i.e. ReLU(u - lam)."""
    return torch.relu(u - lam)


def prox_jumprelu(u: Tensor, lam: float) -> Tensor:
    """prox of lam (||z||_0 + [z >= 0]): keep u where u > sqrt(2 lam) (JumpReLU), else 0."""
    return u * (u > math.sqrt(2 * lam))


def prox_topk(u: Tensor, k: int) -> Tensor:
    """Projection onto {||z||_0 <= k, z >= 0} of each row of ``u`` [B, N]: Top-k of ReLU(u)."""
    return sparsity.topk(u, k).codes


def prox_abstopk(u: Tensor, k: int) -> Tensor:
    """Projection onto {||z||_0 <= k} of each row of ``u`` [B, N]: the k largest |u|, sign kept."""
    return sparsity.abstopk(u, k).codes


#: name -> (prox, what its parameter is)
PROX: dict[str, tuple[Callable[[Tensor, float], Tensor], str]] = {
    "relu": (prox_relu, "lam"), "jumprelu": (prox_jumprelu, "lam"),
    "topk": (prox_topk, "k"), "abstopk": (prox_abstopk, "k"),
}


def regulariser(z: Tensor, name: str, param: float) -> Tensor:
    """lam R(z) of each row of ``z`` [B, N] for the prox ``name`` (+inf where a constraint fails)."""
    check(name, param)
    inf = torch.full(z.shape[:1], math.inf, dtype=z.dtype)
    nonneg, count = (z >= 0).all(1), (z != 0).sum(1)
    if name == "relu":
        return torch.where(nonneg, param * z.sum(1), inf)
    if name == "jumprelu":
        return torch.where(nonneg, param * count.to(z.dtype), inf)
    fits = count <= param if name == "abstopk" else (count <= param) & nonneg
    return torch.where(fits, torch.zeros_like(inf), inf)


def objective(z: Tensor, u: Tensor, name: str, param: float) -> Tensor:
    """1/2 ||z - u||^2 + lam R(z) per row [B]: the function ``prox(name)(u)`` minimises."""
    return 0.5 * (z - u).square().sum(1) + regulariser(z, name, param)


def check(name: str, param: float) -> None:
    """Raise unless ``name`` is a known prox and ``param`` fits it (lam >= 0, or an integer k >= 1)."""
    if name not in PROX:
        raise SaeLiteError(f"unknown prox {name!r}; use one of {', '.join(PROX)}")
    if PROX[name][1] == "lam" and not (param >= 0 and math.isfinite(param)):
        raise SaeLiteError(f"the weight lam of {name} must be a finite number >= 0, got {param}")
    if PROX[name][1] == "k" and not (float(param).is_integer() and param >= 1):
        raise SaeLiteError(f"the budget k of {name} must be an integer >= 1, got {param}")


def prox(u: Tensor, name: str, param: float) -> Tensor:
    """The prox ``name`` with its parameter (lam or k) applied to ``u`` [B, N]."""
    check(name, param)
    fn, kind = PROX[name]
    return fn(u, int(param) if kind == "k" else float(param))


def scalar_map(u: Tensor, name: str, lam: float = 0.5, tau: float = 1.0) -> Tensor:
    """The prox ``name`` as a map of one coordinate u (any shape), the others held fixed.

    For ``relu`` and ``jumprelu`` the map is exact with weight ``lam``. For ``topk`` and
    ``abstopk`` a coordinate survives when it beats the k-th largest of the *other* coordinates;
    ``tau`` > 0 stands for that value (it depends on the input, not on a learned weight).
    """
    if name in ("relu", "jumprelu"):
        return prox(u.reshape(1, -1), name, lam).reshape(u.shape)
    check(name, 1)
    if not tau > 0:
        raise SaeLiteError(f"tau (the k-th largest other coordinate) must be > 0, got {tau}")
    return u * (u >= tau) if name == "topk" else u * (u.abs() >= tau)
