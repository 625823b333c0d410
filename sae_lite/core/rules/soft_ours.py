"""Our own SoftSAE variant (rule ``soft-ours``), kept to set beside the authors' (`softsae`).

It shares the LapSum soft top-k and differs in three places:

    k_hat(x) = 1 + (k_max - 1) sigmoid(w . s(x) + c)     s(x) [B, k_max]: the k_max largest ReLU(pre),
                                                           sorted, detached (a linear budget head)
    hard phase: the top-floor(k_hat) units, with the soft weights' gradient passed straight through,
                so k_hat still learns
    loss:       target_weight * softplus(mean k_hat - k), in every phase; a fixed temperature
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from sae_lite.core.rules.base import Output, Rule, RuleConfig, Selection, as_weights, check_fraction, check_positive
from sae_lite.core.rules.lapsum import soft_weights, top_per_row
from sae_lite.core.rules.softsae import check_k_max
from sae_lite.core.rules.topk import topk


def soft_ours(pre: Tensor, k: int | Tensor, temperature: float = 0.05, hard: bool = False) -> Selection:
    """Our variant's selection of ``pre`` [B, N] at the per-input budget ``k`` [B] (or one number).

    Soft: as `sae_lite.core.rules.softsae.soft`. Hard: the top-floor(k_b) units of each row; with
    gradients on, the codes carry the soft weights' gradient (straight-through), so k_hat still learns.
    """
    acts = torch.relu(pre)
    budget = torch.as_tensor(k, dtype=acts.dtype, device=acts.device).expand(acts.shape[0])
    need_soft = not hard or (torch.is_grad_enabled() and (pre.requires_grad or budget.requires_grad))
    if need_soft:
        p, t = soft_weights(acts, budget, temperature)
    if not hard:
        return Selection(acts, acts > t[:, None], acts * p)
    support = top_per_row(acts, budget.detach().floor().long())
    weights = as_weights(support, acts) + (p - p.detach() if need_soft else 0.0)
    return Selection(acts, support, acts * weights)


@dataclass(frozen=True)
class SoftOursConfig(RuleConfig):
    """Our variant's settings."""

    name = "soft-ours"
    summary = "SoftSAE, our own variant: a budget head on the sorted activations, straight-through hard phase"

    k_max: int | None = field(default=None, metadata={"help": "the largest per-input budget k_hat (default: min(2k, N - 1))"})
    hard_fraction: float = field(default=0.2, metadata={
        "help": "fraction of the steps, at the end, trained with hard Top-k_hat"})
    temperature: float = field(default=0.05, metadata={
        "help": "scale of the Laplace CDF in the soft top-k", "flag": "soft-temperature"})
    target_weight: float = field(default=0.1, metadata={
        "help": "weight of softplus(mean k_hat - k) in the loss", "flag": "soft-target-weight"})

    def check(self, k: int, n_latents: int) -> None:
        if self.k_max is not None:
            check_k_max(self.k_max, k, n_latents)
        check_positive(self, "temperature")
        check_positive(self, "target_weight", zero=True)
        check_fraction(self, "hard_fraction")

    def build(self, d: int, n_latents: int, k: int, encoder: Tensor) -> SoftOurs:
        return SoftOurs(self, d, n_latents, k)


class SoftOurs(Rule):
    """``budget_head``: the linear head of k_hat, starting at k_hat ~ k; ``hard``: the schedule's state."""

    def __init__(self, config: SoftOursConfig, d: int, n_latents: int, k: int) -> None:
        k_max = min(2 * k, n_latents - 1) if config.k_max is None else config.k_max
        check_k_max(k_max, k, n_latents)
        super().__init__(replace(config, k_max=k_max), d, n_latents, k)
        self.budget_head = nn.Linear(k_max, 1)
        nn.init.zeros_(self.budget_head.weight)
        nn.init.constant_(self.budget_head.bias, _logit((k - 0.5) / (k_max - 1)) if k_max > 1 else 0.0)
        self.hard = False

    def on_step(self, step: int, total: int) -> None:
        self.hard = step >= (1 - self.config.hard_fraction) * total

    def budget(self, x: Tensor, pre: Tensor | None = None) -> Tensor:
        """1 + (k_max - 1) sigmoid(head(s)), s the k_max largest of ReLU(``pre``) [B, N], detached."""
        profile = torch.relu(pre).detach().topk(self.config.k_max, dim=1).values  # [B, k_max], descending
        return 1 + (self.config.k_max - 1) * torch.sigmoid(self.budget_head(profile).squeeze(1))

    def select(self, pre: Tensor, k: int | None = None, x: Tensor | None = None) -> Selection:
        if k is not None and not self.training:
            return topk(pre, k)
        budget = self.budget(x, pre)
        return soft_ours(pre, budget, self.config.temperature, hard=self.hard or not self.training)._replace(budget=budget)

    def extra_loss(self, out: Output) -> Tensor | float:
        return self.config.target_weight * torch.nn.functional.softplus(out.budget.mean() - self.k)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
