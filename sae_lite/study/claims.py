"""The paper's claims, and a verdict on each from the rows of `sae_lite.study.runner.run_grid`.

A claim compares a treatment method with a control method on some metrics. Each (metric, pair of
methods, data set, training k) is one *part* of the claim, judged by one rule:

- a directional part ("higher"/"lower") *supports* the claim if the difference of the means is in
  the claimed direction by more than two standard errors, *contradicts* it if it is in the opposite
  direction by more than two standard errors, and is *inconclusive* otherwise;
- a "no cost" part (say R^2 must not drop) *supports* the claim if the difference minus two
  standard errors stays above ``-TOLERANCE`` (any drop is smaller than the tolerance),
  *contradicts* it if the difference plus two standard errors stays below ``-TOLERANCE`` (a drop
  larger than the tolerance), and is *inconclusive* otherwise (the noise is too large to tell);
- the standard error is sqrt(s_t^2 / n_t + s_c^2 / n_c) over seeds. With a single seed the spread is
  unknown: the parts are judged on the sign alone and the verdict says so.

The claim *holds* if every part supports it, *does not hold* if none does, and is *mixed* otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sae_lite.errors import SaeLiteError
from sae_lite.files import nan_for_null
from sae_lite.study.methods import ABLATIONS, METHODS, Method
from sae_lite.study.stats import compare, outcome, plus_minus, verdict
from sae_lite.study.weights import COST_METRIC

DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: ``metrics`` move in ``direction`` for each (treatment, control) pair,
    while ``no_cost`` metrics do not drop by more than `TOLERANCE`."""

    id: str
    statement: str
    metrics: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]   # (treatment method, control method)
    direction: str = "higher"
    no_cost: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise SaeLiteError(f"claim {self.id}: direction must be one of {DIRECTIONS}, got {self.direction!r}")


CLAIMS = {claim.id: claim for claim in (
    Claim("interpretability",
          "The off-support L1 and the L1/L2 ratio raise monosemanticity and class purity at no "
          "reconstruction cost (MS in Pach et al.'s convention, ms_mean = ms_pach: a separate reference, "
          "the mean over latents where MS is defined; dead latents are judged apart).",
          metrics=("ms_mean", "purity_mean"), no_cost=(COST_METRIC,),
          pairs=(("offsupport", "baseline"), ("ratio", "baseline"))),
    Claim("inference_k",
          "The L1/L2 ratio makes the SAE more robust to an inference-time k' that differs from the "
          "training k (k' = k/4, k/2, 2k, 4k).",
          metrics=("r2_x0.25", "r2_x0.5", "r2_x2", "r2_x4"), pairs=(("ratio", "baseline"),)),
    Claim("probing",
          "The L1/L2 ratio gives better linear probes when only the top m = 1, 2, 4 activations are kept.",
          metrics=("probe_m1", "probe_m2", "probe_m4"), pairs=(("ratio", "baseline"),)),
    Claim("mask",
          "Without the batch-active mask the penalties kill latents: more dead latents than with it.",
          metrics=("dead",),
          pairs=(("offsupport-nomask", "offsupport"), ("ratio-nomask", "ratio"),
                 ("offsupport-nomask-noauxk", "offsupport-noauxk"), ("ratio-nomask-noauxk", "ratio-noauxk"))),
)}


def methods(claim: Claim) -> list[Method]:
    """The methods ``claim`` compares, from `sae_lite.study.methods.METHODS` and `sae_lite.study.methods.ABLATIONS`."""
    known = {**METHODS, **ABLATIONS}
    names = dict.fromkeys(name for pair in claim.pairs for name in pair)
    return [known[name] for name in names]


def evaluate_claims(rows: list[dict], claims: list[Claim] | None = None) -> list[dict]:
    """One result per claim and data set that the rows measure.

    Each result: ``claim``, ``statement``, ``data``, ``verdict``, ``seeds`` (the fewest seeds behind
    any mean), ``spread_known`` (at least two seeds everywhere) and ``parts`` (`compare` dicts with
    their ``direction`` and ``outcome``).
    """
    results = []
    for claim in CLAIMS.values() if claims is None else claims:
        parts = []
        for treatment, control in claim.pairs:
            for metric, direction in [(m, claim.direction) for m in claim.metrics] + [(m, "no cost") for m in claim.no_cost]:
                for part in compare(rows, metric, treatment, control):
                    parts.append({**part, "direction": direction, "outcome": outcome(part, direction)})
        for data in dict.fromkeys(p["data"] for p in parts):
            mine = [p for p in parts if p["data"] == data]
            seeds = min(min(p["n_t"], p["n_c"]) for p in mine)
            results.append({"claim": claim.id, "statement": claim.statement, "data": data,
                            "verdict": verdict([p["outcome"] for p in mine]), "seeds": seeds,
                            "spread_known": seeds > 1, "parts": mine})
    return results


def verdict_text(result: dict) -> str:
    """The verdict in words, saying when the spread over seeds is unknown."""
    if result["spread_known"]:
        return f"{result['verdict']} ({result['seeds']} seeds)"
    return f"{result['verdict']} on the sign alone (1 seed: the spread is unknown)"


def reading(result: dict) -> str:
    """One plain sentence: how many parts support the claim, and which ones go against it or are unclear."""
    parts = [nan_for_null(p) for p in result["parts"]]  # as read back from claims.json: null is NaN
    def named(kind: str) -> str:
        chosen = [p for p in parts if p["outcome"] == kind]
        return ", ".join(f"{p['metric']} ({p['treatment']} vs {p['control']}, k={p.get('k', '?')}: "
                         f"{p['diff']:+.3f})" for p in chosen)
    supported = sum(p["outcome"] == "supports" for p in parts)
    text = f"{supported} of {len(parts)} parts support the claim."
    for kind, words in (("contradicts", "Against it"), ("inconclusive", "Within the noise")):
        if named(kind):
            text += f" {words}: {named(kind)}."
    return text


def to_markdown(results: list[dict]) -> str:
    """A Markdown report: per claim and data set, the statement, the verdict and a table of parts."""
    lines = []
    for result in results:
        lines += [f"**Claim `{result['claim']}`** on `{result['data']}`: {result['statement']}",
                  "", f"Verdict: **{verdict_text(result)}**. {reading(result)}", "",
                  "| metric | k | treatment | control | treatment mean ± std | control mean ± std "
                  "| difference ± SE | claimed | outcome |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for p in map(nan_for_null, result["parts"]):  # not measured (one seed): NaN, null in claims.json
            se = "?" if math.isnan(p["se"]) else f"{p['se']:.3f}"
            lines.append(f"| {p['metric']} | {p.get('k', '')} | {p['treatment']} | {p['control']} "
                         f"| {plus_minus(p['mean_t'], p['std_t'], p['n_t'])} | {plus_minus(p['mean_c'], p['std_c'], p['n_c'])} "
                         f"| {p['diff']:+.3f} ± {se} | {p['direction']} | {p['outcome']} |")
        lines.append("")
    return "\n".join(lines)


def overview(results: list[dict]) -> str:
    """A Markdown table of each claim's verdict on every data set, side by side (claims as rows)."""
    data = list(dict.fromkeys(r["data"] for r in results))
    verdicts = {(r["claim"], r["data"]): verdict_text(r) for r in results}
    lines = ["| claim | " + " | ".join(f"`{d}`" for d in data) + " |", "|---|" + "---|" * len(data)]
    for claim in dict.fromkeys(r["claim"] for r in results):
        lines.append(f"| `{claim}` | " + " | ".join(verdicts.get((claim, d), "not measured") for d in data) + " |")
    return "\n".join(lines) + "\n"


#: The claims of chapters 7 (AbsTopK, Zhu et al. 2025) and 8 (SoftSAE, Stepien et al. 2026), judged
#: by the same rule on the rows of `grids.signed`, `grids.adaptive` and `grids.matched`.
EXTENSION_CLAIMS = {claim.id: claim for claim in (
    Claim("abstopk_pairs",
          "Top-k needs two latents with nearly opposite atoms for a signed planted atom; AbsTopK does not: "
          "fewer opposite-atom pairs and fewer signed atoms covered by such a pair.",
          metrics=("opposite_pairs", "pair"), direction="lower", pairs=(("abstopk", "baseline"),)),
    Claim("abstopk_single",
          "AbsTopK covers a signed planted atom with one latent more often than Top-k does.",
          metrics=("one_latent",), pairs=(("abstopk", "baseline"),)),
    Claim("softsae_budget",
          "SoftSAE's per-input budget k_hat(x) tracks the true number of active atoms (Spearman rank "
          "correlation), where the L0 of Top-k cannot (our test on planted data; the SoftSAE paper shows "
          "k_hat only qualitatively).",
          metrics=("budget_rank_corr",), pairs=(("softsae", "baseline"),)),
    Claim("softsae_matched",
          "At matched mean L0, SoftSAE reconstructs better than Top-k and Top-k + ratio.",
          metrics=("r2",), pairs=(("softsae", "baseline"), ("softsae", "ratio"))),
    Claim("softsae_matched_interpretability",
          "At matched mean L0, SoftSAE's latents are more monosemantic and purer than those of Top-k and "
          "Top-k + ratio (our question: the chapter compares all three on R^2, MS in Pach et al.'s convention "
          "and purity).",
          metrics=("ms_mean", "purity_mean"), pairs=(("softsae", "baseline"), ("softsae", "ratio"))),
)}
