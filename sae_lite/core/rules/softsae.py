"""SoftSAE (Stepien et al. 2026) as its authors built it (St0pien/SoftSAE ``soft_sae_clip/soft_sae.py``,
``SoftTopKSAE``): a per-input budget k_hat(x) and a LapSum soft top-k.

    k_hat(x) = clamp(k_max * sigmoid(MLP(x - b_pre)), 1, N - 1)       MLP: Linear(d, N) -> ReLU -> Linear(N, 1)
    soft:  codes = ReLU(pre) * p,  p the soft top-k weights summing to k_hat (`lapsum`), scale alpha
    hard:  the top-floor(k_hat) units of each row, all of it without gradient

The MLP's first layer starts as a copy of the encoder, with zero bias. Training anneals the k-loss's
target k_t linearly from d to k and alpha from 1 to ``alpha_final``, then trains its last
``hard_fraction`` of the steps hard, without the k-loss; inference is hard. The k-loss is
softplus(mean_b k_hat_b - k_t, beta=5), weight ``k_loss_weight``. The schedule lengths, fractions of
the run, are ours (their runs are 40000 steps).

alpha is in the units of the activations: their 1e-4 is for CLIP embeddings scaled to unit mean squared
norm, k = 220 of N = 4096, and we do not rescale the inputs. Where neighbouring activations at the
threshold lie much further apart than alpha, the soft top-k is all but hard, and the encoder's gradient
is dominated by the unit at the threshold (its a f / alpha).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from sae_lite.core.rules.base import (
    Output,
    Rule,
    RuleConfig,
    Selection,
    as_weights,
    check_fraction,
    check_positive,
)
from sae_lite.core.rules.lapsum import Z_CAP, soft_weights, top_per_row
from sae_lite.core.rules.topk import topk
from sae_lite.errors import SaeLiteError


def soft(pre: Tensor, k: int | Tensor, temperature: float = 1e-4, hard: bool = False) -> Selection:
    """SoftSAE's selection of ``pre`` [B, N] with the per-input budget ``k`` [B] (or one number).

    Soft: codes = ReLU(pre) * p with p the LapSum soft top-k weights of scale ``temperature``
    (`sae_lite.core.rules.lapsum`); differentiable in the activations and in k. The support is
    {a > t} (p > 1/2). A unit more than `Z_CAP` alpha below t codes exactly 0: there the authors'
    float32 kernel's weight 0.5 e^z underflows to 0 (from z ~ -103), while our capped tail would
    leave it ~1e-35 a, a code that the trainer would count as fired, hiding it from the dead-latent
    counter and AuxK. Hard: k truncated to an integer, the top-k units of each row, all of it under
    ``torch.no_grad()`` as in the authors' code, so no gradient reaches the encoder or k through the
    codes (the decoder and b_pre still learn from them).
    """
    acts = torch.relu(pre)
    budget = torch.as_tensor(k, dtype=acts.dtype, device=acts.device).expand(acts.shape[0])
    if hard:
        with torch.no_grad():
            support = top_per_row(acts, budget.long())  # .long() truncates, as their estimate_k(x).long()
            return Selection(acts, support, acts * as_weights(support, acts))
    p, t = soft_weights(acts, budget, temperature)
    reached = (acts.detach() - t.detach()[:, None]) / temperature > -Z_CAP  # where p is more than a capped tail
    return Selection(acts, acts > t[:, None], acts * p * as_weights(reached, p))


def check_k_max(k_max: int, k: int, n_latents: int) -> None:
    """Raise unless k <= k_max < n_latents (the soft top-k needs k_hat < N)."""
    if not isinstance(k_max, int) or not k <= k_max < n_latents:
        raise SaeLiteError(f"k_max must be an integer with k={k} <= k_max < n_latents={n_latents}, got {k_max!r}; "
                           "raise k_max or lower k")


def schedule(config: SoftSAEConfig, d: int, k: int, step: int, total: int) -> tuple[int, float, bool]:
    """(k_t, alpha, hard) at step ``step`` of ``total``, for inputs of dimension ``d`` and budget ``k``.

    k_t = int(d (1 - r) + k r), r = min(step / K, 1), K = k_anneal * total (soft_sae.py
    ``update_annealed_k``); alpha = (1 - s) + alpha_final s, s = min(step / A, 1), A = alpha_anneal *
    total (``update_annealed_alpha``); hard from step >= (1 - hard_fraction) * total.
    """
    k_steps, alpha_steps = config.k_anneal * total, config.alpha_anneal * total
    r = min(step / k_steps, 1.0) if k_steps >= 1 else 1.0
    s = min(step / alpha_steps, 1.0) if alpha_steps >= 1 else 1.0
    return int(d * (1 - r) + k * r), (1 - s) + config.alpha_final * s, step >= (1 - config.hard_fraction) * total


def schedule_table(config: SoftSAEConfig, d: int, k: int, total: int, steps=None) -> dict[str, list]:
    """`schedule` at each of ``steps`` (default: every step), as columns ``step``, ``k_target``,
    ``alpha``, ``hard``: what `sae_lite.book.plots.history_with_schedule` draws beside a run's history."""
    steps = range(total) if steps is None else steps
    rows = [schedule(config, d, k, int(step), total) for step in steps]
    return {"step": [int(step) for step in steps], "k_target": [row[0] for row in rows],
            "alpha": [row[1] for row in rows], "hard": [row[2] for row in rows]}


@dataclass(frozen=True)
class SoftSAEConfig(RuleConfig):
    """SoftSAE's settings: its largest budget and its schedule (defaults: SoftSAE_220.json where it gives them)."""

    name = "soft"
    summary = "SoftSAE as in St0pien/SoftSAE: an MLP k-estimator and a LapSum soft top-k (Stepien et al. 2026)"
    grad_clip = 1.0  # soft_sae.py clips the gradient's norm to 1

    k_max: int | None = field(default=None, metadata={
        "help": "the largest per-input budget k_hat (default: min(2d, N - 1), the SoftSAE CLIP trainer's effective value)"})
    hard_fraction: float = field(default=0.2, metadata={
        "help": "fraction of the steps, at the end, trained with hard Top-k_hat (ours; SoftSAE_220.json: 6000 of 40000)"})
    k_loss_weight: float = field(default=1.0, metadata={
        "help": "weight of the k-loss softplus(mean k_hat - k_t, beta=5) (SoftSAE_220.json: 1.0)"})
    k_anneal: float = field(default=0.1, metadata={
        "help": "fraction of the steps over which k_t falls linearly from d to k (ours; SoftSAE_220.json: 1600 of 40000)"})
    alpha_final: float = field(default=1e-4, metadata={
        "help": "the soft top-k's Laplace scale alpha at the end of its annealing from 1 (SoftSAE_220.json: 1e-4)"})
    alpha_anneal: float = field(default=0.1, metadata={
        "help": "fraction of the steps over which alpha falls linearly from 1 to alpha_final (ours; clip_sweep.py: "
                "1000 of 40000; 0: alpha_final throughout)"})

    def check(self, k: int, n_latents: int) -> None:
        if self.k_max is not None:
            check_k_max(self.k_max, k, n_latents)
        check_positive(self, "alpha_final")
        check_positive(self, "k_loss_weight", zero=True)
        check_fraction(self, "hard_fraction", "k_anneal", "alpha_anneal")

    def build(self, d: int, n_latents: int, k: int, encoder: Tensor) -> SoftSAE:
        return SoftSAE(self, d, n_latents, k, encoder)


class SoftSAE(Rule):
    """``k_estimator``: the MLP of k_hat; ``k_target``, ``temperature`` (alpha), ``hard``: the schedule's state."""

    def __init__(self, config: SoftSAEConfig, d: int, n_latents: int, k: int, encoder: Tensor) -> None:
        k_max = min(max(2 * d, k), n_latents - 1) if config.k_max is None else config.k_max
        check_k_max(k_max, k, n_latents)
        super().__init__(replace(config, k_max=k_max), d, n_latents, k)
        first = nn.Linear(d, n_latents)
        with torch.no_grad():
            first.weight.copy_(encoder)
            first.bias.zero_()
        self.k_estimator = nn.Sequential(first, nn.ReLU(), nn.Linear(n_latents, 1), nn.Sigmoid())
        self.k_target, self.temperature, self.hard = k, config.alpha_final, False

    def on_step(self, step: int, total: int) -> None:
        """Set k_t, alpha and the phase of step ``step`` of ``total`` (`schedule`)."""
        self.k_target, self.temperature, self.hard = schedule(self.config, self.d, self.k, step, total)

    def budget(self, x: Tensor, pre: Tensor | None = None) -> Tensor:
        """clamp(k_max * sigmoid(MLP(x)), 1, N - 1) of the centred inputs ``x`` [B, d] (their
        ``estimate_k`` clamps to [1, N]; the soft top-k needs k_hat < N)."""
        k_hat = self.k_estimator(x).squeeze(-1) * self.config.k_max
        return k_hat.clamp(1, self.n_latents - 1)

    def select(self, pre: Tensor, k: int | None = None, x: Tensor | None = None) -> Selection:
        """Soft in training, hard in its last phase and at inference; Top-k per input at inference
        when a budget ``k`` is given (as the k-sweeps ask)."""
        if k is not None and not self.training:
            return topk(pre, k)
        hard = self.hard or not self.training
        with torch.no_grad() if hard else nullcontext():  # their hard path: k_hat without gradient
            budget = self.budget(x, pre)
        return soft(pre, budget, self.temperature, hard=hard)._replace(budget=budget)

    def extra_loss(self, out: Output) -> Tensor | float:
        """The k-loss softplus(mean k_hat - k_t, beta=5) (soft_sae.py ``get_k_loss``); 0 in the hard phase."""
        if self.hard:
            return 0.0
        return self.config.k_loss_weight * torch.nn.functional.softplus(out.budget.mean() - self.k_target, beta=5.0)
