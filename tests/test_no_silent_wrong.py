"""Nothing silently wrong: an evaluation is reused only for the data it was computed on, a penalty
needs a weight, the JSON files are strict, and a spread of one seed is not printed as 0."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sae_lite.book import boxes
from sae_lite.book.rows import history_rows
from sae_lite.cli import main
from sae_lite.core.config import TrainConfig
from sae_lite.data import write_store
from sae_lite.data.spec import data_spec
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import runs
from sae_lite.files import strict_json, write_json
from sae_lite.study import claims, pipeline
from sae_lite.study.methods import METHODS
from sae_lite.study.profiles import PROFILE_SETTINGS
from sae_lite.study.runner import run_grid
from sae_lite.study.stats import plus_minus, summarize
from sae_lite.study.weights import sweep_weights

TINY = replace(PROFILE_SETTINGS["quick"], steps=40, seeds=(0,), n_planted=1024)
FAST = ["--steps", "30", "--latents", "64", "--k", "4", "--batch-size", "128"]


def strict_load(text: str):
    """json.loads that refuses NaN and Infinity, as jq and JavaScript do."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAE_LITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------------------
# An evaluation on other data is never reused as the run's own
# ---------------------------------------------------------------------------------------------

def test_evaluating_on_other_data_does_not_change_a_later_grid(cache, tmp_path, capsys):
    """The issue's scenario: a cached run evaluated on other data of the same d, then the grid again."""
    grid = dict(data="planted", methods=[METHODS["baseline"]], ks=[4], profile=TINY, probe_ms=(1,), n_latents=64)
    before = run_grid(**grid)
    path = before[0]["path"]
    rng = np.random.default_rng(0)
    write_store(tmp_path / "other", 5 * rng.standard_normal((400, 64)).astype(np.float32), np.arange(400) % 4)
    capsys.readouterr()

    code, out, _ = run_cli(capsys, "evaluate", path, "--data", tmp_path / "other", "--probe", "1")
    other = json.loads(out)
    assert code == 0 and other["computed_on"]["data"]["name"] == str(tmp_path / "other")
    assert other["computed_on"]["own_data"] is False
    assert other["r2_by_k"]["16"] != pytest.approx(before[0]["r2_x4"])  # the other data really scores otherwise

    again = run_grid(**grid)
    assert again == before   # the run's own evaluation, not the one on the other data
    note = capsys.readouterr().err
    assert "computed on other data" in note and note.count("\n") == 1
    saved = json.loads((Path(path) / "evaluation.json").read_text())
    assert saved["computed_on"]["own_data"] is True


def test_an_evaluation_is_reused_only_for_its_data_and_budgets(cache):
    rows = run_grid("planted", [METHODS["baseline"]], ks=[4], profile=TINY, probe_ms=(1,), n_latents=64)
    path, spec = rows[0]["path"], runs.load_run(rows[0]["path"]).spec
    saved = runs.load_evaluation(path)
    assert runs.covers(saved, spec, [1, 4, 16], [1])
    assert not runs.covers(saved, spec, [1, 4, 16], [1, 2])                     # a probe it lacks
    assert not runs.covers(saved, spec, [1, 4, 32], [1])                        # a k' it lacks
    assert not runs.covers(saved, data_spec("digits"), [4], [1])
    assert not runs.covers(saved, replace(spec, split_seed=1), [4], [1])        # another test split
    assert runs.other_data_note(path, saved, spec) is None
    assert "other data (planted); evaluating again on digits" in runs.other_data_note(path, saved, data_spec("digits"))
    evaluation = json.loads((Path(path) / "evaluation.json").read_text())
    del evaluation["computed_on"]   # written before evaluations recorded their data
    write_json(Path(path) / "evaluation.json", evaluation)
    assert not runs.covers(runs.load_evaluation(path), spec, [4], [1])
    assert "data it does not record" in runs.other_data_note(path, runs.load_evaluation(path), spec)
    (Path(path) / "evaluation.json").write_text('{"r2_by_k": {"4": 0.')   # cut short: damaged, computed again
    with pytest.raises(SaeLiteError, match="evaluation.json"):
        runs.load_evaluation(path)
    assert runs.load_evaluation(Path(path) / "nowhere") is None


def test_a_null_in_an_evaluation_reads_as_nan_and_a_bad_record_is_damage(cache):
    rows = run_grid("planted", [METHODS["baseline"]], ks=[4], profile=TINY, probe_ms=(1,), n_latents=64)
    path = Path(rows[0]["path"])
    evaluation = json.loads((path / "evaluation.json").read_text())
    write_json(path / "evaluation.json", {**evaluation, "r2_by_k": {**evaluation["r2_by_k"], "4": math.nan}})
    assert math.isnan(runs.load_evaluation(path)["r2_by_k"]["4"])
    for basis in ({"data": {"kwargs": {}}}, {"data": evaluation["computed_on"]["data"], "ks": 4}, ["planted"]):
        write_json(path / "evaluation.json", {**evaluation, "computed_on": basis})
        with pytest.raises(SaeLiteError, match="evaluation.json"):
            runs.load_evaluation(path)


def test_only_the_run_directory_module_opens_evaluation_json():
    """One reader and one writer of evaluation.json (`runs.load_evaluation`, `runs.save_evaluation`): the
    package names the file, outside docstrings, only in sae_lite/evaluation/runs.py."""
    import ast

    package = Path(runs.__file__).parents[1]
    naming = set()
    for file in package.rglob("*.py"):
        tree = ast.parse(file.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        if any(isinstance(node, ast.Constant) and isinstance(node.value, str) and "evaluation.json" in node.value
               and id(node) not in docstrings for node in ast.walk(tree)):
            naming.add(str(file.relative_to(package)))
    assert naming == {"evaluation/runs.py"}


def test_the_fingerprint_tells_data_apart(small_planted):
    train, test = small_planted.split()
    assert pipeline.fingerprint(train, test) == pipeline.fingerprint(*small_planted.split())
    assert pipeline.fingerprint(train, test) != pipeline.fingerprint(test, train)
    shifted = replace(test, x=test.x + np.float32(1e-3))
    assert pipeline.fingerprint(train, test) != pipeline.fingerprint(train, shifted)


# ---------------------------------------------------------------------------------------------
# A penalty needs a weight, a weight needs a penalty
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--penalty", "ratio"], "needs a weight > 0"),
    (["--penalty", "offsupport", "--weight", "0"], "needs a weight > 0"),
    (["--weight", "0.01"], "without a penalty"),
    (["--penalty", "none", "--weight", "0.01"], "without a penalty"),
])
def test_a_penalty_without_a_weight_is_refused(tmp_path, capsys, args, message):
    code, out, err = run_cli(capsys, "train", *FAST, *args, "--out", tmp_path / "run")
    assert code == 2 and out == "" and err.startswith("error:") and message in err and err.count("\n") == 1
    assert "--weight" in err or "--penalty" in err   # the hint names the option to change
    assert list(tmp_path.iterdir()) == []


def test_the_config_refuses_what_would_silently_train_the_baseline():
    with pytest.raises(SaeLiteError, match="needs a weight"):
        TrainConfig(penalty="ratio")
    with pytest.raises(SaeLiteError, match="without a penalty"):
        TrainConfig(weight=0.01)
    TrainConfig(penalty="ratio", weight=0.01)
    TrainConfig()  # the baseline: no penalty, weight 0


def test_the_study_never_builds_a_penalty_without_a_weight():
    """Every method, at its default weight and at each weight a sweep tries, is a valid config."""
    for method in METHODS.values():
        method.config(k=8, profile=TINY)
        if method.penalty != "none":
            for weight in sweep_weights(TINY) + sweep_weights(PROFILE_SETTINGS["default"]):
                replace(method, weight=weight).config(k=8, profile=TINY)


# ---------------------------------------------------------------------------------------------
# Strict JSON: null, not NaN
# ---------------------------------------------------------------------------------------------

def test_write_json_writes_null_for_what_is_not_a_number(tmp_path):
    value = {"nan": math.nan, "inf": math.inf, "np": np.float32("nan"), "nested": [{"x": -math.inf}, (1.5, 2)],
             "int": np.int64(3), "array": np.array([1.0, np.nan]), "ok": 0.25}
    text = write_json(tmp_path / "v.json", value).read_text()
    assert strict_load(text) == {"nan": None, "inf": None, "np": None, "nested": [{"x": None}, [1.5, 2]],
                                 "int": 3, "array": [1.0, None], "ok": 0.25}
    assert strict_load(strict_json(value)) == strict_load(text)


def test_a_store_meta_is_strict_json(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    write_store(tmp_path / "store", x, meta={"accuracy": math.nan, "source": tmp_path / "images"})
    meta = strict_load((tmp_path / "store" / "meta.json").read_text())
    assert meta["accuracy"] is None and meta["source"] == str(tmp_path / "images")


def test_train_writes_and_prints_strict_json(tmp_path, capsys):
    """A Top-k run on planted data has a constant L0, so its l0_rank_corr cannot be computed (NaN)."""
    code, out, _ = run_cli(capsys, "train", "--data", "planted", *FAST, "--out", tmp_path / "run")
    assert code == 0
    printed = strict_load(out)
    for name in ("metrics.json", "config.json", "history.json", "card.json"):
        strict_load((tmp_path / "run" / name).read_text())
    saved = strict_load((tmp_path / "run" / "metrics.json").read_text())
    assert saved["l0_rank_corr"] is None and printed["l0_rank_corr"] is None
    assert math.isnan(runs.load_run(tmp_path / "run").metrics["l0_rank_corr"])   # read back as NaN
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--k", "2,4", "--probe", "1")
    assert code == 0 and strict_load(out) == strict_load((tmp_path / "run" / "evaluation.json").read_text())


# ---------------------------------------------------------------------------------------------
# The spread of one seed is unknown, not 0
# ---------------------------------------------------------------------------------------------

def one_seed_rows():
    return [{"data": "planted", "method": method, "k": 16, "seed": 0, "r2": r2, "r2_vw": r2, "ms_mean": ms,
             "purity_mean": 0.5, "r2_x0.5": 0.6, "probe_m1": 0.4, "probe_m2": 0.5, "probe_m4": 0.6, "dead": 3}
            for method, r2, ms in (("baseline", 0.80, 0.18), ("ratio", 0.81, 0.20))]


def test_a_single_seed_spread_prints_as_unknown():
    assert plus_minus(0.18, math.nan, 1) == "0.180 ± n/a (1 seed)"
    assert plus_minus(0.18, None, 1) == "0.180 ± n/a (1 seed)"
    assert plus_minus(0.18, 0.0, 3) == "0.180 ± 0.000"    # a measured zero spread stays 0
    entry = summarize(one_seed_rows(), ["ms_mean"], by=("method",))[0]
    assert math.isnan(entry["ms_mean_std"])
    assert "0.180 ± n/a (1 seed)" in boxes.measured_markdown(entry, "baseline")
    markdown = claims.to_markdown(claims.evaluate_claims(one_seed_rows()))
    assert "± n/a (1 seed)" in markdown and "± 0.000" not in markdown


def test_claims_json_reads_back_with_its_unknown_spreads(tmp_path):
    written = claims.evaluate_claims(one_seed_rows())
    read = strict_load(write_json(tmp_path / "claims.json", written).read_text())
    assert read[0]["parts"][0]["std_t"] is None and read[0]["parts"][0]["se"] is None
    assert claims.to_markdown(read) == claims.to_markdown(written)
    rows = [{**row, "ms_mean": math.nan} for row in one_seed_rows()]   # MS undefined everywhere: a NaN difference
    written = claims.evaluate_claims(rows)
    read = strict_load(write_json(tmp_path / "claims.json", written).read_text())
    assert claims.to_markdown(read) == claims.to_markdown(written) and "nan" in claims.to_markdown(read)


def test_a_null_in_a_history_reads_back_as_nan(tmp_path):
    write_json(tmp_path / "history.json", {"step": [1, 2], "loss": [math.nan, 0.5], "fvu": [0.9, 0.4]})
    steps = history_rows([{"method": "baseline", "k": 4, "path": str(tmp_path)}])
    assert math.isnan(steps[0]["loss"]) and steps[1]["loss"] == 0.5 and steps[0]["fvu"] == 0.9
