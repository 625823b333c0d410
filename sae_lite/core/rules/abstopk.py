"""AbsTopK (Zhu, Khalili, Zhu 2025): each input keeps the k largest |pre|, with their sign."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sae_lite.core.rules.base import Rule, RuleConfig, Selection, as_weights, support_of


def abstopk(pre: Tensor, k: int) -> Selection:
    """The k largest |pre| [B, N] of each row with their sign, no ReLU.

    ``acts`` = |pre| (what the penalties see); ``codes`` = pre on the support, so they can be negative.
    """
    acts = pre.abs()
    support = support_of(acts.topk(k, dim=1, sorted=False).indices, acts)
    return Selection(acts, support, pre * as_weights(support, pre))


@dataclass(frozen=True)
class AbsTopKConfig(RuleConfig):
    """AbsTopK has no settings of its own: its budget is the run's k."""

    name = "abstopk"
    summary = "AbsTopK: the k largest |pre-activations| per input, sign kept (Zhu et al. 2025)"
    signed = True

    def build(self, d: int, n_latents: int, k: int, encoder: Tensor) -> AbsTopK:
        return AbsTopK(self, d, n_latents, k)


class AbsTopK(Rule):
    def select(self, pre: Tensor, k: int | None = None, x: Tensor | None = None) -> Selection:
        return abstopk(pre, self.k if k is None else k)
