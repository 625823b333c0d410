"""`TrainConfig`: everything that defines a training run, one frozen dataclass: the fields every
run shares, and ``rule``, the selection rule's own config (`sae_lite.core.rules`).

Each field documents itself (``metadata["help"]``); the command line's options are generated from
these fields and from each rule's config (`sae_lite.cli`), so there is no second list of options to
keep in sync. A config checks its own values when it is made; whether the sparse backend implements
it is checked when training starts (`sae_lite.core.train.check`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from sae_lite.core import penalties, rules
from sae_lite.core.rules.base import check_k
from sae_lite.errors import SaeLiteError


def _doc(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; the CLI's options are generated from these fields."""

    k: int = _doc(16, "latents kept per input during training (the budget)")
    n_latents: int = _doc(512, "dictionary size N", flag="latents")
    rule: rules.RuleConfig | str = _doc("topk", "the selection rule: its config, or a rule's name for its defaults")
    penalty: str = _doc("none", f"sparsity penalty before selection: {', '.join(penalties.PENALTIES)}")
    weight: float = _doc(0.0, "weight of the penalty in the loss: > 0 with a penalty, 0 without one")
    masked: bool = _doc(True, "restrict the penalty to batch-active units (False: the ablation)", flag="mask")
    auxk: bool = _doc(True, "add the AuxK loss that revives dead latents (Gao et al. 2024)")
    auxk_alpha: float = _doc(1 / 32, "weight of the AuxK loss")
    k_aux: int | None = _doc(None, "dead latents AuxK may use per input (default: d // 2)")
    dead_after: int = _doc(10_000, "a latent is dead once it has not fired for this many training inputs")
    lr: float = _doc(5e-3, "Adam learning rate")
    warmdown: float = _doc(0.2, "fraction of the steps, at the end, over which the lr decays linearly to 0")
    batch_size: int = _doc(256, "inputs per step")
    steps: int = _doc(3000, "optimisation steps")
    seed: int = _doc(0, "seeds the initialisation and the order of the batches")
    device: str = _doc("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    backend: str = _doc("dense", "dense (the readable reference) or sparse (sae_lite.core.kernels: same loss, work in k)")
    b_pre_init: str = _doc("geometric_median", "how b_pre is set from data: geometric_median or mean")
    log_every: int = _doc(50, "steps between two rows of the training history")
    max_grad_norm: float | None = _doc(None, "clip the gradient's global norm to this (0: never); default 1.0 for "
                                             "soft (St0pien/SoftSAE), none for the other rules (openai/sparse_autoencoder)")

    def __post_init__(self) -> None:
        if self.n_latents < 1:
            raise SaeLiteError(f"n_latents must be >= 1, got {self.n_latents}")
        check_k(self.k, self.n_latents)
        object.__setattr__(self, "rule", rules.config_of(self.rule))  # a name: that rule's defaults
        self.rule.check(self.k, self.n_latents)
        penalties.get(self.penalty)
        if self.rule.signed and not penalties.accepts_signed(self.penalty):
            raise SaeLiteError(f"penalty {self.penalty!r} is defined only for non-negative activations and cannot "
                               f"train activation {self.activation!r}; use one of {', '.join(sorted(penalties.SIGNED_OK))}")
        if self.max_grad_norm is not None and not 0 <= self.max_grad_norm < math.inf:
            raise SaeLiteError(f"max_grad_norm must be a finite number >= 0, got {self.max_grad_norm}")
        if not self.weight >= 0 or not math.isfinite(self.weight):
            raise SaeLiteError(f"weight must be a finite number >= 0, got {self.weight}")
        if self.penalty == "none" and self.weight > 0:
            raise SaeLiteError(f"weight={self.weight} given without a penalty: it would train the baseline; "
                               "pass --penalty offsupport or ratio, or drop --weight")
        if self.penalty != "none" and self.weight == 0:
            raise SaeLiteError(f"penalty {self.penalty!r} needs a weight > 0 (with weight 0 it would train the "
                               "baseline); pass e.g. --weight 0.01, or --penalty none for the baseline")
        for name in ("lr", "batch_size", "steps", "dead_after", "log_every"):
            if not getattr(self, name) > 0:
                raise SaeLiteError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.warmdown <= 1:
            raise SaeLiteError(f"warmdown must lie in [0, 1], got {self.warmdown}")
        if self.k_aux is not None and self.k_aux < 1:
            raise SaeLiteError(f"k_aux must be >= 1, got {self.k_aux}")
        if self.backend not in ("dense", "sparse"):
            raise SaeLiteError(f"backend must be 'dense' or 'sparse', got {self.backend!r}")
        if self.b_pre_init not in ("geometric_median", "mean"):
            raise SaeLiteError(f"b_pre_init must be 'geometric_median' or 'mean', got {self.b_pre_init!r}")

    @property
    def activation(self) -> str:
        """The selection rule's name."""
        return self.rule.name

    @property
    def grad_clip(self) -> float | None:
        """The gradient-norm bound in force: ``max_grad_norm``, or the rule's own default where it is
        None (None: no clipping)."""
        if self.max_grad_norm is None:
            return self.rule.grad_clip
        return self.max_grad_norm or None

    def to_dict(self) -> dict:
        """The config as JSON-ready values, the rule as ``{"name": ..., **its fields}`` (`from_dict` reads it)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**values, "rule": self.rule.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from `to_dict` output, ignoring shared keys this version does not know."""
        names = {f.name for f in fields(cls)}
        values = {key: value for key, value in values.items() if key in names}
        if not isinstance(values.get("rule"), dict):
            raise SaeLiteError("no selection rule is recorded")
        return cls(**{**values, "rule": rules.from_dict(values["rule"])})
