"""The sparse autoencoder: encoder, a selection rule, and a decoder whose atoms have unit norm.

    pre   = W_enc (x - b_pre) + b_enc                      [B, N]
    sel   = rule(pre, k)  ->  acts, support, codes          [B, N] each
    x_hat = codes @ W_dec + b_pre                           [B, d]

Two rules carry state here. BatchTopK keeps its inference ``threshold`` (a buffer, so it is saved
and loaded with the weights), as saprmarks/dictionary_learning ``trainers/batch_top_k.py`` does: once
``threshold_on`` is set (the trainer sets it after `THRESHOLD_START` steps), each training batch's
smallest positive kept activation updates an exponential moving average (beta `THRESHOLD_BETA`; the
first update copies it); in eval mode the codes keep every ReLU(pre) above it.

SoftSAE (``soft``) follows St0pien/SoftSAE ``soft_sae_clip/soft_sae.py`` (``SoftTopKSAE``): a
k-estimator k_hat(x) = clamp(k_max * sigmoid(MLP(x - b_pre)), 1, N - 1), the MLP
Linear(d, N) -> ReLU -> Linear(N, 1), its first layer a copy of the encoder with zero bias; soft
top-k in training, hard Top-k_hat (k_hat truncated, no gradient) while ``hard`` is set and in eval
mode. The trainer anneals ``temperature`` (their alpha) and ``k_target`` (their k). Our earlier
variant (``soft-ours``) has a ``budget_head`` instead: k_hat(x) = 1 + (k_max - 1) sigmoid(w . s(x) + c)
[B], where s(x) [B, k_max] are the k_max largest ReLU(pre) in decreasing order, detached.
For all three, an explicit budget ``k`` in eval mode means "Top-k' per input" (used by k-sweeps).

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

THRESHOLD_BETA = 0.999  # BatchTopK: weight of the old threshold in the moving average (dictionary_learning)
THRESHOLD_START = 1000  # BatchTopK: training steps before the threshold is estimated (dictionary_learning)


class SAE(nn.Module):
    """A sparse autoencoder with ``n_latents`` latents on ``d``-dimensional inputs.

    Args:
        d: input dimension.
        n_latents: dictionary size N.
        k: the training budget (latents kept per input).
        activation: the selection rule's name in `sae_lite.core.sparsity.SELECTIONS`.
        seed: seeds the initialisation (decoder rows ~ N(0, I), normalised; encoder = decoder^T).
        k_max: SoftSAE only: the largest per-input budget (`default_k_max`).
        temperature: SoftSAE only: the scale of the Laplace CDF in the soft top-k (their alpha).
    """

    def __init__(self, d: int, n_latents: int, k: int, activation: str = "topk", seed: int = 0,
                 k_max: int | None = None, temperature: float | None = None) -> None:
        super().__init__()
        if n_latents < 1 or d < 1:
            raise SaeLiteError(f"d and n_latents must be >= 1, got d={d}, n_latents={n_latents}")
        sparsity.check_k(k, n_latents)
        self.rule = sparsity.get(activation)
        self.d, self.n_latents, self.k, self.activation = d, n_latents, k, activation
        self.hard = False  # SoftSAE: hard Top-k_hat also in training (the trainer's last phase)
        self.threshold_on = False  # BatchTopK: the trainer sets it once THRESHOLD_START steps have passed
        if activation == "batchtopk":
            self.register_buffer("threshold", torch.tensor(-1.0))  # < 0: not estimated yet
        atoms = torch.randn(n_latents, d, generator=torch.Generator().manual_seed(seed))
        atoms /= atoms.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(atoms)
        self.W_enc = nn.Parameter(atoms.clone())  # [N, d]: the encoder starts as the decoder's transpose
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.b_pre = nn.Parameter(torch.zeros(d))
        if sparsity.has_budget(activation):
            self.k_max = default_k_max(activation, d, k, n_latents) if k_max is None else k_max
            self.temperature = (1e-4 if activation == "soft" else 0.05) if temperature is None else temperature
            self.k_target = k  # the k-loss's target; the trainer anneals it (their ae.k)
            sparsity.check_soft(k, self.k_max, self.temperature, n_latents)
        if activation == "soft":  # St0pien/SoftSAE soft_sae_clip/soft_sae.py L74-80
            first = nn.Linear(d, n_latents)
            with torch.no_grad():
                first.weight.copy_(self.W_enc)
                first.bias.zero_()
            self.k_estimator = nn.Sequential(first, nn.ReLU(), nn.Linear(n_latents, 1), nn.Sigmoid())
        if activation == "soft-ours":
            self.budget_head = nn.Linear(self.k_max, 1)
            nn.init.zeros_(self.budget_head.weight)
            nn.init.constant_(self.budget_head.bias, _logit((k - 0.5) / (self.k_max - 1)) if self.k_max > 1 else 0.0)

    def pre_activations(self, x: Tensor) -> Tensor:
        """[B, d] -> [B, N]."""
        return (x - self.b_pre) @ self.W_enc.T + self.b_enc

    def encode(self, x: Tensor, k: int | None = None) -> sparsity.Selection:
        """Select latents for ``x`` [B, d] with budget ``k`` (default: the rule's own budget)."""
        if k is not None:
            sparsity.check_k(k, self.n_latents)
        return self.select(self.pre_activations(x), k, x)[0]

    def select(self, pre: Tensor, k: int | None = None,
               x: Tensor | None = None) -> tuple[sparsity.Selection, Tensor | None]:
        """Apply the selection rule to ``pre`` [B, N] (of inputs ``x`` [B, d], which SoftSAE's k-estimator
        reads); also returns SoftSAE's budgets k_hat [B] (else None)."""
        budgeted = sparsity.has_budget(self.activation)
        if (self.activation == "batchtopk" or budgeted) and k is not None and not self.training:
            return sparsity.topk(pre, k), None
        if self.activation == "batchtopk":
            return self._batchtopk(pre, self.k if k is None else k), None
        if budgeted:
            hard = self.hard or not self.training
            if self.activation == "soft" and hard:  # their hard path: k_hat under no_grad
                with torch.no_grad():
                    budget = self.budget(x, pre)
            else:
                budget = self.budget(x, pre)
            return self.rule(pre, budget, self.temperature, hard=hard), budget
        return self.rule(pre, self.k if k is None else k), None

    def budget(self, x: Tensor, pre: Tensor | None = None) -> Tensor:
        """SoftSAE's per-input budget k_hat [B] of inputs ``x`` [B, d] (``pre``: their pre-activations, if known).

        ``soft``: clamp(k_max * sigmoid(MLP(x - b_pre)), 1, N - 1) (St0pien/SoftSAE ``estimate_k``,
        which clamps to [1, N]; our soft top-k needs k_hat < N). ``soft-ours``: 1 + (k_max - 1) sigmoid(head(s)).
        """
        if self.activation == "soft":
            k_hat = self.k_estimator(x - self.b_pre).squeeze(-1) * self.k_max
            return k_hat.clamp(1, self.n_latents - 1)
        pre = self.pre_activations(x) if pre is None else pre
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
        if not self.threshold_on:
            return selection
        smallest = sparsity.batch_threshold(selection)
        with torch.no_grad():  # dictionary_learning update_threshold: a batch with nothing positive counts 0
            smallest = pre.new_zeros(()) if smallest is None else smallest
            old = self.threshold
            self.threshold.copy_(smallest if old < 0 else THRESHOLD_BETA * old + (1 - THRESHOLD_BETA) * smallest)
        return selection

    def decode(self, codes: Tensor) -> Tensor:
        """[B, N] -> [B, d]."""
        return codes @ self.W_dec + self.b_pre

    def forward(self, x: Tensor, k: int | None = None) -> SAEOutput:
        """Encode and decode ``x`` [B, d]; ``k`` overrides the budget at inference."""
        if x.ndim != 2 or x.shape[1] != self.d:
            raise SaeLiteError(f"expected inputs of shape [B, {self.d}], got {tuple(x.shape)}")
        pre = self.pre_activations(x)
        sel, budget = self.select(pre, k, x)
        return SAEOutput(pre, sel.acts, sel.support, sel.codes, self.decode(sel.codes), budget)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every atom (row of W_dec) to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove from W_dec.grad the component parallel to each (unit) atom."""
        if self.W_dec.grad is not None:
            parallel = torch.einsum("nd,nd->n", self.W_dec.grad, self.W_dec)  # row dot products, no [N, d] temporary
            self.W_dec.grad.addcmul_(parallel[:, None], self.W_dec, value=-1)

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
        if sparsity.has_budget(self.activation):
            config.update(k_max=self.k_max, temperature=self.temperature)
        return config


def default_k_max(activation: str, d: int, k: int, n_latents: int) -> int:
    """SoftSAE's largest budget when none is given, below N.

    ``soft``: 2 d, what St0pien/SoftSAE's CLIP trainer ends up with (it builds the SAE with k = d when
    k is annealed, and the SAE's default is k_max = 2 k; soft_sae_clip/soft_sae.py L52-53, L210-215),
    at least k. ``soft-ours``: 2 k.
    """
    wanted = max(2 * d, k) if activation == "soft" else 2 * k
    return min(wanted, n_latents - 1)


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
