"""The grids of runs the book's chapters walk, defined once so that chapters share their runs.

A configuration asked for by two chapters is one cache entry (`experiments.cached_run`), so the
whole book trains each run once. The data every chapter uses is one setting: ``SAE_LITE_DATA``
(``planted`` by default; ``digits`` or the directory of an embedding store work too).

Sizes per profile (seeds from the profile: 1 in ``quick``, 3 in ``default``):

- `core`: baseline and ratio at every training k of `ks`, off-support at `K`;
- `sweep`: one penalty at each weight of `sweep_weights`, at `K`, on the first seed (the rule
  that chose `experiments.WEIGHTS` was applied to exactly this sweep);
- `mask`: the mask ablations, with and without AuxK, at `K`.
"""

from __future__ import annotations

import os
from dataclasses import replace

from sae_lite.experiments import ABLATIONS, METHODS, Profile, active_profile, run_grid

#: The training budget of every single-k figure.
K = 16


def data_name() -> str:
    """The data every chapter trains on: ``SAE_LITE_DATA`` or ``planted``."""
    return os.environ.get("SAE_LITE_DATA", "planted")


def ks(profile: Profile | None = None) -> tuple[int, ...]:
    """The training budgets the k sliders walk."""
    return (8, 16) if (profile or active_profile()).name == "quick" else (8, 16, 32)


def sweep_weights(profile: Profile | None = None) -> tuple[float, ...]:
    """The penalty weights of chapters 2 and 3 (a log sweep around the chosen 0.01)."""
    if (profile or active_profile()).name == "quick":
        return (1e-3, 1e-2, 1e-1)
    return (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def core(data: str | None = None) -> list[dict]:
    """Baseline and ratio at every k of `ks`, off-support at `K`: chapters 1-3, 5 and 6."""
    data = data or data_name()
    return (run_grid(data, [METHODS["baseline"], METHODS["ratio"]], list(ks()), progress=False)
            + run_grid(data, [METHODS["offsupport"]], [K], progress=False))


def sweep(penalty: str, data: str | None = None) -> list[dict]:
    """``penalty`` at each weight of `sweep_weights` and the baseline, at `K`, on the first seed."""
    data, seed = data or data_name(), active_profile().seeds[:1]
    methods = [METHODS["baseline"]] + [replace(METHODS[penalty], weight=w) for w in sweep_weights()]
    return run_grid(data, methods, [K], seeds=seed, progress=False)


def mask(data: str | None = None) -> list[dict]:
    """Off-support and ratio with and without the batch-active mask, with and without AuxK, at `K`.

    Each row gets ``variant`` (``offsupport, mask`` ...), the same with or without AuxK.
    """
    data = data or data_name()
    names = ["offsupport", "ratio", "offsupport-nomask", "ratio-nomask"]
    methods = [METHODS[n] for n in names] + [ABLATIONS[f"{n}-noauxk"] for n in names]
    rows = run_grid(data, methods, [K], progress=False)
    return [{**row, "variant": f"{row['penalty']}, {'mask' if row['masked'] else 'no mask'}"} for row in rows]


def with_reference(rows: list[dict], reference: list[dict], key: str) -> list[dict]:
    """``rows`` plus a copy of the ``reference`` rows for every value of ``key`` in ``rows``.

    Used to show the baseline in every step of a slider over, e.g., the penalty weight.
    """
    values = sorted({row[key] for row in rows})
    return rows + [{**row, key: value} for value in values for row in reference]


def rule_weight(rows: list[dict], tolerance: float = 0.005) -> float | None:
    """The weight the stated rule picks from a `sweep`: the largest one whose test R^2 (mean over
    its seeds) stays within ``tolerance`` of the baseline's; None if no weight qualifies."""
    base = [r["r2"] for r in rows if r["method"] == "baseline"]
    if not base:
        return None
    floor = sum(base) / len(base) - tolerance
    by_weight: dict[float, list[float]] = {}
    for row in rows:
        if row["method"] != "baseline":
            by_weight.setdefault(row["weight"], []).append(row["r2"])
    good = [w for w, r2 in by_weight.items() if sum(r2) / len(r2) >= floor]
    return max(good) if good else None
