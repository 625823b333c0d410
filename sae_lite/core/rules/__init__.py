"""The selection rules, each an architecture of its own: one module per rule holds its config, its
state, its schedule and any loss term of its own (the interface: `sae_lite.core.rules.base`).

    topk       the k largest ReLU(pre) of each row (Gao et al. 2024)
    abstopk    the k largest |pre| of each row, sign kept (Zhu, Khalili, Zhu 2025)
    batchtopk  the B*k largest ReLU(pre) of the whole batch; at inference a global threshold
               (Bussmann et al. 2024)
    soft       SoftSAE as its authors built it: a per-input budget k_hat(x) and a LapSum soft top-k
    soft-ours  our own SoftSAE variant, kept to set beside it

Adding a rule takes one module and one line in `RULES` (or `register` from outside the package).
"""

from __future__ import annotations

from sae_lite.core.rules.abstopk import AbsTopKConfig
from sae_lite.core.rules.base import Rule, RuleConfig, Selection
from sae_lite.core.rules.batchtopk import BatchTopKConfig
from sae_lite.core.rules.soft_ours import SoftOursConfig
from sae_lite.core.rules.softsae import SoftSAEConfig
from sae_lite.core.rules.topk import TopKConfig
from sae_lite.errors import SaeLiteError

#: Each rule's config class by its name.
RULES: dict[str, type[RuleConfig]] = {config.name: config for config in (
    TopKConfig, AbsTopKConfig, BatchTopKConfig, SoftSAEConfig, SoftOursConfig)}


def names() -> list[str]:
    """The registered rules' names."""
    return list(RULES)


def get(name: str) -> type[RuleConfig]:
    """The config class of the rule called ``name``."""
    if name not in RULES:
        raise SaeLiteError(f"unknown activation {name!r}; choose one of {', '.join(sorted(RULES))}")
    return RULES[name]


def register(config: type[RuleConfig]) -> type[RuleConfig]:
    """Add a rule (its config class) under ``config.name``; usable as a class decorator."""
    if config.name in RULES and RULES[config.name] is not config:
        raise SaeLiteError(f"a rule called {config.name!r} is registered already")
    RULES[config.name] = config
    return config


def config_of(rule: RuleConfig | str) -> RuleConfig:
    """``rule`` as a config: a name stands for that rule's default settings."""
    return get(rule)() if isinstance(rule, str) else rule


def from_dict(values: dict) -> RuleConfig:
    """The config `RuleConfig.to_dict` wrote: ``{"name": ..., **fields}``; unknown fields raise."""
    values = dict(values)
    return get(values.pop("name", None))(**values)


__all__ = ["RULES", "Rule", "RuleConfig", "Selection", "config_of", "from_dict", "get", "names", "register"]
