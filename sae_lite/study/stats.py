"""Statistics over seeds: means and spreads per group of rows, and the rule that judges a difference.

A *part* compares a treatment with a control on one metric (`compare`): the difference of the means
over seeds and its standard error sqrt(s_t^2 / n_t + s_c^2 / n_c). `outcome` judges it by two
standard errors (with a single seed, on the sign alone); `verdict` combines the parts of a claim.
`sae_lite.study.claims` states the claims this judges.
"""

from __future__ import annotations

import math

import numpy as np

from sae_lite.errors import SaeLiteError
from sae_lite.study.weights import TOLERANCE


def summarize(rows: list[dict], metrics: list[str], by: tuple[str, ...] = ("data", "method", "k")) -> list[dict]:
    """Mean, standard deviation (ddof=1) and count of each metric per group of ``by``.

    Non-finite values (and missing ones) are left out; the standard deviation is NaN (not measured,
    not 0) where fewer than two values remain, e.g. with a single seed (`plus_minus` prints it so).
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in by), []).append(row)
    table = []
    for key, members in groups.items():
        entry = dict(zip(by, key), n=len(members))
        for metric in metrics:
            values = np.array([m[metric] for m in members if metric in m], dtype=float)
            values = values[np.isfinite(values)]
            entry[f"{metric}_mean"] = float(values.mean()) if len(values) else float("nan")
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        table.append(entry)
    return table


def plus_minus(mean: float | None, std: float | None, n: int, digits: int = 3) -> str:
    """``mean ± std`` as text: ``0.180 ± 0.012``; ``0.180 ± n/a (1 seed)`` where the spread was not
    measured (a single seed; NaN or None, as read back from JSON); ``n/a`` for a mean that is missing."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if std is None or not math.isfinite(std):
        return f"{mean:.{digits}f} ± n/a ({n} seed{'' if n == 1 else 's'})"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def compare(rows: list[dict], metric: str, treatment: str, control: str,
            by: tuple[str, ...] = ("data", "k")) -> list[dict]:
    """Treatment vs control on ``metric`` for each group of ``by`` where both were run.

    Returns one dict per group: the group's keys, ``metric``, ``treatment``, ``control``,
    ``mean_t``/``std_t``/``n_t``, ``mean_c``/``std_c``/``n_c``, ``diff`` = mean_t - mean_c and ``se``
    (NaN when either side has a single seed).
    """
    table = summarize([r for r in rows if metric in r], [metric], by=(*by, "method"))
    means = {(tuple(e[key] for key in by), e["method"]): e for e in table}
    result = []
    for group in dict.fromkeys(key for key, _ in means):
        t, c = means.get((group, treatment)), means.get((group, control))
        if t is None or c is None:
            continue
        se = math.sqrt(t[f"{metric}_std"] ** 2 / t["n"] + c[f"{metric}_std"] ** 2 / c["n"]) \
            if min(t["n"], c["n"]) > 1 else math.nan
        result.append({**dict(zip(by, group)), "metric": metric, "treatment": treatment, "control": control,
                       "mean_t": t[f"{metric}_mean"], "std_t": t[f"{metric}_std"], "n_t": t["n"],
                       "mean_c": c[f"{metric}_mean"], "std_c": c[f"{metric}_std"], "n_c": c["n"],
                       "diff": t[f"{metric}_mean"] - c[f"{metric}_mean"], "se": se})
    return result


def outcome(part: dict, direction: str) -> str:
    """``supports``, ``contradicts`` or ``inconclusive`` for one compared part (see the module doc).

    ``direction`` is ``higher``, ``lower`` or ``no cost``.
    """
    diff, se = part["diff"], part["se"]
    margin = 0.0 if math.isnan(se) else 2 * se
    if direction == "no cost":
        if diff - margin > -TOLERANCE:
            return "supports"
        return "contradicts" if diff + margin < -TOLERANCE else "inconclusive"
    signed = diff if direction == "higher" else -diff
    if signed > margin:
        return "supports"
    return "contradicts" if -signed > margin else "inconclusive"


def verdict(outcomes: list[str]) -> str:
    """``holds`` if every part supports the claim, ``does not hold`` if none does, else ``mixed``."""
    if not outcomes:
        raise SaeLiteError("no part of the claim was measured; run the methods it compares first")
    supported = sum(o == "supports" for o in outcomes)
    return "holds" if supported == len(outcomes) else "does not hold" if supported == 0 else "mixed"
