"""Sparsity penalties on the activations *before* selection ("Beyond the Hard Budget", 2026).

Every penalty has the signature ``penalty(acts, support, masked=True) -> scalar Tensor``:
``acts`` [B, N] non-negative activations before selection, ``support`` [B, N] bool (kept units).
With ``masked=True`` the sums run over the batch-active set A (units kept for at least one input
of the batch); ``masked=False`` is the ablation that penalises all N units.

    off-support L1 = (1/B) sum_b sum_{j in A} (1 - support_bj) acts_bj
    L1/L2 ratio    = (1/B) sum_b ||acts_{b,A}||_1 / (||acts_{b,A}||_2 + eps)

AuxK (Gao et al. 2024), which revives dead latents, needs the residual and the decoder and so has
its own signature: `auxk`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sae_lite.core.rules.base import any_row, as_weights
from sae_lite.errors import SaeLiteError

EPS = 1e-8


def batch_active(support: Tensor) -> Tensor:
    """[B, N] bool -> [N] bool: units kept for at least one input of the batch."""
    return any_row(support)


def _restrict(acts: Tensor, support: Tensor, masked: bool) -> Tensor:
    """Zero the units outside the batch-active set (a multiplicative mask: no gradient reaches them)."""
    return acts * as_weights(batch_active(support), acts) if masked else acts


def off_support_l1(acts: Tensor, support: Tensor, masked: bool = True) -> Tensor:
    """L1 of the activations the selection rule dropped, averaged over the batch."""
    return (_restrict(acts, support, masked) * as_weights(~support, acts)).sum() / acts.shape[0]


def l1_l2_ratio(acts: Tensor, support: Tensor, masked: bool = True) -> Tensor:
    """Mean over inputs of ||a||_1 / (||a||_2 + eps): scale-invariant, small when mass is concentrated.

    An input whose (restricted) activations are all zero adds 0, with a zero gradient.
    """
    a = _restrict(acts, support, masked)
    l1 = a.abs().sum(dim=1)
    squares = a.square().sum(dim=1)
    l2 = squares.clamp_min(EPS * EPS).sqrt()  # clamp keeps the gradient finite at a = 0
    return torch.where(squares > 0, l1 / (l2 + EPS), torch.zeros_like(l1)).mean()


def no_penalty(acts: Tensor, support: Tensor, masked: bool = True) -> Tensor:
    """The baseline: zero."""
    return acts.new_zeros(())


PENALTIES: dict[str, Callable[..., Tensor]] = {
    "none": no_penalty,
    "offsupport": off_support_l1,
    "ratio": l1_l2_ratio,
}

#: Penalties that are defined for signed rules such as AbsTopK, whose ``acts`` are |pre|: they read
#: only the magnitudes in ``acts`` and the support. A penalty that reads the sign of the codes or of
#: pre (e.g. one that charges only positive pre-activations) must stay out; training it with a
#: signed rule is refused before any work.
SIGNED_OK = frozenset({"none", "offsupport", "ratio"})


def get(name: str) -> Callable[..., Tensor]:
    """The penalty called ``name``."""
    if name not in PENALTIES:
        raise SaeLiteError(f"unknown penalty {name!r}; choose one of {', '.join(PENALTIES)}")
    return PENALTIES[name]


def accepts_signed(name: str) -> bool:
    """True if the penalty ``name`` may train a signed selection rule (see `SIGNED_OK`)."""
    get(name)
    return name in SIGNED_OK


def auxk(pre: Tensor, residual: Tensor, W_dec: Tensor, dead: Tensor, k_aux: int, signed: bool = False) -> Tensor:
    """AuxK loss: how well the top-``k_aux`` *dead* latents reconstruct the residual.

    Args:
        pre: [B, N] pre-activations.
        residual: [B, d] x - x_hat (treated as a constant target).
        W_dec: [N, d] decoder atoms.
        dead: [N] bool, latents that have not fired for a while.
        k_aux: how many dead latents each input may use (capped by the number of dead latents).
        signed: pick the dead latents by |pre| and keep the sign (for AbsTopK), instead of ReLU(pre).

    Returns the residual reconstruction error normalised by the residual's variance; 0 when no
    latent is dead.
    """
    dead_cols = dead.nonzero().flatten()
    if len(dead_cols) == 0:
        return pre.new_zeros(())
    pre_dead = pre.index_select(1, dead_cols)  # [B, D]: the dead latents' pre-activations
    m = min(k_aux, len(dead_cols))
    if signed:
        local = pre_dead.abs().topk(m, dim=1, sorted=False).indices
        values = pre_dead.gather(1, local)
    else:
        values, local = torch.relu(pre_dead).topk(m, dim=1, sorted=False)
    residual_hat = torch.zeros_like(pre).scatter(1, dead_cols[local], values) @ W_dec
    target = residual.detach()
    variance = (target - target.mean(0)).square().sum().clamp_min(EPS)
    return (residual_hat - target).square().sum() / variance
