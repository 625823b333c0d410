"""The sparse autoencoder: encoder, a selection rule, and a decoder whose atoms have unit norm.

    pre   = W_enc (x - b_pre) + b_enc                      [B, N]
    sel   = rule.select(pre, k, x - b_pre)                 acts, support, codes [B, N] each
    x_hat = codes @ W_dec + b_pre                          [B, d]

The rule (`sae_lite.core.rules`) is a submodule: its parameters and buffers (SoftSAE's k-estimator,
BatchTopK's threshold) train and save with the SAE. An explicit budget ``k`` at inference means
Top-k' per input for every rule (the k-sweeps).

``W_dec`` [N, d] holds one atom per row; this module is the one place that keeps the rows at
unit norm (`normalize_decoder`) and removes the gradient component parallel to each atom
(`project_decoder_grad`), as in Gao et al. (2024).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from sae_lite.core import rules
from sae_lite.core.rules.base import Selection, check_k
from sae_lite.errors import SaeLiteError


class SAEOutput(NamedTuple):
    pre: Tensor      # [B, N] pre-activations
    acts: Tensor     # [B, N] activations before selection
    support: Tensor  # [B, N] bool, units kept by the selection rule
    codes: Tensor    # [B, N] sparse codes
    x_hat: Tensor    # [B, d] reconstruction
    budget: Tensor | None = None  # [B] the per-input budget the rule chose (SoftSAE's k_hat), else None


class SAE(nn.Module):
    """A sparse autoencoder with ``n_latents`` latents on ``d``-dimensional inputs.

    Args:
        d: input dimension.
        n_latents: dictionary size N.
        k: the training budget (latents kept per input).
        rule: the selection rule: its config (`sae_lite.core.rules.RuleConfig`), or a name for its defaults.
        seed: seeds the initialisation (decoder rows ~ N(0, I), normalised; encoder = decoder^T).
    """

    def __init__(self, d: int, n_latents: int, k: int, rule: rules.RuleConfig | str = "topk", seed: int = 0) -> None:
        super().__init__()
        if n_latents < 1 or d < 1:
            raise SaeLiteError(f"d and n_latents must be >= 1, got d={d}, n_latents={n_latents}")
        check_k(k, n_latents)
        config = rules.config_of(rule)
        config.check(k, n_latents)
        self.d, self.n_latents, self.k = d, n_latents, k
        atoms = torch.randn(n_latents, d, generator=torch.Generator().manual_seed(seed))
        atoms /= atoms.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(atoms)
        self.W_enc = nn.Parameter(atoms.clone())  # [N, d]: the encoder starts as the decoder's transpose
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.b_pre = nn.Parameter(torch.zeros(d))
        self.rule = config.build(d, n_latents, k, self.W_enc.detach())

    @property
    def activation(self) -> str:
        """The selection rule's name."""
        return self.rule.config.name

    def pre_activations(self, x: Tensor) -> Tensor:
        """[B, d] -> [B, N]."""
        return (x - self.b_pre) @ self.W_enc.T + self.b_enc

    def encode(self, x: Tensor, k: int | None = None) -> Selection:
        """Select latents for ``x`` [B, d] with budget ``k`` (default: the rule's own budget)."""
        if k is not None:
            check_k(k, self.n_latents)
        return self.rule.select(self.pre_activations(x), k, x - self.b_pre)

    def budget(self, x: Tensor) -> Tensor | None:
        """The per-input budget [B] the rule chooses for ``x`` [B, d] (SoftSAE's k_hat); None for a fixed k."""
        return self.rule.budget(x - self.b_pre, self.pre_activations(x))

    def decode(self, codes: Tensor) -> Tensor:
        """[B, N] -> [B, d]."""
        return codes @ self.W_dec + self.b_pre

    def forward(self, x: Tensor, k: int | None = None) -> SAEOutput:
        """Encode and decode ``x`` [B, d]; ``k`` overrides the budget at inference."""
        if x.ndim != 2 or x.shape[1] != self.d:
            raise SaeLiteError(f"expected inputs of shape [B, {self.d}], got {tuple(x.shape)}")
        pre = self.pre_activations(x)
        sel = self.rule.select(pre, k, x - self.b_pre)
        return SAEOutput(pre, sel.acts, sel.support, sel.codes, self.decode(sel.codes), sel.budget)

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
        """What it takes to rebuild this SAE's architecture (`SAE.from_config`), the rule's settings resolved."""
        return {"d": self.d, "n_latents": self.n_latents, "k": self.k, "rule": self.rule.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict) -> SAE:
        """The SAE `SAE.config` describes (untrained)."""
        if not isinstance(config.get("rule"), dict):
            raise SaeLiteError("no selection rule is recorded")
        return cls(config["d"], config["n_latents"], config["k"], rules.from_dict(config["rule"]))


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
