import itertools

import pytest

from sae_lite.study import grids, runner, weights
from sae_lite.study.profiles import PROFILE_SETTINGS
from sae_lite.study.weights import rule_weight


def sweep_rows(r2_by_weight: dict[float, float], base: float = 0.9) -> list[dict]:
    rows = [{"method": "baseline", "weight": 0.0, "r2_vw": base}]
    return rows + [{"method": "ratio", "weight": w, "r2_vw": r2} for w, r2 in r2_by_weight.items()]


def test_rule_weight_picks_the_largest_weight_within_tolerance():
    rows = sweep_rows({0.001: 0.9, 0.01: 0.897, 0.03: 0.894, 0.1: 0.85})
    assert rule_weight(rows) == 0.01
    assert rule_weight(rows, tolerance=0.01) == 0.03
    assert rule_weight(sweep_rows({0.1: 0.5})) is None
    assert rule_weight([r for r in rows if r["method"] != "baseline"]) is None


def test_rule_weight_averages_seeds_and_keeps_a_weight_exactly_at_the_tolerance():
    """Baseline mean 0.75, tolerance 0.25: the floor is 0.5 (numbers exact in binary). Weight 0.1 averages
    exactly 0.5 over its seeds and qualifies; 0.3 averages 0.375 (its best seed alone would qualify)."""
    rows = [{"method": "baseline", "weight": 0.0, "r2_vw": v} for v in (0.5, 1.0)]
    rows += [{"method": "ratio", "weight": w, "r2_vw": v}
             for w, values in {0.01: (1.0, 1.0), 0.1: (0.25, 0.75), 0.3: (0.5, 0.25)}.items() for v in values]
    assert rule_weight(rows, tolerance=0.25) == 0.1
    assert rule_weight(rows, tolerance=0.125) == 0.01


@pytest.mark.parametrize("profile", ["quick", "default"])
def test_the_weight_search_picks_what_the_whole_sweep_picks_and_trains_only_down_to_it(profile):
    """Every pattern of accepted weights (not only monotone ones): the same pick as `pick_weights` on the
    whole sweep, after training exactly the weights from the largest down to it (all when none passes)."""
    settings = PROFILE_SETTINGS[profile]
    sweep = weights.sweep_weights(settings)
    baseline = {"method": "baseline", "penalty": "none", "weight": 0.0, "r2_vw": 0.75}
    for accepted in itertools.product((False, True), repeat=len(sweep)):
        r2 = {w: 0.75 if ok else 0.5 for w, ok in zip(sweep, accepted)}
        search, trained = weights.WeightSearch(settings), []
        while search.next_weight() is not None:
            trained.append(search.next_weight())
            search.judge(baseline, {"method": "ratio", "penalty": "ratio", "weight": trained[-1], "r2_vw": r2[trained[-1]]})
        rows = [baseline] + [{"method": "ratio", "penalty": "ratio", "weight": w, "r2_vw": v} for w, v in r2.items()]
        assert search.pick == weights.pick_weights(rows, ("ratio",), settings)["ratio"], accepted
        assert trained == sorted((w for w in sweep if w >= search.pick), reverse=True), accepted  # all when none passes


def test_pick_weights_reads_each_penalty_s_own_rows_and_falls_back_to_the_smallest_weight():
    quick = PROFILE_SETTINGS["quick"]
    rows = [{"method": "baseline", "penalty": "none", "weight": 0.0, "r2_vw": 0.75}]
    for penalty, by_weight in {"ratio": {0.001: 0.75, 0.01: 0.0}, "offsupport": {0.001: 0.0, 0.01: 1.0}}.items():
        rows += [{"method": penalty, "penalty": penalty, "weight": w, "r2_vw": v} for w, v in by_weight.items()]
    assert weights.pick_weights(rows, ("ratio", "offsupport"), quick) == {"ratio": 0.001, "offsupport": 0.01}
    worse = [dict(r, r2_vw=0.0) if r["penalty"] == "offsupport" else r for r in rows]
    assert weights.pick_weights(worse, ("offsupport",), quick) == {"offsupport": min(weights.sweep_weights(quick))}


def test_with_reference_repeats_the_baseline_for_every_slider_value():
    rows = [{"method": "ratio", "weight": w} for w in (0.01, 0.1)]
    out = grids.with_reference(rows, [{"method": "baseline", "weight": 0.0}], "weight")
    assert sorted((r["method"], r["weight"]) for r in out) == [
        ("baseline", 0.01), ("baseline", 0.1), ("ratio", 0.01), ("ratio", 0.1)]


def test_grids_scale_with_the_profile(monkeypatch):
    assert grids.ks(PROFILE_SETTINGS["quick"]) == (8, 16)
    assert grids.ks(PROFILE_SETTINGS["default"]) == (8, 16, 32)
    assert 0.01 in weights.sweep_weights(PROFILE_SETTINGS["quick"])
    assert 0.01 in weights.sweep_weights(PROFILE_SETTINGS["default"])
    assert grids.K in grids.ks(PROFILE_SETTINGS["quick"])


def test_one_setting_chooses_the_data(monkeypatch):
    monkeypatch.delenv("SAE_LITE_DATA", raising=False)
    assert grids.data_name() == "planted"
    monkeypatch.setenv("SAE_LITE_DATA", "digits")
    assert grids.data_name() == "digits"


def fake_run_jobs(calls: list):
    """A stand-in for run_jobs that records each call's (data, methods, seeds); a penalty's R^2 is
    0.9 - weight (the rule then picks 0.001 from the quick sweep: 0.01 already costs more than the tolerance)."""
    def run_jobs(jobs, progress=None):
        calls.append((jobs[0].spec.name, [job.method.name for job in jobs], {job.config.seed for job in jobs}))
        return [{"method": job.method.name, "penalty": job.method.penalty, "masked": job.method.masked,
                 "weight": job.method.weight, "k": job.config.k, "r2_vw": 0.9 - job.method.weight} for job in jobs]
    return run_jobs


@pytest.mark.parametrize("name", ["core", "sweep", "mask"])
def test_grids_share_configurations(name, monkeypatch):
    """Every grid trains through run_grid, so the same configuration is one cache entry."""
    calls = []
    monkeypatch.setattr(runner, "run_jobs", fake_run_jobs(calls))    # the grids
    monkeypatch.setattr(weights, "run_jobs", fake_run_jobs(calls))   # the sweeps
    rows = grids.sweep("ratio") if name == "sweep" else getattr(grids, name)()
    assert rows and all(call[0] == "planted" for call in calls)
    if name == "mask":
        assert {r["variant"] for r in rows} == {"offsupport, mask", "ratio, mask", "offsupport, no mask", "ratio, no mask"}
    if name == "sweep":
        assert calls[0][2] == {0}


@pytest.mark.parametrize("name", ["core", "mask", "adaptive"])
def test_chapters_train_each_penalty_at_the_weight_the_rule_picks(name, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_jobs", fake_run_jobs(calls))    # the grids
    monkeypatch.setattr(weights, "run_jobs", fake_run_jobs(calls))   # the sweeps
    assert grids.weights() == {"offsupport": 0.001, "ratio": 0.001}
    rows = getattr(grids, name)()
    penalised = [row for row in rows if row["penalty"] != "none"]
    assert penalised and all(row["weight"] == 0.001 for row in penalised)


def test_a_chapter_trains_only_the_sweeps_of_the_penalties_it_shows(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_jobs", fake_run_jobs(calls))    # the grids
    monkeypatch.setattr(weights, "run_jobs", fake_run_jobs(calls))   # the sweeps
    rows = grids.pair("ratio")
    assert {r["method"] for r in rows} == {"baseline", "ratio"}
    swept = {name for _, names, _ in calls for name in names if name != "baseline"}
    assert swept == {"ratio"}                      # no off-support sweep for a chapter on the ratio
    calls.clear()
    grids.baseline()
    assert all(set(names) == {"baseline"} for _, names, _ in calls)   # the baseline needs no sweep at all


def test_soft_alphas_trains_the_authors_rule_at_each_final_temperature(monkeypatch):
    asked = []
    monkeypatch.setattr(grids, "run_grid", lambda data, methods, ks, **kw: asked.append((data, methods, ks, kw)) or [])
    grids.soft_alphas((1e-3, 1e-2))
    (data, methods, ks, kw), = asked
    assert data == "planted" and ks == [grids.K] and kw["probe_ms"] == ()
    configs = [m.config(grids.K) for m in methods]
    assert [c.rule.name for c in configs] == ["soft", "soft"]
    assert [c.rule.alpha_final for c in configs] == [1e-3, 1e-2]
    assert [m.name for m in methods] == ["softsae, alpha 0.001", "softsae, alpha 0.01"]
