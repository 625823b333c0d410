"""BatchTopK (Bussmann et al. 2024): the batch shares its budget, B*k units in all; at inference
a global threshold, estimated in training, keeps every ReLU(pre) above it.

The threshold is a buffer, so it is saved and loaded with the weights. It is estimated as
saprmarks/dictionary_learning ``trainers/batch_top_k.py`` does: from the training step after
``threshold_start``, each batch's smallest positive kept activation updates an exponential moving
average of weight ``threshold_beta`` (the first update copies it; a batch with nothing positive
counts 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from sae_lite.core.rules.base import Rule, RuleConfig, Selection, as_weights, check_fraction
from sae_lite.core.rules.topk import topk
from sae_lite.errors import SaeLiteError


def batchtopk(pre: Tensor, k: int, threshold: float | Tensor | None = None) -> Selection:
    """The B*k largest ReLU(pre) of the whole batch ``pre`` [B, N].

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


@dataclass(frozen=True)
class BatchTopKConfig(RuleConfig):
    """How BatchTopK estimates its inference threshold (dictionary_learning's values)."""

    name = "batchtopk"
    summary = "BatchTopK: the B*k largest over the batch; a global threshold at inference (Bussmann et al. 2024)"

    threshold_beta: float = field(default=0.999, metadata={
        "help": "weight of the old threshold in its moving average (dictionary_learning: 0.999)"})
    threshold_start: int = field(default=1000, metadata={
        "help": "training steps before the threshold is estimated, at most half the run (dictionary_learning: 1000)"})

    def check(self, k: int, n_latents: int) -> None:
        check_fraction(self, "threshold_beta")
        if not isinstance(self.threshold_start, int) or self.threshold_start < 0:
            raise SaeLiteError(f"threshold_start must be an integer >= 0, got {self.threshold_start!r}")

    def build(self, d: int, n_latents: int, k: int, encoder: Tensor) -> BatchTopK:
        return BatchTopK(self, d, n_latents, k)


class BatchTopK(Rule):
    """``threshold`` < 0: not estimated yet; ``estimating``: this step's batch updates it."""

    def __init__(self, config: BatchTopKConfig, d: int, n_latents: int, k: int) -> None:
        super().__init__(config, d, n_latents, k)
        self.register_buffer("threshold", torch.tensor(-1.0))
        self.estimating = False

    def first_estimate(self, total: int) -> int:
        """The first step whose batch updates the threshold: after ``threshold_start`` steps, as
        dictionary_learning (``step > threshold_start_step``); ours: at most half the run, so a short
        run still ends with a threshold."""
        return min(self.config.threshold_start + 1, total // 2)

    def on_step(self, step: int, total: int) -> None:
        self.estimating = step >= self.first_estimate(total)

    def select(self, pre: Tensor, k: int | None = None, x: Tensor | None = None) -> Selection:
        """Training: the batch's B*k largest. Inference: the threshold, or Top-k per input when a
        budget ``k`` is given (as the k-sweeps ask)."""
        if not self.training:
            if k is not None:
                return topk(pre, k)
            if self.threshold < 0:
                raise SaeLiteError("this BatchTopK SAE has no inference threshold yet; train it first "
                                   "(or pass an explicit k for per-input Top-k)")
            return batchtopk(pre, self.k, threshold=self.threshold)
        selection = batchtopk(pre, self.k if k is None else k)
        if self.estimating:
            self._update_threshold(selection)
        return selection

    @torch.no_grad()
    def _update_threshold(self, selection: Selection) -> None:
        smallest = batch_threshold(selection)
        smallest = selection.acts.new_zeros(()) if smallest is None else smallest
        beta, old = self.config.threshold_beta, self.threshold
        self.threshold.copy_(smallest if old < 0 else beta * old + (1 - beta) * smallest)
