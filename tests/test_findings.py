import math

import pytest

from sae_lite.book import findings
from sae_lite.errors import SaeLiteError
from sae_lite.study.profiles import PROFILE_SETTINGS

DEFAULT, QUICK = PROFILE_SETTINGS["default"], PROFILE_SETTINGS["quick"]


def rows_of(values: dict[str, dict[str, list[float]]], data: str = "planted", k: int = 16) -> list[dict]:
    """One hand-made grid row per (method, seed): ``values[method][metric]`` lists one value per seed."""
    rows = []
    for method, metrics in values.items():
        for seed in range(len(next(iter(metrics.values())))):
            rows.append({"data": data, "method": method, "k": k, "seed": seed,
                         **{metric: seeds[seed] for metric, seeds in metrics.items()}})
    return rows


TOPK = {"opposite_pairs": [37, 38, 40], "pair": [0.70, 0.75, 0.76], "one_latent": [0.02, 0.04, 0.06],
        "missed": [0.22, 0.23, 0.23], "r2": [0.860, 0.861, 0.859], "signed_atoms": [44, 44, 44]}
ABSTOPK = {"opposite_pairs": [0, 0, 0], "pair": [0.0, 0.0, 0.0], "one_latent": [0.77, 0.78, 0.76],
           "missed": [0.22, 0.23, 0.23], "r2": [0.867, 0.866, 0.868], "signed_atoms": [44, 44, 44]}
RECOVERY = {"baseline": {"best |cos|": [0.935, 0.933, 0.937], "best cos (signed)": [0.93, 0.93, 0.93]},
            "abstopk": {"best |cos|": [0.92, 0.917, 0.923], "best cos (signed)": [0.67, 0.69, 0.71]}}


def signed_text(topk: dict, abstopk: dict, seeds: int = 3, profile=DEFAULT) -> str:
    cut = lambda table: {name: {m: v[:seeds] for m, v in metrics.items()} for name, metrics in table.items()}  # noqa: E731
    rows = rows_of(cut({"baseline": topk, "abstopk": abstopk}), data="planted-signed")
    return findings.signed_findings(rows, rows_of(cut(RECOVERY)), profile)


def test_signed_findings_put_the_measured_numbers_in_the_text():
    text = signed_text(TOPK, ABSTOPK)
    assert "profile `default`: 3 seeds, 3000 steps, k = 16, `planted-signed`" in text
    assert "38.3 ± 1.5 pairs" in text and "dictionaries 0.0 ± 0.0 (fewer)" in text
    assert "Of the 44 signed atoms" in text and "73.7 ± 3.2 %" in text and "77.0 ± 1.0 %" in text
    assert "0.867 ± 0.001 against Top-k's 0.860 ± 0.001: no reconstruction cost" in text
    assert "0.690 ± 0.020 for AbsTopK against 0.930 ± 0.000 (lower)" in text
    assert "Ignoring the sign closes 94%" in text                      # 1 - 0.015 / 0.24
    assert "`abstopk_pairs` **holds (3 seeds)**" in text and "Means ± std over 3 seeds" in text


def test_signed_findings_flip_their_words_with_the_numbers():
    text = signed_text(ABSTOPK, TOPK)                                  # AbsTopK now has the pairs
    assert "(more)" in text and "`abstopk_pairs` **does not hold (3 seeds)**" in text
    assert "a reconstruction cost beyond the boxes' tolerance of 0.005" in text
    assert "Ignoring the sign" in text                                 # the recovery rows did not change
    same = {**TOPK, "opposite_pairs": [36, 38, 41]}
    assert "(about as many)" in signed_text(TOPK, same)               # within two standard errors


def test_one_seed_says_the_spread_is_unknown():
    text = signed_text(TOPK, ABSTOPK, seeds=1, profile=QUICK)
    assert "profile `quick`: 1 seed, 600 steps" in text
    assert "±" not in text.split("**One seed")[0]                     # no made-up spread
    assert "One seed: the spread is unknown" in text and "`default` profile (3 seeds, 3000 steps)" in text
    assert "on the sign alone (1 seed: the spread is unknown)" in text


ADAPTIVE = {
    "baseline": {"budget_rank_corr": [0.08, 0.05, 0.12], "l0": [16, 16, 16], "r2": [0.9, 0.9, 0.9],
                 "r2_x0.25": [0.72, 0.73, 0.725], "r2_x2": [0.86, 0.862, 0.861], "r2_x4": [0.83, 0.835, 0.828],
                 "probe_m1": [0.83, 0.84, 0.85]},
    "ratio": {"budget_rank_corr": [0.70, 0.71, 0.715], "l0": [15, 15, 15], "r2": [0.9, 0.9, 0.9],
              "r2_x0.25": [0.7, 0.7, 0.7], "r2_x2": [0.86, 0.86, 0.86], "r2_x4": [0.83, 0.83, 0.83],
              "probe_m1": [0.85, 0.85, 0.85]},
    "softsae": {"budget_rank_corr": [0.70, 0.71, 0.725], "l0": [10.97, 10.98, 10.99], "r2": [0.878, 0.877, 0.879],
                "r2_x0.25": [0.5, 0.5, 0.5], "r2_x2": [0.6, 0.6, 0.6], "r2_x4": [0.38, 0.39, 0.37],
                "probe_m1": [0.824, 0.83, 0.83]},
    "batchtopk": {"budget_rank_corr": [0.86, 0.862, 0.865], "l0": [16, 16, 16], "r2": [0.9, 0.9, 0.9],
                  "r2_x0.25": [0.68, 0.69, 0.688], "r2_x2": [0.884, 0.882, 0.886], "r2_x4": [0.88, 0.878, 0.882],
                  "probe_m1": [0.858, 0.858, 0.858]}}
MATCHED = {"softsae": {"l0": [10.97, 10.98, 10.99], "r2": [0.878, 0.877, 0.879], "ms_mean": [0.150, 0.152, 0.154],
                       "purity_mean": [0.39, 0.38, 0.40]},
           "baseline": {"l0": [11, 11, 11], "r2": [0.858, 0.857, 0.859], "ms_mean": [0.178, 0.179, 0.181],
                        "purity_mean": [0.47, 0.48, 0.47]},
           "ratio": {"l0": [11, 11, 11], "r2": [0.857, 0.857, 0.857], "ms_mean": [0.20, 0.21, 0.21],
                     "purity_mean": [0.54, 0.53, 0.55]}}


def adaptive_text(adaptive: dict = ADAPTIVE, matched: dict = MATCHED, profile=DEFAULT) -> str:
    return findings.adaptive_findings(rows_of(adaptive), rows_of(matched, k=11), profile)


def test_adaptive_findings_put_the_measured_numbers_in_the_text():
    text = adaptive_text()
    assert "was 0.712 ± 0.013, higher than that of Top-k's L0 (0.083 ± 0.035)" in text
    assert "ρ was about the same as the first and lower than the second" in text
    assert "not special to SoftSAE: Top-k + ratio and BatchTopK" in text
    assert "mean L0 of 10.98 ± 0.01 (target k = 16); Top-k and Top-k + ratio were trained at k = 11" in text
    assert "SoftSAE − Top-k: +0.020 ± 0.001" in text
    assert "SoftSAE is higher on R²; lower on monosemanticity and class purity" in text
    assert "R² at k' = 2k was 0.884 ± 0.002 against 0.861 ± 0.001 (higher)" in text
    assert "(m = 1) of the 4 rules ranged from 0.828 to 0.858 (a spread of 0.030)" in text
    assert "`softsae_matched` **holds (3 seeds)**" in text


def test_adaptive_findings_flip_their_words_with_the_numbers():
    swapped = {**MATCHED, "softsae": MATCHED["ratio"], "ratio": MATCHED["softsae"]}
    text = adaptive_text(matched=swapped)                              # SoftSAE as good as Top-k, below ratio
    assert "SoftSAE is mixed on R²; higher on monosemanticity and class purity" in text
    assert "`softsae_matched` **does not hold (3 seeds)**" in text
    best = {**ADAPTIVE, "softsae": {**ADAPTIVE["softsae"], "budget_rank_corr": [0.95, 0.96, 0.97]}}
    assert "better than every other rule here" in adaptive_text(best)
    worst = {**ADAPTIVE, "softsae": {**ADAPTIVE["softsae"], "budget_rank_corr": [-0.2, -0.1, -0.15]}}
    assert "lower than that of Top-k's L0" in adaptive_text(worst)
    assert "does not track the data better" in adaptive_text(worst) and "runs against the true count" in adaptive_text(worst)


def test_an_undefined_correlation_is_said_so_not_compared():
    flat = {**ADAPTIVE, "baseline": {**ADAPTIVE["baseline"], "budget_rank_corr": [math.nan] * 3}}
    text = adaptive_text(flat)
    assert "not comparable with that of Top-k's L0 (undefined)" in text and "its L0 was the same" in text


def test_adaptive_findings_with_one_seed():
    one = lambda table: {n: {m: v[:1] for m, v in ms.items()} for n, ms in table.items()}  # noqa: E731
    text = adaptive_text(one(ADAPTIVE), one(MATCHED), QUICK)
    assert "1 seed, 600 steps" in text and "One seed: the spread is unknown" in text
    assert "±" not in text.split("**One seed")[0]


def test_findings_refuse_rows_without_the_compared_methods():
    with pytest.raises(SaeLiteError, match="batchtopk"):
        adaptive_text({name: v for name, v in ADAPTIVE.items() if name != "batchtopk"})
    with pytest.raises(SaeLiteError, match="abstopk"):
        findings.signed_findings(rows_of({"baseline": TOPK}), rows_of(RECOVERY), DEFAULT)
