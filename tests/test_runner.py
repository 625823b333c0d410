import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sae_lite.errors import SaeLiteError
from sae_lite.study import methods, pipeline, runner
from sae_lite.study.methods import METHODS, Method
from sae_lite.study.profiles import PROFILE_SETTINGS
from sae_lite.study.runner import run_grid
from sae_lite.study.stats import summarize

TINY = replace(PROFILE_SETTINGS["quick"], steps=40, seeds=(0, 1), n_planted=1024)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAE_LITE_CACHE", str(tmp_path))
    return tmp_path


def test_methods_carry_their_recipe():
    config = METHODS["ratio-nomask"].config(k=8, seed=3, profile=TINY, n_latents=64)
    assert (config.penalty, config.masked, config.k, config.seed, config.steps) == ("ratio", False, 8, 3, 40)
    assert config.weight == methods.PENALTY_WEIGHTS["ratio"] > 0
    assert METHODS["baseline"].config(k=8, profile=TINY).penalty == "none"


def test_run_grid_rows_and_cache(cache, monkeypatch):
    methods = [METHODS["baseline"], Method("ratio", "ratio", 0.01)]
    rows = run_grid("planted", methods, ks=[4], profile=TINY, probe_ms=(1, 2), n_latents=64)
    assert len(rows) == 2 * 1 * 2
    row = rows[0]
    assert {"r2", "ms_mean", "purity_mean", "dead", "r2_x0.25", "r2_x1", "r2_x4", "probe_m1", "probe_m2"} <= row.keys()
    assert row["r2_x1"] == pytest.approx(row["r2_vw"], abs=1e-5)   # k' = k is the training budget (variance-weighted)
    assert {r["seed"] for r in rows} == {0, 1} and {r["method"] for r in rows} == {"baseline", "ratio"}

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")
    monkeypatch.setattr(pipeline, "train_run", no_training)
    again = run_grid("planted", methods, ks=[4], profile=TINY, probe_ms=(1, 2), n_latents=64)
    assert [r["path"] for r in again] == [r["path"] for r in rows]
    assert [r["r2_x4"] for r in again] == [r["r2_x4"] for r in rows]


def test_a_grid_row_reports_the_k_sweep_and_probes_of_its_own_run(cache):
    """The row's r2_x{f} and probe_m{m} (what the inference-k and probing claims read) equal the k-sweep at
    k' = f * k and the truncated probe at m, recomputed here from the run directory."""
    from sae_lite.evaluation import metrics, probes, runs

    [row] = run_grid("planted", [METHODS["baseline"]], ks=[4], seeds=(0,), profile=TINY, probe_ms=(1, 2), n_latents=64)
    run = runs.load_run(row["path"])
    train_set, test_set = pipeline.load_split(run.data)
    sweep = metrics.k_sweep(run.sae, test_set.x, [1, 2, 4, 8, 16])
    for factor, k in (("0.25", 1), ("0.5", 2), ("1", 4), ("2", 8), ("4", 16)):
        assert row[f"r2_x{factor}"] == pytest.approx(sweep[k], abs=1e-9)
    assert row["r2_x0.25"] < row["r2_x1"]
    codes_train, codes_test = (metrics.encode_all(run.sae, s.x)[0] for s in (train_set, test_set))
    probe = probes.truncated_probe(codes_train, train_set.labels, codes_test, test_set.labels, [1, 2])
    assert (row["probe_m1"], row["probe_m2"]) == pytest.approx((probe[1]["test"], probe[2]["test"]))


def test_a_changed_setting_is_a_new_run(cache):
    a = run_grid("planted", [METHODS["baseline"]], ks=[4], seeds=(0,), profile=TINY, n_latents=64)
    b = run_grid("planted", [METHODS["baseline"]], ks=[4], seeds=(0,), profile=TINY, n_latents=32)
    assert a[0]["path"] != b[0]["path"]


def test_summarize_matches_numpy():
    rows = [{"method": m, "k": 4, "r2": v} for m, v in [("a", 0.5), ("a", 0.7), ("a", 0.9), ("b", 0.1)]]
    table = {entry["method"]: entry for entry in summarize(rows, ["r2"], by=("method", "k"))}
    assert table["a"]["n"] == 3
    assert table["a"]["r2_mean"] == pytest.approx(0.7)
    assert table["a"]["r2_std"] == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))
    assert math.isnan(table["b"]["r2_std"]) and table["b"]["r2_mean"] == pytest.approx(0.1)  # one seed: not measured
    nan_rows = [{"method": "a", "k": 4, "ms": math.nan}, {"method": "a", "k": 4, "ms": 0.2}]
    assert summarize(nan_rows, ["ms"], by=("method",))[0]["ms_mean"] == pytest.approx(0.2)


def test_an_evaluation_without_probes_is_not_reused_for_probes(cache):
    row = run_grid("planted", [METHODS["baseline"]], ks=[4], seeds=(0,), profile=TINY, probe_ms=(), n_latents=64)[0]
    assert not any(key.startswith("probe_m") for key in row)
    again = run_grid("planted", [METHODS["baseline"]], ks=[4], seeds=(0,), profile=TINY, probe_ms=(1,), n_latents=64)[0]
    assert again["path"] == row["path"] and 0 < again["probe_m1"] <= 1


def test_parallel_jobs_train_the_same_runs(cache, monkeypatch):
    methods = [METHODS["baseline"], METHODS["ratio"]]
    serial = run_grid("planted", methods, ks=[4], seeds=(0,), profile=TINY, probe_ms=(1,), n_latents=32)
    monkeypatch.setenv("SAE_LITE_CACHE", str(cache / "parallel"))
    monkeypatch.setenv("SAE_LITE_JOBS", "2")
    parallel = run_grid("planted", methods, ks=[4], seeds=(0,), profile=TINY, probe_ms=(1,), n_latents=32)
    assert [Path(r["path"]).name for r in parallel] == [Path(r["path"]).name for r in serial]
    assert all(Path(r["path"]).parent.parent == cache / "parallel" for r in parallel)
    for a, b in zip(serial, parallel):
        assert (a["r2"], a["r2_x4"], a["probe_m1"]) == pytest.approx((b["r2"], b["r2_x4"], b["probe_m1"]), abs=1e-6)


def test_parallel_jobs_must_be_a_positive_count(monkeypatch):
    monkeypatch.setenv("SAE_LITE_JOBS", "two")
    with pytest.raises(SaeLiteError, match="SAE_LITE_JOBS"):
        runner.parallel_jobs()


def test_parallel_jobs_default_to_one_per_core_on_a_cpu(monkeypatch):
    monkeypatch.delenv("SAE_LITE_JOBS")
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    assert runner.parallel_jobs() == runner.usable_cores() >= 1
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: True)
    assert runner.parallel_jobs() == 1
