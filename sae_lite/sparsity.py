"""Selection rules: which latents an input keeps, each a small function of the pre-activations.

Every rule takes ``pre`` [B, N] and a budget ``k`` and returns a `Selection`:
``acts`` [B, N] (the activations *before* selection: ReLU(pre), or |pre| for signed rules),
``support`` [B, N] bool (the units the rule kept) and ``codes`` [B, N] (what the decoder sees).
The penalties in `sae_lite.penalties` act on ``acts`` and ``support``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from sae_lite.errors import SaeLiteError


class Selection(NamedTuple):
    acts: Tensor     # [B, N] activations before selection (non-negative)
    support: Tensor  # [B, N] bool, the units kept
    codes: Tensor    # [B, N] the sparse code passed to the decoder


def support_of(index: Tensor, like: Tensor) -> Tensor:
    """The [B, N] boolean mask with True at ``index`` [B, k] in each row."""
    return torch.zeros_like(like, dtype=torch.bool).scatter_(1, index, True)


def topk(pre: Tensor, k: int) -> Selection:
    """Top-k (Gao et al. 2024): keep the k largest of ReLU(pre) in each row.

    Exactly k units are in the support of every row; a kept unit whose ReLU is 0 codes 0.
    """
    acts = torch.relu(pre)
    index = acts.topk(k, dim=1, sorted=False).indices
    support = support_of(index, acts)
    return Selection(acts, support, acts * support)


SELECTIONS: dict[str, Callable[..., Selection]] = {"topk": topk}


def get(name: str) -> Callable[..., Selection]:
    """The selection rule called ``name``."""
    if name not in SELECTIONS:
        raise SaeLiteError(f"unknown activation {name!r}; choose one of {', '.join(sorted(SELECTIONS))}")
    return SELECTIONS[name]


def check_k(k: int, n_latents: int) -> None:
    """Raise unless 0 < k < n_latents."""
    if not isinstance(k, int) or not 0 < k < n_latents:
        raise SaeLiteError(f"k must be an integer with 0 < k < n_latents={n_latents}, got {k!r}")
