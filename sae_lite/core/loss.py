"""The training loss of one batch, on the dense backend (the readable reference), and its parts.

    loss = FVU_batch(x, x_hat) + weight * penalty(acts, support, masked) + auxk_alpha * AuxK
           [+ k_loss_weight * softplus(mean_b k_hat_b - k_t, beta=5)   soft, in its soft phase]
           [+ soft_target_weight * softplus(mean_b k_hat_b - k)         soft-ours]

with FVU_batch = sum ||x - x_hat||^2 / sum ||x - mean_batch(x)||^2 (scale-free, so a penalty
weight transfers across data sets of different norms). The sparse backend (`sae_lite.core.kernels`)
computes the same `LossTerms` with work in k instead of N.

SoftSAE's k-loss is St0pien/SoftSAE ``soft_sae_clip/soft_sae.py`` ``get_k_loss`` (L349-350): a
one-sided penalty on the batch mean of k_hat, beta 5 (hard-coded there), target k_t = ``sae.k_target``
(annealed by the trainer from d to k), and 0 in the hard phase (L384).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from sae_lite.core import penalties, sparsity
from sae_lite.core.config import TrainConfig
from sae_lite.core.sae import SAE


class LossTerms(NamedTuple):
    """The loss of one batch and what training logs of it; the same for every backend."""

    loss: Tensor     # scalar: what backward() differentiates
    fvu: Tensor      # scalar: the batch's fraction of variance unexplained
    penalty: Tensor  # scalar: the sparsity penalty, before its weight (0 without one)
    auxk: Tensor     # scalar: the AuxK loss, before auxk_alpha (0 without AuxK)
    fired: Tensor    # bool [N]: the units with a non-zero code in this batch
    l0: Tensor       # scalar: the mean number of non-zero codes per input


def loss_terms(sae: SAE, x: Tensor, config: TrainConfig, dead: Tensor) -> LossTerms:
    """The loss of one batch ``x`` [B, d], with ``dead`` [N] the latents AuxK may use."""
    out = sae(x)
    residual = x - out.x_hat
    fvu = residual.square().sum() / (x - x.mean(0)).square().sum().clamp_min(1e-12)
    penalty = penalties.get(config.penalty)(out.acts, out.support, config.masked)
    aux = x.new_zeros(())
    if config.auxk:
        aux = penalties.auxk(out.pre, residual, sae.W_dec, dead, config.k_aux or max(1, sae.d // 2),
                             signed=sparsity.is_signed(config.activation))
    loss = fvu + config.weight * penalty + config.auxk_alpha * aux
    loss = loss + k_loss(sae, out.budget, config)
    on = out.codes.detach().abs().sign()  # [B, N] 1.0 where a code is non-zero (a float mask: faster on CPU)
    return LossTerms(loss, fvu, penalty, aux, on.amax(0) > 0, on.sum(1).float().mean())


def k_loss(sae: SAE, budget: Tensor | None, config: TrainConfig) -> Tensor | float:
    """SoftSAE's term on the budgets k_hat [B] (0 for the other rules, and for ``soft`` in its hard phase)."""
    if budget is None:
        return 0.0
    if config.activation == "soft":
        if sae.hard:
            return 0.0
        return config.k_loss_weight * torch.nn.functional.softplus(budget.mean() - sae.k_target, beta=5.0)
    return config.soft_target_weight * torch.nn.functional.softplus(budget.mean() - config.k)
