"""Resume from the command line: an interrupted `train` continues to the result of an uninterrupted run,
and `reproduce` killed with SIGKILL mid-grid finishes, when run again, with the results of an
uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from threadpoolctl import threadpool_limits

from sae_lite.cli import main
from sae_lite.core import train as training
from sae_lite.data import write_store
from sae_lite.study import paper

ROOT = Path(__file__).resolve().parents[1]
# --dead-after 256: latents die and AuxK revives them within the run, so the resumed state must hold the counters
FAST = ["--steps", "30", "--latents", "32", "--k", "4", "--batch-size", "64", "--log-every", "5", "--b-pre-init", "mean",
        "--dead-after", "256"]


@pytest.fixture()
def store(tmp_path):
    """A small embedding store (fast to train on) of rank 2, on which many latents die within a run."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 2)) @ rng.standard_normal((2, 16))
    return write_store(tmp_path / "store", x.astype(np.float32), np.arange(400) % 4)


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def interrupt_at(monkeypatch, step: int | None) -> list:
    """Make training raise KeyboardInterrupt (Ctrl-C) when it is about to take step ``step`` (0-based;
    None: never); returns the list that counts the steps taken."""
    real, calls = training.train_step, []

    def step_or_interrupt(*args, **kwargs):
        if len(calls) == step:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(training, "train_step", step_or_interrupt)
    return calls


def test_an_interrupted_train_resumes_to_the_uninterrupted_result(tmp_path, store, capsys, monkeypatch):
    code, whole, _ = run_cli(capsys, "train", "--data", store, *FAST, "--out", tmp_path / "whole")
    assert code == 0

    with monkeypatch.context() as patch:
        interrupt_at(patch, 23)   # after the checkpoint of step 20, before the end
        code, _, err = run_cli(capsys, "train", "--data", store, *FAST, "--checkpoint", tmp_path / "ckpt",
                               "--checkpoint-every", "10", "--out", tmp_path / "part")
    assert code == 130 and "interrupted" in err
    assert not (tmp_path / "part").exists()                          # no run directory from a half run
    assert json.loads((tmp_path / "ckpt" / "state.json").read_text())["step"] == 20

    with monkeypatch.context() as patch:
        steps = interrupt_at(patch, None)
        code, resumed, _ = run_cli(capsys, "train", "--data", store, *FAST, "--checkpoint", tmp_path / "ckpt",
                                   "--checkpoint-every", "10", "--resume", "--out", tmp_path / "part")
    assert code == 0 and len(steps) == 10     # it continued from step 20: it did not start again
    history = json.loads((tmp_path / "whole" / "history.json").read_text())
    assert max(history["dead"]) > 0           # latents died: the resumed dead-latent counters mattered
    a, b = load_file(tmp_path / "whole" / "sae.safetensors"), load_file(tmp_path / "part" / "sae.safetensors")
    assert a.keys() == b.keys() and all((a[key] == b[key]).all() for key in a)      # bitwise the same weights
    for name in ("metrics.json", "history.json"):
        assert (tmp_path / "whole" / name).read_text() == (tmp_path / "part" / name).read_text()
    assert {**json.loads(whole), "out": None} == {**json.loads(resumed), "out": None}


@pytest.mark.parametrize("args, message", [
    (["--resume"], "pass the --checkpoint DIR"),
    (["--resume", "--checkpoint", "{tmp}/empty"], "nothing to resume"),
    (["--checkpoint", "{tmp}/c", "--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
])
def test_a_resume_without_a_checkpoint_is_refused(tmp_path, store, capsys, args, message):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    code, _, err = run_cli(capsys, "train", "--data", store, *FAST, *args, "--out", tmp_path / "run")
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
    if "nothing to resume" in message:
        assert "--checkpoint" in err and "without --resume" in err   # the flags it names exist


def test_a_resume_with_other_settings_or_data_is_refused(tmp_path, store, capsys, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_at(patch, 12)
        run_cli(capsys, "train", "--data", store, *FAST, "--checkpoint", tmp_path / "ckpt", "--checkpoint-every", "10",
                "--out", tmp_path / "run")
    code, _, err = run_cli(capsys, "train", "--data", store, *FAST, "--lr", "0.001", "--checkpoint", tmp_path / "ckpt",
                           "--resume", "--out", tmp_path / "run")
    assert code == 2 and "different configuration" in err
    code, _, err = run_cli(capsys, "train", "--data", store, *FAST, "--test-fraction", "0.5", "--checkpoint", tmp_path / "ckpt",
                           "--resume", "--out", tmp_path / "run")
    assert code == 2 and "other data" in err
    state = (tmp_path / "ckpt" / "state.safetensors").read_bytes()
    code, _, err = run_cli(capsys, "train", "--data", store, *FAST, "--checkpoint", tmp_path / "ckpt", "--out", tmp_path / "run")
    assert code == 2 and "pass --resume" in err and err.count("\n") == 1   # not silently started over
    assert (tmp_path / "ckpt" / "state.safetensors").read_bytes() == state
    assert not (tmp_path / "run").exists()


# A grid small enough to train in seconds: 4 runs on planted data (the weight sweep of the ratio alone:
# the baseline and the ratio at three weights; the grid's two runs are among them).
GRID = """
import sys
from dataclasses import replace
from sae_lite.study import paper
from sae_lite.study.paper import Cell, Grid
from sae_lite.study.profiles import PROFILE_SETTINGS
from sae_lite.study.reproduce import reproduce
paper.PENALTY_WEIGHTS = {"ratio": 0.01}
profile = replace(PROFILE_SETTINGS["quick"], steps=20, seeds=(0,), n_planted=512)
reproduce(Grid(profile, (Cell("planted", "planted", (4,), n_latents=32),), ("baseline", "ratio")), sys.argv[1],
          progress=False)
"""


def reproduce_process(out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "SAE_LITE_CACHE": str(cache), "SAE_LITE_JOBS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.Popen([sys.executable, "-c", GRID, str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def reproduce_here(out: Path, cache: Path, monkeypatch) -> None:
    """The same grid, uninterrupted, in this process (one thread, as the processes)."""
    monkeypatch.setenv("SAE_LITE_CACHE", str(cache))
    monkeypatch.setattr(sys, "argv", ["", str(out)])
    monkeypatch.setattr(paper, "PENALTY_WEIGHTS", paper.PENALTY_WEIGHTS)   # restored after the test: GRID replaces it
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            exec(GRID, {"__name__": "grid"})
    finally:
        torch.set_num_threads(threads)


def finished_runs(cache: Path) -> int:
    """Run directories in the cache (not their hidden temporary siblings, which pathlib's glob matches too)."""
    return sum(not path.parent.name.startswith(".") for path in (cache / "runs").glob("*/metrics.json"))


def without_paths(csv: str, cache: Path) -> str:
    return csv.replace(str(cache), "CACHE")


def test_reproduce_killed_with_sigkill_finishes_with_the_uninterrupted_results(tmp_path, monkeypatch):
    killed = reproduce_process(tmp_path / "out", tmp_path / "cache")
    deadline = time.monotonic() + 120
    while finished_runs(tmp_path / "cache") < 2 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(30) == -signal.SIGKILL
    done_before = finished_runs(tmp_path / "cache")
    assert done_before >= 2 and not (tmp_path / "out" / "results.csv").exists()   # killed mid-grid
    for entry in (tmp_path / "cache" / "runs").iterdir():   # no half entry: a run directory is whole or absent
        if entry.is_dir() and not entry.name.startswith("."):  # (a hidden temporary sibling, the entry's .lock file)
            assert {"sae.safetensors", "config.json", "metrics.json", "card.md"} <= {f.name for f in entry.iterdir()}

    again = reproduce_process(tmp_path / "out", tmp_path / "cache")
    reproduce_here(tmp_path / "whole", tmp_path / "cache-whole", monkeypatch)
    assert again.wait(300) == 0, again.stderr.read()
    total = finished_runs(tmp_path / "cache-whole")   # the uninterrupted call's runs (the weight search's included)
    assert done_before < total
    assert f"{total - done_before} trained" in again.stderr.read()   # the killed call's runs are reused
    for name in ("results.csv", "claims.json", "claims.md"):
        assert without_paths((tmp_path / "out" / name).read_text(), tmp_path / "cache") == \
            without_paths((tmp_path / "whole" / name).read_text(), tmp_path / "cache-whole"), name
