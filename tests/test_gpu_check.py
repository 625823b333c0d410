"""scripts/gpu_check.py: its dry run on the CPU writes a report with every section, statuses and the
agreement's numbers within tolerance, and a summary; an existing --out is refused before any work."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # its dataclass looks its module up there
spec.loader.exec_module(gpu_check)  # its top level imports the standard library only


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "out"
    done = _run("--dry-run", "--out", str(out))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out, done.stdout, json.loads((out / "report.json").read_text())


def test_the_dry_run_reports_every_section_with_its_status(dry_run):
    out, stdout, report = dry_run
    assert report["format"] == gpu_check.FORMAT and report["mode"] == "dry-run" and report["ok"] is True
    assert list(report["sections"]) == list(gpu_check.SECTIONS)
    statuses = {name: record["status"] for name, record in report["sections"].items()}
    assert statuses == {"agreement": "ok", "speed": "ok", "peers": statuses["peers"], "embed": "ok",
                        "torchrun": "ok", "chapter": "skipped"}
    assert statuses["peers"] in ("ok", "skipped")  # skipped where scripts/bench_env.sh made no environment
    for name, record in report["sections"].items():
        assert record["wall_s"] >= 0 and record["limit_s"] > 0
        assert (record.get("summary") if record["status"] == "ok" else record.get("reason"))
        assert f"[{name}] started" in stdout and f"[{name}] {record['status']}" in stdout  # a line as it goes
    assert "dry run" in report["sections"]["chapter"]["reason"]
    assert report["wall_s"] < 120 and report["machine"]["device"] == "cpu"


def test_the_dry_run_agreement_is_finite_and_within_tolerance(dry_run):
    agreement = dry_run[2]["sections"]["agreement"]
    assert agreement["tolerance"]["relative"] == gpu_check.TOLERANCE
    assert {(run["method"], run["backend"]) for run in agreement["runs"]} == {
        (m, b) for m in ("baseline", "ratio") for b in ("dense", "sparse")}
    for run in agreement["runs"]:
        values = [run[f"final_{key}_{side}"] for key in ("loss", "fvu") for side in ("device", "cpu")]
        assert all(math.isfinite(value) and value > 0 for value in values), run
        assert run["final_fvu_rel"] <= gpu_check.TOLERANCE and run["final_loss_rel"] <= gpu_check.TOLERANCE, run
        assert run["within"] is True


def test_the_dry_run_times_every_variant_and_runs_torchrun_with_a_group(dry_run):
    out, _, report = dry_run
    rows = report["sections"]["speed"]["rows"]
    assert {row["precision"] for row in rows} == {"fp32", "bf16"}  # no TF32 on the CPU
    for row in rows:
        if row["precision"] == "fp32" or row["variant"].startswith("dense-"):
            assert row["status"] == "ok" and row["step_ms"] > 0 and row["bound_ms"] > 0, row
        else:  # the sparse kernels under autocast: recorded as they fail
            assert row["status"] in ("ok", "failed") and (row["status"] == "ok" or row["error"])
    embed = report["sections"]["embed"]
    assert embed["store"]["n"] == embed["images"] and embed["forward_images_per_s"] > 0
    runs = report["sections"]["torchrun"]["runs"]
    assert runs["group"]["process_group"] == {"initialized": True, "backend": "gloo", "world": 1}
    assert runs["cli"]["within"] and runs["group"]["within"]
    summary = (out / "summary.md").read_text()
    assert all(f"| {name} | " in summary for name in gpu_check.SECTIONS) and "## Training agrees with the CPU" in summary


def test_an_existing_out_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = _run("--dry-run", "--out", str(out), timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "--overwrite" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    # --overwrite replaces only a previous check's directory (one with a report.json)
    done = _run("--dry-run", "--overwrite", "--out", str(out), timeout=60)
    assert done.returncode == 2 and "report.json" in done.stderr and (out / "keep.txt").read_text() == "mine"


def test_compare_histories_checks_the_final_loss_and_fvu():
    cpu = {"loss": [2.0, 1.0], "fvu": [0.5, 0.25]}
    close = {"loss": [2.1, 1.0 + 1e-4], "fvu": [0.6, 0.25 * (1 + 5e-4)]}
    row = gpu_check.compare_histories(close, cpu)
    assert row["within"] and row["final_fvu_rel"] == pytest.approx(5e-4) and row["max_fvu_rel"] == pytest.approx(0.2)
    far = {"loss": [2.0, 1.0], "fvu": [0.5, 0.25 * (1 + 2e-3)]}
    assert not gpu_check.compare_histories(far, cpu)["within"]


def test_compare_verdicts_names_the_claims_that_differ():
    cpu = {"c1 on planted": "supported (1 seed)", "c2 on planted": "not supported (1 seed)"}
    assert gpu_check.compare_verdicts(dict(cpu), cpu) == {"claims": 2, "differ": [], "agree": True}
    gpu = {**cpu, "c2 on planted": "supported (1 seed)", "c3 on real": "unclear"}
    assert gpu_check.compare_verdicts(gpu, cpu) == {"claims": 3, "differ": ["c2 on planted", "c3 on real"], "agree": False}


def test_last_json_reads_an_indented_summary():
    assert gpu_check.last_json('noise\n{\n  "a": {\n    "b": 1\n  }\n}\n') == {"a": {"b": 1}}
    with pytest.raises(gpu_check.Failed):
        gpu_check.last_json("no summary")


def test_overwrite_replaces_a_previous_check_and_unselected_sections_are_skipped(tmp_path):
    out = tmp_path / "out"
    for attempt in range(2):  # the second needs --overwrite: the first left its report
        done = _run("--dry-run", "--sections", "chapter", "--out", str(out), *(["--overwrite"] if attempt else []), timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["sections"]["agreement"] == {"status": "skipped", "reason": "not selected (--sections)"}
    assert report["sections"]["chapter"]["status"] == "skipped" and report["ok"] is True
    assert _run("--dry-run", "--sections", "chapter", "--out", str(out), timeout=60).returncode == 2
