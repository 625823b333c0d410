"""The weight rule: each penalty runs at the largest weight of a sweep that costs no reconstruction.

On each data set (and profile), the baseline and the penalty at each weight of `sweep_weights` train
on the first seed (`sweep_grid`); `rule_weight` picks the largest weight whose test R^2
(`COST_METRIC`) stays within `TOLERANCE` of the baseline's. The book and ``reproduce`` train every
penalty at that pick (`chosen_weights`; ``reproduce`` finds it with `WeightSearch`, which trains
fewer of the sweep's runs), so the rule and the weight used always agree.
"""

from __future__ import annotations

from dataclasses import replace

from sae_lite.study.methods import METHODS, PENALTY_WEIGHTS
from sae_lite.study.profiles import Profile, active_profile
from sae_lite.study.runner import Job, grid_jobs, run_jobs

#: The largest test-R^2 drop that counts as "no reconstruction cost": the tolerance of the weight rule
#: (`rule_weight`) and of the claims' "no cost" parts (`sae_lite.study.claims`).
TOLERANCE = 0.005
#: The R^2 those two judge: variance-weighted (1 - FVU, the measure the loss minimises). The uniform
#: average over dimensions (``r2``, as scikit-learn's default) is reported too, but on real embeddings a
#: few nearly constant dimensions dominate it (per-dimension R^2 of -260 and -130 on Fashion-MNIST
#: through EfficientNet-Lite0), so it cannot tell a cost from noise there.
COST_METRIC = "r2_vw"


def sweep_weights(profile: Profile | None = None) -> tuple[float, ...]:
    """The penalty weights the rule chooses from: a log sweep (three in ``quick``, five otherwise)."""
    if (profile or active_profile()).name == "quick":
        return (1e-3, 1e-2, 1e-1)
    return (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def sweep_jobs(data: str | dict, penalties: tuple[str, ...], k: int, profile: Profile | None = None,
               **overrides) -> list[Job]:
    """The baseline and each of ``penalties`` at each weight of `sweep_weights`, at training budget ``k``,
    on the profile's first seed, as `Job` s (``overrides`` go to every `TrainConfig`). No probes: the
    rule reads R^2 only (a run a grid shares gets its probes when the grid asks for them)."""
    profile = profile or active_profile()
    methods = [METHODS["baseline"]] + [replace(METHODS[p], weight=w) for p in penalties for w in sweep_weights(profile)]
    return grid_jobs(data, methods, [k], seeds=profile.seeds[:1], profile=profile, probe_ms=(), **overrides)


def sweep_grid(data: str | dict, penalty: str, k: int, profile: Profile | None = None, **overrides) -> list[dict]:
    """The rows of the baseline and ``penalty`` at each weight of `sweep_weights` (see `sweep_jobs`)."""
    return run_jobs(sweep_jobs(data, (penalty,), k, profile, **overrides), progress=False)


def pick_weights(rows: list[dict], penalties: tuple[str, ...], profile: Profile | None = None) -> dict[str, float]:
    """{penalty: the weight `rule_weight` picks} from sweep rows holding the baseline and each penalty;
    the smallest weight of the sweep when none keeps R^2 within the tolerance."""
    picked = {}
    for penalty in penalties:
        weight = rule_weight([r for r in rows if r["method"] == "baseline" or r["penalty"] == penalty])
        picked[penalty] = weight if weight is not None else min(sweep_weights(profile))
    return picked


def rule_weight(rows: list[dict], tolerance: float = TOLERANCE) -> float | None:
    """The weight the rule picks from the rows of a `sweep_grid`: the largest one whose test R^2
    (`COST_METRIC`, mean over its seeds) stays within ``tolerance`` of the baseline's; None if no weight
    qualifies."""
    base = [r[COST_METRIC] for r in rows if r["method"] == "baseline"]
    if not base:
        return None
    floor = sum(base) / len(base) - tolerance
    by_weight: dict[float, list[float]] = {}
    for row in rows:
        if row["method"] != "baseline":
            by_weight.setdefault(row["weight"], []).append(row[COST_METRIC])
    good = [w for w, r2 in by_weight.items() if sum(r2) / len(r2) >= floor]
    return max(good) if good else None


class WeightSearch:
    """The rule's pick for one penalty found with fewer runs: the sweep's weights are tried from the largest
    down, and the first whose row `rule_weight` accepts (against the baseline's) is the pick, which is the
    largest accepted weight of the whole sweep; when none is accepted, the smallest, as `pick_weights`.
    ``reproduce`` searches so; the chapters train the whole sweep, to draw it."""

    def __init__(self, profile: Profile | None = None) -> None:
        self.weights = sorted(sweep_weights(profile), reverse=True)
        self.left, self.pick = list(self.weights), None

    def next_weight(self) -> float | None:
        """The weight to train next, None once the pick is known."""
        return None if self.pick is not None else self.left[0]

    def judge(self, baseline: dict, row: dict) -> None:
        """Take the row of the penalty at `next_weight` (with the baseline's row of the same sweep)."""
        weight = self.left.pop(0)
        if rule_weight([baseline, row]) == weight:
            self.pick = weight
        elif not self.left:
            self.pick = min(self.weights)


def chosen_weights(data: str | dict, k: int, profile: Profile | None = None, penalties: tuple[str, ...] = tuple(PENALTY_WEIGHTS),
                   **overrides) -> dict[str, float]:
    """{penalty: weight} that the rule picks on ``data`` at training budget ``k`` for each of ``penalties``
    (`pick_weights` over one sweep of them all; the sweeps are trained once, then cached)."""
    return pick_weights(run_jobs(sweep_jobs(data, penalties, k, profile, **overrides), progress=False), penalties,
                        profile)
