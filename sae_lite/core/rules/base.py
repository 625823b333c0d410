"""What every selection rule shares: the `Selection` it returns, its config's base class and the
small interface the SAE and the trainer ask it through.

A rule takes the pre-activations ``pre`` [B, N] and returns a `Selection`: ``acts`` [B, N] (the
activations *before* selection: ReLU(pre), or |pre| for a signed rule), ``support`` [B, N] bool (the
units it kept) and ``codes`` [B, N] (what the decoder sees). The penalties in
`sae_lite.core.penalties` act on ``acts`` and ``support``.

A rule is an `nn.Module`, so its parameters and buffers (a k-estimator, a running threshold) are
trained and saved with the SAE. Its interface, each part doing nothing unless the rule needs it:

    select(pre, k, x)     the selection of the inputs ``x`` [B, d]; ``k`` None: the training budget
    on_step(step, total)  the rule's schedule, called before every training step
    extra_loss(out)       the rule's own loss term on the step's output
    budget(x, pre)        the per-input budget [B], for a rule that chooses one (else None)

Its config is a frozen dataclass of the rule's own settings (`RuleConfig`), registered by name in
`sae_lite.core.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from sae_lite.errors import SaeLiteError


class Selection(NamedTuple):
    acts: Tensor     # [B, N] activations before selection (non-negative: ReLU(pre) or |pre|)
    support: Tensor  # [B, N] bool, the units kept
    codes: Tensor    # [B, N] the sparse code passed to the decoder
    budget: Tensor | None = None  # [B] the per-input budget the rule chose (SoftSAE's k_hat), else None


class Output(Protocol):
    """What `Rule.extra_loss` reads of a step: a `Selection`, or the SAE's output (which has these too)."""

    acts: Tensor
    support: Tensor
    codes: Tensor
    budget: Tensor | None


def support_of(index: Tensor, like: Tensor) -> Tensor:
    """The [B, N] boolean mask with True at ``index`` [B, k] in each row."""
    return torch.zeros_like(like, dtype=torch.bool).scatter_(1, index, True)


def as_weights(mask: Tensor, like: Tensor) -> Tensor:
    """A bool ``mask`` as 0/1 in ``like``'s dtype, so that ``like * as_weights(mask, like)`` equals
    ``like * mask`` bit for bit. The cast goes through uint8: PyTorch's CPU kernels that read bool
    tensors are not vectorised, its uint8 ones are."""
    return mask.view(torch.uint8).to(like.dtype)


def any_row(mask: Tensor) -> Tensor:
    """[B, N] bool -> [N] bool: True where any row is True (``mask.any(0)``, through uint8 as `as_weights`)."""
    return mask.view(torch.uint8).amax(dim=0).bool()


def check_k(k: int, n_latents: int) -> None:
    """Raise unless 0 < k < n_latents."""
    if not isinstance(k, int) or not 0 < k < n_latents:
        raise SaeLiteError(f"k must be an integer with 0 < k < n_latents={n_latents}, got {k!r}")


def check_fraction(config: RuleConfig, *names: str) -> None:
    """Raise unless each field ``names`` of ``config`` lies in [0, 1]."""
    for name in names:
        value = getattr(config, name)
        if not 0 <= value <= 1:
            raise SaeLiteError(f"{name} must lie in [0, 1], got {value}")


def check_positive(config: RuleConfig, *names: str, zero: bool = False) -> None:
    """Raise unless each field ``names`` of ``config`` is a finite number > 0 (>= 0 with ``zero``)."""
    for name in names:
        value = getattr(config, name)
        if not (value >= 0 if zero else value > 0) or value == float("inf"):
            raise SaeLiteError(f"{name} must be a finite number {'>=' if zero else '>'} 0, got {value}")


@dataclass(frozen=True)
class RuleConfig:
    """A selection rule's own settings; a subclass per rule, each field with ``metadata["help"]``.

    Class attributes (not fields): ``name`` (its registry key and ``--activation`` value),
    ``summary`` (one line for ``--help`` and the method card), ``signed`` (its codes may be negative:
    acts = |pre|), ``grad_clip`` (the gradient-norm bound its training uses unless told otherwise).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    signed: ClassVar[bool] = False
    grad_clip: ClassVar[float | None] = None

    def check(self, k: int, n_latents: int) -> None:
        """Raise SaeLiteError, one line, unless these settings can train budget ``k`` of ``n_latents``."""

    def build(self, d: int, n_latents: int, k: int, encoder: Tensor) -> Rule:
        """The rule for an SAE of ``n_latents`` latents on ``d`` inputs, training budget ``k``;
        ``encoder`` [N, d] is the SAE's initial encoder (a rule may start from it)."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """``{"name": ..., **fields}``: what config.json records (`RuleConfig.from_dict` reads it back)."""
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}


class Rule(nn.Module):
    """A selection rule in an SAE: ``config`` its settings, ``k`` the training budget."""

    def __init__(self, config: RuleConfig, d: int, n_latents: int, k: int) -> None:
        super().__init__()
        self.config, self.d, self.n_latents, self.k = config, d, n_latents, k

    @property
    def signed(self) -> bool:
        return self.config.signed

    def select(self, pre: Tensor, k: int | None = None, x: Tensor | None = None) -> Selection:
        """The selection of ``pre`` [B, N] (of inputs ``x`` [B, d]) at budget ``k`` (None: ``self.k``)."""
        raise NotImplementedError

    def on_step(self, step: int, total: int) -> None:
        """Set what changes with the training step ``step`` (0-based) of ``total``."""

    def extra_loss(self, out: Output) -> Tensor | float:
        """The rule's own term of the training loss on the step's output ``out``."""
        return 0.0

    def budget(self, x: Tensor, pre: Tensor | None = None) -> Tensor | None:
        """The per-input budget [B] of inputs ``x`` [B, d] (``pre``: their pre-activations, if known),
        for a rule that chooses one; None for a rule with the fixed budget k."""
        return None
