"""Top-k (Gao et al. 2024): each input keeps the k largest of ReLU(pre)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_lite.core.rules.base import Rule, RuleConfig, Selection, as_weights, support_of


def topk(pre: Tensor, k: int) -> Selection:
    """The k largest of ReLU(pre) [B, N] in each row.

    Exactly k units are in the support of every row; a kept unit whose ReLU is 0 codes 0.
    """
    acts = torch.relu(pre)
    support = support_of(acts.topk(k, dim=1, sorted=False).indices, acts)
    return Selection(acts, support, acts * as_weights(support, acts))


@dataclass(frozen=True)
class TopKConfig(RuleConfig):
    """Top-k has no settings of its own: its budget is the run's k."""

    name = "topk"
    summary = "Top-k: the k largest ReLU pre-activations per input (Gao et al. 2024)"

    def build(self, d: int, n_latents: int, k: int, encoder: Tensor) -> TopK:
        return TopK(self, d, n_latents, k)


class TopK(Rule):
    def select(self, pre: Tensor, k: int | None = None, x: Tensor | None = None) -> Selection:
        return topk(pre, self.k if k is None else k)
