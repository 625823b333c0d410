"""The sparse autoencoder: encoder, a selection rule, and a decoder whose atoms have unit norm.

    pre   = W_enc (x - b_pre) + b_enc                      [B, N]
    sel   = rule(pre, k)  ->  acts, support, codes          [B, N] each
    x_hat = codes @ W_dec + b_pre                           [B, d]

Two rules carry state here. BatchTopK keeps its inference ``threshold`` (a buffer, so it is saved
and loaded with the weights): in training mode each batch's smallest kept activation updates an
exponential moving average (momentum `THRESHOLD_MOMENTUM`); in eval mode the codes keep every
ReLU(pre) above it. SoftSAE has a ``budget_head``: k_hat(x) = 1 + (k_max - 1) sigmoid(w . s(x) + c) [B], where
s(x) [B, k_max] are the k_max largest ReLU(pre) in decreasing order, detached (the head reads the
input's activation profile, it does not shape the code); soft
selection in training, hard top-floor(k_hat) in eval mode and while ``hard`` is set.
For both, an explicit budget ``k`` in eval mode means "Top-k' per input" (used by k-sweeps).

``W_dec`` [N, d] holds one atom per row; this module is the one place that keeps the rows at
unit norm (`normalize_decoder`) and removes the gradient component parallel to each atom
(`project_decoder_grad`), as in Gao et al. (2024).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sae_lite.core import sparsity
from sae_lite.errors import SaeLiteError


class SAEOutput(NamedTuple):
    pre: Tensor      # [B, N] pre-activations
    acts: Tensor     # [B, N] activations before selection
    support: Tensor  # [B, N] bool, units kept by the selection rule
    codes: Tensor    # [B, N] sparse codes
    x_hat: Tensor    # [B, d] reconstruction
    budget: Tensor | None = None  # [B] SoftSAE's per-input budget k_hat; None for the other rules

THRESHOLD_MOMENTUM = 0.99  # BatchTopK: weight of the old threshold in the moving average


class SAE(nn.Module):
    """A sparse autoencoder with ``n_latents`` latents on ``d``-dimensional inputs.

    Args:
        d: input dimension.
        n_latents: dictionary size N.
        k: the training budget (latents kept per input).
        activation: the selection rule's name in `sae_lite.core.sparsity.SELECTIONS`.
        seed: seeds the initialisation (decoder rows ~ N(0, I), normalised; encoder = decoder^T).
        k_max: SoftSAE only: the largest per-input budget (default min(2k, n_latents - 1)).
        temperature: SoftSAE only: the scale of the Laplace CDF in the soft top-k.
    """

    def __init__(self, d: int, n_latents: int, k: int, activation: str = "topk", seed: int = 0,
                 k_max: int | None = None, temperature: float = 0.05) -> None:
        super().__init__()
        if n_latents < 1 or d < 1:
            raise SaeLiteError(f"d and n_latents must be >= 1, got d={d}, n_latents={n_latents}")
        sparsity.check_k(k, n_latents)
        self.rule = sparsity.get(activation)
        self.d, self.n_latents, self.k, self.activation = d, n_latents, k, activation
        self.hard = False  # SoftSAE: hard top-floor(k_hat) also in training (the trainer's last phase)
        if activation == "batchtopk":
            self.register_buffer("threshold", torch.tensor(-1.0))  # < 0: not estimated yet
        if activation == "soft":
            self.k_max = min(2 * k, n_latents - 1) if k_max is None else k_max
            self.temperature = temperature
            sparsity.check_soft(k, self.k_max, temperature, n_latents)
            self.budget_head = nn.Linear(self.k_max, 1)
            nn.init.zeros_(self.budget_head.weight)
            nn.init.constant_(self.budget_head.bias, _logit((k - 0.5) / (self.k_max - 1)) if self.k_max > 1 else 0.0)
        atoms = torch.randn(n_latents, d, generator=torch.Generator().manual_seed(seed))
        atoms /= atoms.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(atoms)
        self.W_enc = nn.Parameter(atoms.clone())  # [N, d]: the encoder starts as the decoder's transpose
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.b_pre = nn.Parameter(torch.zeros(d))

    def pre_activations(self, x: Tensor) -> Tensor:
        """[B, d] -> [B, N]."""
        return (x - self.b_pre) @ self.W_enc.T + self.b_enc

    def encode(self, x: Tensor, k: int | None = None) -> sparsity.Selection:
        """Select latents for ``x`` [B, d] with budget ``k`` (default: the rule's own budget)."""
        if k is not None:
            sparsity.check_k(k, self.n_latents)
        return self.select(self.pre_activations(x), k)[0]

    def select(self, pre: Tensor, k: int | None = None) -> tuple[sparsity.Selection, Tensor | None]:
        """Apply the selection rule to ``pre`` [B, N]; also returns SoftSAE's budgets k_hat [B] (else None)."""
        if self.activation in ("batchtopk", "soft") and k is not None and not self.training:
            return sparsity.topk(pre, k), None
        if self.activation == "batchtopk":
            return self._batchtopk(pre, self.k if k is None else k), None
        if self.activation == "soft":
            budget = self.budget(pre)
            return sparsity.soft(pre, budget, self.temperature, hard=self.hard or not self.training), budget
        return self.rule(pre, self.k if k is None else k), None

    def budget(self, pre: Tensor) -> Tensor:
        """SoftSAE's per-input budget k_hat in [1, k_max]: [B, N] pre-activations -> [B]."""
        profile = torch.relu(pre).detach().topk(self.k_max, dim=1).values  # [B, k_max], descending
        logit = self.budget_head(profile).squeeze(1)
        return 1 + (self.k_max - 1) * torch.sigmoid(logit)

    def _batchtopk(self, pre: Tensor, k: int) -> sparsity.Selection:
        if not self.training:
            if self.threshold < 0:
                raise SaeLiteError("this BatchTopK SAE has no inference threshold yet; train it first "
                                   "(or pass an explicit k for per-input Top-k)")
            return sparsity.batchtopk(pre, k, threshold=self.threshold)
        selection = sparsity.batchtopk(pre, k)
        smallest = sparsity.batch_threshold(selection)
        if smallest is not None:
            with torch.no_grad():
                old = self.threshold
                self.threshold.copy_(smallest if old < 0 else THRESHOLD_MOMENTUM * old + (1 - THRESHOLD_MOMENTUM) * smallest)
        return selection

    def decode(self, codes: Tensor) -> Tensor:
        """[B, N] -> [B, d]."""
        return codes @ self.W_dec + self.b_pre

    def forward(self, x: Tensor, k: int | None = None) -> SAEOutput:
        """Encode and decode ``x`` [B, d]; ``k`` overrides the budget at inference."""
        if x.ndim != 2 or x.shape[1] != self.d:
            raise SaeLiteError(f"expected inputs of shape [B, {self.d}], got {tuple(x.shape)}")
        pre = self.pre_activations(x)
        sel, budget = self.select(pre, k)
        return SAEOutput(pre, sel.acts, sel.support, sel.codes, self.decode(sel.codes), budget)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every atom (row of W_dec) to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove from W_dec.grad the component parallel to each (unit) atom."""
        if self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(1, keepdim=True)
            self.W_dec.grad -= parallel * self.W_dec

    @torch.no_grad()
    def init_b_pre(self, x: Tensor, method: str = "geometric_median") -> None:
        """Set b_pre from a data sample ``x`` [n, d]: its geometric median or its mean."""
        if method == "mean":
            self.b_pre.copy_(x.mean(0))
        elif method == "geometric_median":
            self.b_pre.copy_(geometric_median(x))
        else:
            raise SaeLiteError(f"unknown b_pre init {method!r}; use 'geometric_median' or 'mean'")

    def config(self) -> dict:
        """What it takes to rebuild this SAE's architecture."""
        config = {"d": self.d, "n_latents": self.n_latents, "k": self.k, "activation": self.activation}
        if self.activation == "soft":
            config.update(k_max=self.k_max, temperature=self.temperature)
        return config


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def geometric_median(x: Tensor, iters: int = 100, tol: float = 1e-6) -> Tensor:
    """The point minimising the summed Euclidean distance to the rows of ``x`` [n, d] (Weiszfeld)."""
    x = x.double()
    median = x.mean(0)
    for _ in range(iters):
        weights = 1.0 / (x - median).norm(dim=1).clamp_min(1e-8)
        new = (weights[:, None] * x).sum(0) / weights.sum()
        if (new - median).norm() <= tol * median.norm().clamp_min(1.0):
            return new.float()
        median = new
    return median.float()
