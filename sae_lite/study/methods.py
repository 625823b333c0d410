"""The methods the book compares: a selection rule and a regularizer, applied at any training k."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sae_lite.core.config import TrainConfig
from sae_lite.core.rules.base import RuleConfig
from sae_lite.study.profiles import Profile, active_profile

#: Default penalty weights of `METHODS` (and of ``train --weight``'s examples). The book and
#: ``reproduce`` do not use them as they are: on each data set they take the weight that `rule_weight`
#: picks from `sweep_grid` (`chosen_weights`), so the rule and the weight used always agree.
PENALTY_WEIGHTS = {"offsupport": 0.01, "ratio": 0.01}


@dataclass(frozen=True)
class Method:
    """A named training recipe: a selection rule (its name in `sae_lite.core.rules`, at its defaults, or its config)
    and a regularizer, applied at any training k."""

    name: str
    penalty: str = "none"
    weight: float = 0.0
    masked: bool = True
    auxk: bool = True
    rule: str | RuleConfig = "topk"  # a rule's name (its defaults) or its config

    def config(self, k: int, seed: int = 0, profile: Profile | None = None, **overrides) -> TrainConfig:
        """The `TrainConfig` of this method at training budget ``k`` under ``profile``; ``overrides`` go to
        `TrainConfig` (``rule=SoftSAEConfig(...)`` sets the rule's own settings)."""
        profile = profile or active_profile()
        return TrainConfig(k=k, seed=seed, penalty=self.penalty, weight=self.weight, masked=self.masked,
                           auxk=self.auxk, **{"rule": self.rule, "steps": profile.steps, **overrides})


METHODS = {method.name: method for method in (
    Method("baseline"),
    Method("offsupport", "offsupport", PENALTY_WEIGHTS["offsupport"]),
    Method("ratio", "ratio", PENALTY_WEIGHTS["ratio"]),
    Method("offsupport-nomask", "offsupport", PENALTY_WEIGHTS["offsupport"], masked=False),
    Method("ratio-nomask", "ratio", PENALTY_WEIGHTS["ratio"], masked=False),
    Method("abstopk", rule="abstopk"),        # chapter 7: signed codes
    Method("batchtopk", rule="batchtopk"),    # the common baseline: a budget shared by the batch
    Method("softsae", rule="soft"),           # chapter 8: a per-input budget k_hat(x), as St0pien/SoftSAE
    Method("softsae-ours", rule="soft-ours"), # chapter 8: our own SoftSAE variant, for comparison
)}

#: The methods of the paper's grid (`reproduce`): the baseline, both penalties, and their unmasked ablations.
PAPER_METHODS = ("baseline", "offsupport", "ratio", "offsupport-nomask", "ratio-nomask")

#: The mask ablation without AuxK (chapter 4): what the mask alone does to dead latents.
ABLATIONS = {f"{name}-noauxk": replace(METHODS[name], name=f"{name}-noauxk", auxk=False)
             for name in ("offsupport", "ratio", "offsupport-nomask", "ratio-nomask")}


def with_weights(methods: list[Method], weights: dict[str, float]) -> list[Method]:
    """``methods`` with each penalised one at ``weights[its penalty]`` (the others unchanged)."""
    return [replace(m, weight=weights[m.penalty]) if m.penalty in weights else m for m in methods]
