"""The training loss of one batch, on the dense backend (the readable reference), and its parts.

    loss = FVU_batch(x, x_hat) + weight * penalty(acts, support, masked) + auxk_alpha * AuxK
           + the selection rule's own term (`sae_lite.core.rules.base.Rule.extra_loss`: SoftSAE's k-loss)

with FVU_batch = sum ||x - x_hat||^2 / sum ||x - mean_batch(x)||^2 (scale-free, so a penalty
weight transfers across data sets of different norms). The sparse backend (`sae_lite.core.kernels`)
computes the same `LossTerms` with work in k instead of N.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from sae_lite.core import penalties
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
                             signed=sae.rule.signed)
    loss = fvu + config.weight * penalty + config.auxk_alpha * aux
    loss = loss + sae.rule.extra_loss(out)
    on = out.codes.detach().abs().sign()  # [B, N] 1.0 where a code is non-zero (a float mask: see `as_weights`)
    return LossTerms(loss, fvu, penalty, aux, on.amax(0) > 0, on.sum(1).float().mean())

