import json

import numpy as np
import pytest

from sae_lite.cli import main
from sae_lite.data import write_store

FAST = ["--steps", "40", "--latents", "64", "--k", "4", "--batch-size", "128"]


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_evaluate(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", "--data", "digits", "--penalty", "ratio", "--weight", "0.01",
                           "--out", tmp_path / "run", *FAST)
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("r2", "fvu", "nmse", "l0", "dead_fraction", "ms_mean", "purity_mean", "weighted_purity_mean"):
        assert key in metrics and np.isfinite(metrics[key])
    assert json.loads(out)["r2"] == metrics["r2"]
    assert (tmp_path / "run" / "card.md").is_file()
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--k", "2,4,8", "--probe", "1,2")
    result = json.loads(out)
    assert code == 0 and set(result["r2_by_k"]) == {"2", "4", "8"} and set(result["probe_by_m"]) == {"1", "2"}
    assert json.loads((tmp_path / "run" / "evaluation.json").read_text()) == result


def test_planted_run_has_recovery_metrics(tmp_path, capsys):
    code, _, _ = run_cli(capsys, "train", "--data", "planted", "--no-mask", "--no-auxk", "--penalty", "offsupport",
                         "--weight", "0.01", "--out", tmp_path / "run", *FAST)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert code == 0 and {"recovery_mmcs", "recovery_matched"} <= set(metrics)
    assert config["train"]["masked"] is False and config["train"]["auxk"] is False


def test_train_on_a_store(tmp_path, capsys):
    rng = np.random.default_rng(0)
    write_store(tmp_path / "store", rng.standard_normal((300, 16)).astype(np.float32), np.arange(300) % 3)
    code, _, _ = run_cli(capsys, "train", "--data", tmp_path / "store", "--out", tmp_path / "run", *FAST)
    assert code == 0 and (tmp_path / "run" / "sae.safetensors").is_file()


@pytest.mark.parametrize("args, message", [
    (["--k", "0"], "k must be"), (["--k", "64"], "k must be"), (["--latents", "0"], "n_latents"),
    (["--penalty", "l3"], "unknown penalty"), (["--penalty", "ratio", "--weight", "-0.1"], "weight"),
    (["--data", "imagenet"], "unknown data"), (["--activation", "relu"], "unknown activation"),
])
def test_bad_train_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, "train", *FAST, *args, "--out", tmp_path / "run")
    assert code == 2 and err.startswith("error:") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_existing_out_needs_overwrite(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code, _, err = run_cli(capsys, "train", *FAST, "--out", tmp_path / "run")
    assert code == 2 and "--overwrite" in err
    code, _, _ = run_cli(capsys, "train", *FAST, "--out", tmp_path / "run", "--overwrite")
    assert code == 0 and (tmp_path / "run" / "sae.safetensors").is_file()


def test_nan_store_and_wrong_d_are_rejected(tmp_path, capsys):
    x = np.ones((50, 8), np.float32)
    write_store(tmp_path / "store", x)
    bad = x.copy()
    bad[0, 0] = np.nan
    np.save(tmp_path / "store" / "embeddings.npy", bad)
    code, _, err = run_cli(capsys, "train", *FAST, "--data", tmp_path / "store", "--out", tmp_path / "run")
    assert code == 2 and "NaN" in err and not (tmp_path / "run").exists()
    np.save(tmp_path / "store" / "embeddings.npy", x)
    run_cli(capsys, "train", *FAST, "--data", "digits", "--out", tmp_path / "ok")
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "ok", "--data", tmp_path / "store")
    assert code == 2 and "expects d=64" in err and "has d=8" in err


def test_evaluate_rejects_a_non_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", tmp_path)
    assert code == 2 and "not a run directory" in err
