"""The chapters' findings in plain words: Markdown whose numbers and directions come from the rows.

A chapter's verdict is written when the chapter runs, for the profile it runs under. Every number
is a mean ± std over seeds (`sae_lite.study.stats.summarize`); every direction ("higher", "lower", "about
the same") is chosen by the two-standard-error rule of `sae_lite.study.stats.outcome`, so a sentence stays true
when the numbers change. With one seed the spread is unknown: directions are read on the sign
alone, and the text says so. This module only presents results; no run depends on it.
"""

from __future__ import annotations

import math

from sae_lite.errors import SaeLiteError
from sae_lite.study import claims, stats
from sae_lite.study.profiles import PROFILE_SETTINGS, Profile, active_profile
from sae_lite.study.stats import summarize
from sae_lite.study.weights import TOLERANCE

#: How an outcome of `sae_lite.study.stats.outcome` (direction "higher") reads for a value and for a count.
HIGHER = {"supports": "higher", "contradicts": "lower", "inconclusive": "about the same"}
MORE = {"supports": "more", "contradicts": "fewer", "inconclusive": "about as many"}
#: How the text names the methods of `sae_lite.study.methods.METHODS`.
NAMES = {"baseline": "Top-k", "ratio": "Top-k + ratio", "softsae": "SoftSAE", "batchtopk": "BatchTopK",
         "abstopk": "AbsTopK"}


def by_method(rows: list[dict], metrics: list[str]) -> dict[str, dict]:
    """`sae_lite.study.stats.summarize` of ``rows`` (one grid cell) keyed by method."""
    return {entry["method"]: entry for entry in summarize(rows, metrics, by=("method",))}


def value(entry: dict, metric: str, digits: int = 3, percent: bool = False) -> str:
    """``mean ± std`` of ``metric`` in a `summarize` entry; the mean alone where the spread was not
    measured (one seed, or one finite value)."""
    mean, std = entry[f"{metric}_mean"], entry[f"{metric}_std"]
    if math.isnan(mean):
        return "undefined"
    scale, unit = (100, " %") if percent else (1, "")
    spread = f" ± {std * scale:.{digits}f}" if entry["n"] > 1 and math.isfinite(std) else ""
    return f"{mean * scale:.{digits}f}{spread}{unit}"


def part(rows: list[dict], metric: str, treatment: str, control: str) -> dict:
    """`sae_lite.study.stats.compare` of treatment vs control on ``metric`` over all ``rows`` (one grid cell)."""
    parts = stats.compare(rows, metric, treatment, control, by=())
    if not parts:
        raise SaeLiteError(f"no rows of both {treatment!r} and {control!r} with {metric!r}; "
                           "pass the rows of the chapter's grid")
    return parts[0]


def word(rows: list[dict], metric: str, treatment: str, control: str, words: dict[str, str] = HIGHER) -> str:
    """Treatment vs control on ``metric`` in one word, by the rule of `sae_lite.study.stats.outcome`."""
    compared = part(rows, metric, treatment, control)
    if math.isnan(compared["diff"]):
        return "not comparable"
    return words[stats.outcome(compared, "higher")]


def than(direction: str, name: str) -> str:
    """``higher than NAME``, ``about the same as NAME``, ..."""
    return f"{direction} as {name}" if direction.startswith("about") else \
        f"{direction} with {name}" if direction == "not comparable" else f"{direction} than {name}"


def tally(rows: list[dict], treatment: str, controls: list[str], metrics: dict[str, str]) -> str:
    """``higher on R²; lower on MS and purity``: treatment against every control, metric by metric
    (``mixed`` where the controls disagree)."""
    groups: dict[str, list[str]] = {}
    for metric, label in metrics.items():
        directions = {word(rows, metric, treatment, control) for control in controls}
        groups.setdefault(directions.pop() if len(directions) == 1 else "mixed", []).append(label)
    return "; ".join(f"{direction} on {' and '.join(labels)}" for direction, labels in groups.items())


def spread(n: int) -> str:
    """What the seeds allow one to read from the text above."""
    if n > 1:
        return (f"Means ± std over {n} seeds; a direction is named only where the difference exceeds two "
                "standard errors, as in the boxes.")
    default = PROFILE_SETTINGS["default"]
    return (f"**One seed: the spread is unknown**, so every direction above is read on the sign alone, "
            f"untested against the noise; judge the claims by the `default` profile ({len(default.seeds)} "
            f"seeds, {default.steps} steps).")


def verdicts(rows: list[dict], ids: list[str]) -> str:
    """``claim id: verdict`` for each of the `claims.EXTENSION_CLAIMS` named by ``ids``."""
    results = claims.evaluate_claims(rows, [claims.EXTENSION_CLAIMS[i] for i in ids])
    return "; ".join(f"`{r['claim']}` **{claims.verdict_text(r)}**" for r in results)


def report(profile: Profile | None, n: int, rows: list[dict], bullets: list[str], steps: int | None = None) -> str:
    """The verdict: a first line naming the profile and grid cell the numbers come from (``steps``:
    the runs' steps, by default the profile's), the bullets, and what the seeds allow one to read."""
    profile = profile or active_profile()
    seeds = f"{n} seed" + ("s" if n != 1 else "")
    head = f"**Plain verdict** (profile `{profile.name}`: {seeds}, {steps or profile.steps} steps, k = {rows[0]['k']}, " \
        f"`{rows[0]['data']}`)."
    return head + "\n\n" + "\n".join(f"- {b}" for b in bullets) + "\n\n" + spread(n)


def signed_findings(rows: list[dict], recovery: list[dict], profile: Profile | None = None) -> str:
    """Chapter 7's verdict: AbsTopK against Top-k on signed planted atoms.

    ``rows``: `grids.signed`; ``recovery``: one dict per run with ``method``, ``seed``,
    ``best |cos|`` and ``best cos (signed)`` (the recovery score without and with the sign).
    """
    s = by_method(rows, ["opposite_pairs", "pair", "one_latent", "missed", "r2", "signed_atoms"])
    rec = by_method(recovery, ["best |cos|", "best cos (signed)"])
    if not {"baseline", "abstopk"} <= s.keys() & rec.keys():
        raise SaeLiteError("signed_findings needs the rows of both 'baseline' and 'abstopk' (grids.signed())")
    t, a, n = s["baseline"], s["abstopk"], min(s["baseline"]["n"], s["abstopk"]["n"])
    pct = lambda e, m: value(e, m, 1, percent=True)  # noqa: E731
    cost = {"supports": f"no reconstruction cost (any drop is within the boxes' tolerance of {TOLERANCE})",
            "contradicts": f"a reconstruction cost beyond the boxes' tolerance of {TOLERANCE}",
            "inconclusive": f"the noise cannot tell whether it costs more than the tolerance of {TOLERANCE}"
            }[stats.outcome(part(rows, "r2", "abstopk", "baseline"), "no cost")]
    signed_gap = rec["baseline"]["best cos (signed)_mean"] - rec["abstopk"]["best cos (signed)_mean"]
    abs_gap = rec["baseline"]["best |cos|_mean"] - rec["abstopk"]["best |cos|_mean"]
    bullets = [
        f"*Opposite pairs.* Top-k dictionaries held {value(t, 'opposite_pairs', 1)} pairs of nearly opposite "
        f"atoms, AbsTopK dictionaries {value(a, 'opposite_pairs', 1)} "
        f"({word(rows, 'opposite_pairs', 'abstopk', 'baseline', MORE)}).",
        f"*Signed atoms.* Of the {t['signed_atoms_mean']:.0f} signed atoms of the test split, Top-k covered "
        f"{pct(t, 'pair')} with such a pair and {pct(t, 'one_latent')} with a single latent; AbsTopK covered "
        f"{pct(a, 'pair')} with a pair ({word(rows, 'pair', 'abstopk', 'baseline')}) and {pct(a, 'one_latent')} "
        f"with exactly one latent ({word(rows, 'one_latent', 'abstopk', 'baseline')}). Top-k missed "
        f"{pct(t, 'missed')} of them and AbsTopK {pct(a, 'missed')} (no latent with |cos| > 0.9).",
        f"*Reconstruction.* AbsTopK's R² was {value(a, 'r2')} against Top-k's {value(t, 'r2')}: {cost}.",
        f"*Recovery.* The signed recovery score of chapter 1 was {value(rec['abstopk'], 'best cos (signed)')} for "
        f"AbsTopK against {value(rec['baseline'], 'best cos (signed)')} "
        f"({word(recovery, 'best cos (signed)', 'abstopk', 'baseline')}); with the sign ignored (|cos|) "
        f"{value(rec['abstopk'], 'best |cos|')} against {value(rec['baseline'], 'best |cos|')} "
        f"({word(recovery, 'best |cos|', 'abstopk', 'baseline')})."]
    if signed_gap > 0 and abs_gap < signed_gap:
        bullets[-1] += (f" Ignoring the sign closes {1 - max(abs_gap, 0) / signed_gap:.0%} of AbsTopK's signed gap: "
                        "that part is atoms it learned with the opposite sign.")
    bullets.append(f"By the rule of the boxes: {verdicts(rows, ['abstopk_pairs', 'abstopk_single'])}.")
    return report(profile, n, rows, bullets)


def budget_findings(rows: list[dict]) -> str:
    """Does SoftSAE's k_hat track the true number of active atoms, and better than the others' L0?"""
    s = by_method(rows, ["budget_rank_corr"])
    rho = {name: value(s[name], "budget_rank_corr") for name in ("softsae", "baseline", "ratio", "batchtopk")}
    vs = {name: word(rows, "budget_rank_corr", "softsae", name) for name in ("baseline", "ratio", "batchtopk")}
    text = (f"*Does the budget follow the data?* Spearman ρ between SoftSAE's $\\hat k(\\mathbf{{x}})$ and the "
            f"true number of active atoms was {rho['softsae']}, {than(vs['baseline'], 'that of Top-k')}'s L0 "
            f"({rho['baseline']}). The L0 of Top-k + ratio reached {rho['ratio']} and that of BatchTopK "
            f"{rho['batchtopk']}: SoftSAE's ρ was {than(vs['ratio'], 'the first')} and {than(vs['batchtopk'], 'the second')}. ")
    if vs["baseline"] == "not comparable":
        text += "Top-k's ρ is undefined: its L0 was the same on every test input. "
    elif vs["baseline"] != "higher":
        against = " Its k̂ even runs against the true count (ρ < 0)." if s["softsae"]["budget_rank_corr_mean"] < 0 else ""
        return text + ("So here SoftSAE's budget does not track the data better than Top-k's L0 (at most k by "
                       "construction)." + against)
    rivals = [NAMES[name] for name in ("ratio", "batchtopk") if vs[name] != "higher"]
    if rivals:
        return text + (f"So the budget tracks the data, but that is not special to SoftSAE: {' and '.join(rivals)} "
                       "track it as well or better without a budget head.")
    return text + "So the budget tracks the data, better than every other rule here."


def matched_findings(rows: list[dict], same_l0: list[dict]) -> str:
    """SoftSAE against Top-k and Top-k + ratio trained at its mean L0."""
    s = by_method(same_l0, ["l0", "r2", "ms_mean", "purity_mean"])
    r2 = part(same_l0, "r2", "softsae", "baseline")
    se = "" if math.isnan(r2["se"]) else f" ± {r2['se']:.3f}"
    three = lambda m: f"{value(s['softsae'], m)} against {value(s['baseline'], m)} and {value(s['ratio'], m)}"  # noqa: E731
    summary = tally(same_l0, "softsae", ["baseline", "ratio"],
                    {"r2": "R²", "ms_mean": "monosemanticity", "purity_mean": "class purity"})
    return (f"*At matched mean L0.* SoftSAE settled at a mean L0 of {value(s['softsae'], 'l0', 2)} (target "
            f"k = {rows[0]['k']}); Top-k and Top-k + ratio were trained at k = {same_l0[0]['k']}. R² {three('r2')} "
            f"(SoftSAE − Top-k: {r2['diff']:+.3f}{se}); monosemanticity {three('ms_mean')}; class purity "
            f"{three('purity_mean')}. Against both, SoftSAE is {summary}.")


def inference_findings(rows: list[dict]) -> str:
    """R² at inference budgets k' other than k, and the top-m probes, across the four rules."""
    s = by_method(rows, ["l0", "r2", "r2_x0.25", "r2_x2", "r2_x4", "probe_m1"])
    bt, topk = s["batchtopk"], s["baseline"]
    at = lambda m: f"{value(bt, m)} against {value(topk, m)} ({word(rows, m, 'batchtopk', 'baseline')})"  # noqa: E731
    text = (f"*k' and probing.* BatchTopK's R² at k' = 2k was {at('r2_x2')}, at 4k {at('r2_x4')}, and below k "
            f"(k/4) {at('r2_x0.25')}, each against Top-k's. SoftSAE run as a per-input Top-k' reached "
            f"{value(s['softsae'], 'r2_x4')} at 4k (its own R²: {value(s['softsae'], 'r2')}); its decoder was "
            f"trained on about {s['softsae']['l0_mean']:.0f} units per input.")
    probes = [entry["probe_m1_mean"] for entry in s.values() if not math.isnan(entry["probe_m1_mean"])]
    if probes:
        text += (f" Probes on the top-1 code (m = 1) of the {len(probes)} rules ranged from {min(probes):.3f} "
                 f"to {max(probes):.3f} "
                 f"(a spread of {max(probes) - min(probes):.3f}).")
    return text


def adaptive_findings(rows: list[dict], same_l0: list[dict], profile: Profile | None = None) -> str:
    """Chapter 8's verdict: SoftSAE's budget, the matched-L0 comparison, and k' and probing.

    ``rows``: `grids.adaptive`; ``same_l0``: `grids.matched` of those rows.
    """
    missing = {"baseline", "ratio", "softsae", "batchtopk"} - {row["method"] for row in rows}
    if missing:
        raise SaeLiteError(f"adaptive_findings needs the rows of {sorted(missing)} too (grids.adaptive())")
    n = min(entry["n"] for table in (rows, same_l0) for entry in by_method(table, []).values())
    bullets = [budget_findings(rows), matched_findings(rows, same_l0), inference_findings(rows),
               f"By the rule of the boxes: "
               f"{verdicts(rows, ['softsae_budget'])}; "
               f"{verdicts(same_l0, ['softsae_matched', 'softsae_matched_interpretability'])}."]
    return report(profile, n, rows, bullets)


def real_findings(rows: list[dict], profile: Profile | None = None) -> str:
    """The real-data chapter's verdict: the paper's five methods on one real cell (`grids.real`)."""
    missing = {"baseline", "offsupport", "ratio", "offsupport-nomask", "ratio-nomask"} - {r["method"] for r in rows}
    if missing:
        raise SaeLiteError(f"real_findings needs the rows of {sorted(missing)} too (grids.real())")
    s = by_method(rows, ["r2_vw", "ms_mean", "purity_mean", "dead"])
    n = min(entry["n"] for entry in s.values())
    base = s["baseline"]
    bullets = []
    for name, label in (("offsupport", "The off-support L1"), ("ratio", "The L1/L2 ratio")):
        cost = stats.outcome(part(rows, "r2_vw", name, "baseline"), "no cost")
        bullets.append(
            f"*{label}.* MS {value(s[name], 'ms_mean')} against the baseline's {value(base, 'ms_mean')} "
            f"({word(rows, 'ms_mean', name, 'baseline')}); class purity {value(s[name], 'purity_mean')} against "
            f"{value(base, 'purity_mean')} ({word(rows, 'purity_mean', name, 'baseline')}); variance-weighted R² "
            f"{value(s[name], 'r2_vw')} against {value(base, 'r2_vw')} ({_COST[cost]}).")
    bullets.append(
        f"*The mask.* Dead latents: off-support {value(s['offsupport'], 'dead', 1)} with the mask and "
        f"{value(s['offsupport-nomask'], 'dead', 1)} without ({word(rows, 'dead', 'offsupport-nomask', 'offsupport', MORE)} "
        f"without); ratio {value(s['ratio'], 'dead', 1)} and {value(s['ratio-nomask'], 'dead', 1)} "
        f"({word(rows, 'dead', 'ratio-nomask', 'ratio', MORE)} without).")
    results = claims.evaluate_claims(rows)
    bullets.append("By the rule of the boxes: " + "; ".join(
        f"`{r['claim']}` **{claims.verdict_text(r)}**" for r in results) + ".")
    profile = profile or active_profile()
    return report(profile, n, rows, bullets, steps=profile.real.steps)


_COST = {"supports": f"no reconstruction cost beyond the tolerance of {TOLERANCE}",
         "contradicts": f"a reconstruction cost beyond the tolerance of {TOLERANCE}",
         "inconclusive": f"the noise cannot tell whether it costs more than {TOLERANCE}"}
