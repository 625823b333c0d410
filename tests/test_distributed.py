"""torchrun: 2 gloo processes on the CPU train the SAE that one process trains on the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sae_lite import SaeLiteError
from sae_lite.cli import main
from sae_lite.core import distributed
from sae_lite.core.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
# ratio (masked: the batch-active set is a union over the processes) and AuxK with latents that die
# within the run (the dead-latent counters must agree), so every all-reduce matters
ARGS = ["--data", "planted", "--k", "8", "--latents", "256", "--steps", "40", "--batch-size", "256",
        "--penalty", "ratio", "--weight", "0.05", "--dead-after", "1024", "--log-every", "10",
        "--backend", "sparse", "--device", "cpu"]
TOLERANCE = dict(rtol=1e-4, atol=1e-6)  # float32 sums in another order, over 40 steps


def _train(out: Path, processes: int) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, "-m", "sae_lite", "train", *ARGS, "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_two_gloo_processes_match_one_process(tmp_path):
    one, two = _train(tmp_path / "one", 1), _train(tmp_path / "two", 2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count('"out"') == 1  # only rank 0 reports
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())

    history = [json.loads((tmp_path / run / "history.json").read_text()) for run in ("one", "two")]
    assert history[0]["dead"] == history[1]["dead"] and max(history[0]["dead"]) > 0  # AuxK had work
    for key in ("loss", "fvu", "penalty", "auxk", "l0"):
        torch.testing.assert_close(torch.tensor(history[1][key]), torch.tensor(history[0][key]), **TOLERANCE)
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("one", "two")]
    for key, value in metrics[0].items():  # numbers, and the name of the MS reference (ms_reference)
        expected = value if isinstance(value, str) else pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True)
        assert metrics[1][key] == expected, key
    weights = [load_file(tmp_path / run / "sae.safetensors") for run in ("one", "two")]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, **TOLERANCE)


def test_one_process_is_local():
    job = distributed.context()
    assert isinstance(job, distributed.Local) and (job.rank, job.world, job.is_main) == (0, 1, True)
    mask = torch.tensor([True, False])
    assert job.any(mask) is mask and job.reduce_row({"fvu": 0.5}, 10) == {"fvu": 0.5}


def test_torchrun_needs_the_sparse_backend(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SaeLiteError, match="--backend sparse"):
        distributed.context().check(TrainConfig(backend="dense"))
    distributed.context().check(TrainConfig(backend="sparse"))
    assert main(["train", "--out", str(tmp_path / "run"), "--steps", "5"]) == 2  # before any work or write
    assert "--backend sparse" in capsys.readouterr().err and not (tmp_path / "run").exists()
