import math

import numpy as np
import pytest

from sae_lite.book import boxes
from sae_lite.errors import SaeLiteError
from sae_lite.study import claims, stats
from sae_lite.study.claims import CLAIMS, Claim, evaluate_claims, to_markdown
from sae_lite.study.stats import compare


def rows_for(values: dict[str, list[float]], metric: str, data: str = "planted", k: int = 16, **extra) -> list[dict]:
    """One hand-made grid row per (method, seed) with ``metric`` set to the given values."""
    return [{"data": data, "method": method, "k": k, "seed": seed, metric: value, **extra}
            for method, seed_values in values.items() for seed, value in enumerate(seed_values)]


def test_compare_gives_means_difference_and_standard_error():
    rows = rows_for({"ratio": [0.5, 0.6, 0.7], "baseline": [0.1, 0.2, 0.3]}, "probe_m1")
    [part] = compare(rows, "probe_m1", "ratio", "baseline")
    assert (part["data"], part["k"], part["n_t"], part["n_c"]) == ("planted", 16, 3, 3)
    assert part["diff"] == pytest.approx(0.4)
    s = np.std([0.5, 0.6, 0.7], ddof=1)
    assert part["se"] == pytest.approx(math.sqrt(2 * s**2 / 3))
    assert compare(rows, "probe_m1", "ratio", "offsupport") == []       # control never run


def test_a_difference_needs_two_standard_errors_computed_by_hand():
    """Two seeds a side, each with sample standard deviation sqrt(0.02) (ddof = 1), so
    SE = sqrt(0.02 / 2 + 0.02 / 2) = 0.1414: a difference of 0.25 (1.77 SE) is inconclusive, one of
    0.45 (3.18 SE) supports "higher" and contradicts "lower"."""
    control = [0.1, 0.3]
    [near] = compare(rows_for({"ratio": [0.35, 0.55], "baseline": control}, "ms_mean"), "ms_mean", "ratio", "baseline")
    assert near["std_t"] == pytest.approx(math.sqrt(0.02)) and near["se"] == pytest.approx(math.sqrt(0.02))
    assert near["diff"] == pytest.approx(0.25)
    assert stats.outcome(near, "higher") == stats.outcome(near, "lower") == "inconclusive"
    [far] = compare(rows_for({"ratio": [0.55, 0.75], "baseline": control}, "ms_mean"), "ms_mean", "ratio", "baseline")
    assert (stats.outcome(far, "higher"), stats.outcome(far, "lower")) == ("supports", "contradicts")
    assert stats.verdict(["supports", "supports"]) == "holds"
    assert stats.verdict(["supports", "inconclusive"]) == "mixed"
    assert stats.verdict(["contradicts", "inconclusive"]) == "does not hold"


PROBING = [CLAIMS["probing"]]


def probing_rows(m1: list[float], m2: list[float], m4: list[float]) -> list[dict]:
    base = [0.50, 0.51, 0.49]
    rows = []
    for metric, treated in (("probe_m1", m1), ("probe_m2", m2), ("probe_m4", m4)):
        rows += rows_for({"ratio": treated, "baseline": base}, metric)
    merged: dict = {}
    for row in rows:                                                    # one row per run, as run_grid gives
        merged.setdefault((row["method"], row["seed"]), {}).update(row)
    return list(merged.values())


def test_every_verdict_is_reachable():
    up, same, down = [0.60, 0.61, 0.59], [0.50, 0.52, 0.48], [0.40, 0.41, 0.39]
    [holds] = evaluate_claims(probing_rows(up, up, up), PROBING)
    [mixed] = evaluate_claims(probing_rows(up, same, down), PROBING)
    [fails] = evaluate_claims(probing_rows(down, same, down), PROBING)
    assert (holds["verdict"], mixed["verdict"], fails["verdict"]) == ("holds", "mixed", "does not hold")
    assert [p["outcome"] for p in mixed["parts"]] == ["supports", "inconclusive", "contradicts"]
    sentence = claims.reading(mixed)
    assert sentence.startswith("1 of 3 parts support the claim.")
    assert "Against it: probe_m4 (ratio vs baseline, k=16: -0.100)" in sentence and "Within the noise: probe_m2" in sentence
    assert claims.reading(holds) == "3 of 3 parts support the claim."
    assert holds["seeds"] == 3 and holds["spread_known"]


def test_a_single_seed_says_the_spread_is_unknown():
    rows = [r for r in probing_rows([0.6] * 3, [0.6] * 3, [0.6] * 3) if r["seed"] == 0]
    [result] = evaluate_claims(rows, PROBING)
    assert result["verdict"] == "holds" and not result["spread_known"]
    assert "spread is unknown" in claims.verdict_text(result)
    assert "± ?" in to_markdown([result])


def test_no_cost_parts_fail_on_a_real_drop():
    claim = Claim("toy", "up at no cost", metrics=("ms_mean",), no_cost=("r2",), pairs=(("ratio", "baseline"),))
    ms = {"ratio": [0.3, 0.31, 0.29], "baseline": [0.2, 0.21, 0.19]}

    def result(r2_ratio):
        rows = [dict(a, r2=b) for a, b in zip(rows_for(ms, "ms_mean"), r2_ratio + [0.9, 0.9, 0.9])]
        return evaluate_claims(rows, [claim])[0]

    assert result([0.899, 0.898, 0.899])["verdict"] == "holds"          # drop of 0.0013 < tolerance
    costly = result([0.85, 0.86, 0.85])                                   # drop of 0.047
    assert costly["verdict"] == "mixed"
    assert [p["outcome"] for p in costly["parts"]] == ["supports", "contradicts"]
    noisy = result([0.95, 0.88, 0.85])                                    # drop of 0.007 ± 0.030
    assert [p["outcome"] for p in noisy["parts"]] == ["supports", "inconclusive"]


def test_lower_direction_and_data_sets_are_separate():
    claim = Claim("toy", "fewer dead", metrics=("dead",), pairs=(("ratio", "baseline"),), direction="lower")
    rows = rows_for({"ratio": [1, 2, 1], "baseline": [9, 8, 9]}, "dead", data="planted") \
        + rows_for({"ratio": [9, 8, 9], "baseline": [1, 2, 1]}, "dead", data="digits")
    verdicts = {r["data"]: r["verdict"] for r in evaluate_claims(rows, [claim])}
    assert verdicts == {"planted": "holds", "digits": "does not hold"}


def test_errors_are_clear():
    with pytest.raises(SaeLiteError, match="direction"):
        Claim("x", "s", metrics=("r2",), pairs=(("a", "b"),), direction="up")
    with pytest.raises(SaeLiteError, match="no part"):
        stats.verdict([])
    assert evaluate_claims([], PROBING) == []


def test_claims_name_methods_that_exist():
    for claim in CLAIMS.values():
        assert claims.methods(claim)
    names = [m.name for m in claims.methods(CLAIMS["mask"])]
    assert "ratio-nomask-noauxk" in names and "offsupport" in names
    assert not next(m for m in claims.methods(CLAIMS["mask"]) if m.name == "ratio-noauxk").auxk


def test_boxes_are_myst_admonitions():
    [result] = evaluate_claims(probing_rows([0.6, 0.61, 0.59], [0.6] * 3, [0.6, 0.62, 0.6]), PROBING)
    text = boxes.box([result])
    assert text.startswith(":::{admonition} What the paper claims / what we measured") and text.rstrip().endswith(":::")
    assert "| probe_m1 | 16 | ratio | baseline |" in text
    measured = boxes.measured_markdown({"n": 3, "r2_mean": 0.8, "r2_std": 0.01}, "baseline")
    assert "| r2 | 0.800 ± 0.010 |" in measured and "3 seed(s)" in measured


def test_a_box_without_results_is_refused():
    # rows without the claim's treatment: an empty box would render as a Sphinx error, not as a claim
    rows = [r for r in probing_rows([0.6] * 3, [0.6] * 3, [0.6] * 3) if r["method"] != "ratio"]
    with pytest.raises(ValueError, match="no claim could be judged"):
        boxes.box(evaluate_claims(rows, PROBING))


def test_the_takeaway_box_gives_its_points_and_each_verdict_measured():
    [result] = evaluate_claims(probing_rows([0.6, 0.61, 0.59], [0.6] * 3, [0.6, 0.62, 0.6]), PROBING)
    text = boxes.takeaway(["Top-k fixes the budget.", "R² grows with k."], [result])
    assert text.startswith(":::{admonition} What to take away") and text.rstrip().endswith(":::")
    assert "- Top-k fixes the budget.\n- R² grows with k." in text
    assert f"- `{result['claim']}` on `{result['data']}`: **{claims.verdict_text(result)}**" in text
    assert "Measured in this build" not in boxes.takeaway(["one point"])
    with pytest.raises(ValueError, match="at least one point"):
        boxes.takeaway([])
