"""The GPU check: what sae_lite does on one CUDA GPU, measured in one command of at most 8 minutes.

Run it on your own GPU
----------------------
Install the CUDA build of torch first (PyTorch's install selector), then the package with its extras,
and, if you want the peers compared, their environments (optional: a few minutes and ~5 GB)::

    pip install -c constraints.txt -e ".[dev]"
    scripts/bench_env.sh sparsify saelens                      # optional: the peers
    python scripts/gpu_check.py --out gpu-check                # on one CUDA GPU: at most 8 minutes
    python scripts/gpu_check.py --dry-run --out /tmp/gpu-dry   # the same code on the CPU, tiny sizes, < 1 min

It writes ``DIR/report.json`` (every section with its status: ``ok``, ``failed`` with the error's one
line, or ``skipped`` with why; its numbers and its time limit) and ``DIR/summary.md`` (the same,
readable), rewritten after every section, so an interrupted check keeps what it measured. The
commands it runs leave their logs and outputs in ``DIR/<section>/``. It prints one line when a section
starts and one when it ends. An existing, non-empty DIR is refused (exit status 2) unless
``--overwrite`` is given, and then only if it holds a previous check's report.json. Exit status: 0
when no section failed, 1 when one did, 2 when the check refused to start. ``--sections a,b`` runs
only those; ``--peer-python NAME=PATH`` points at a peer's environment elsewhere.

The sections, in the order they run, each with its own time limit (the chapter gets what is left):

- ``agreement``: 50 steps of the baseline and of the ratio penalty on planted data, dense and sparse
  backends, on CUDA and on the CPU; the final loss and FVU must agree to `TOLERANCE` (relative).
- ``speed``: a training step at (d, N, k, B) = (768, 16384, 64, 4096) and (1024, 8192, 32, 4096)
  (`sae_lite.bench.bench.SIZES`), timed by `sae_lite.bench.bench.ours` (the bound: the dense encoder
  matmul; each step as a multiple of it) for the baseline, off-support, ratio and AuxK, on the sparse
  and the dense backends, in fp32, TF32 and under bf16 autocast (`PRECISIONS` says what each covers:
  the package has no mixed-precision training option, and on the CPU its sparse kernels do not run
  under autocast), with the peak GPU memory of each variant (``torch.cuda.max_memory_allocated``).
- ``peers``: EleutherAI sparsify and SAELens at the same sizes (`sae_lite.bench.bench.peer`, from the
  environments of ``scripts/bench_env.sh``); skipped, with the reason, when those are absent.
- ``embed``: ``clip-vit-l-14`` with random weights (nothing downloaded; ``HF_HUB_OFFLINE=1``) on
  generated JPEGs: the forward pass alone and the whole `sae_lite.data.embed.embed_images` call, in
  images/s, in bf16 autocast (embed's default on a GPU).
- ``torchrun``: 50 steps of ``torchrun --standalone --nproc_per_node=1 -m sae_lite train`` against the
  same run in one process; and the same run with the NCCL process group joined (see `torchrun`: with
  one process the package trains without one).
- ``chapter``: ``python -m sae_lite reproduce --profile quick`` on CUDA, then on the CPU if the time
  left allows, each with a fresh results cache: both times, and whether their verdicts agree.

``--dry-run`` runs every section the same way on the CPU at tiny sizes (the "CUDA" side is the CPU too)
and skips the chapter, which is not cheap (about 2 minutes on a laptop). ``tests/test_gpu_check.py``
runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

FORMAT = "sae-lite-gpu-check/1"
SECTIONS = ("agreement", "speed", "peers", "embed", "torchrun", "chapter")
#: Seconds each section may take at most (and never past the whole check's `TOTAL_LIMIT`); the chapter
#: section has no limit of its own: it gets what the others left.
LIMITS = {"agreement": 60, "speed": 100, "peers": 90, "embed": 80, "torchrun": 70}
TOTAL_LIMIT = 470  # 8 minutes, less 10 s for starting Python and writing the report
#: The chapter's CUDA run starts only with this much time left, its CPU run too.
CHAPTER_MIN_S = 60
#: Relative tolerance of the agreement section, on the final loss and the final FVU. Why 1e-3: float32
#: on different hardware. cuBLAS and the CPU's BLAS sum each product in another order (results ~1e-7
#: apart, relatively), Adam divides each gradient entry by its running RMS, so an entry near 0 can move
#: its weight by up to the learning rate either way, and top-k can swap two latents at a near tie: the
#: difference grows from step to step. 1e-3 after 50 steps leaves room for that growth; a wrong kernel
#: (a missing gradient term, a wrong scale) moves the FVU by far more in 50 steps.
TOLERANCE = 1e-3
#: torchrun against one process: the tolerance of tests/test_distributed.py (float32 sums in another order).
TORCHRUN_TOLERANCE = dict(rtol=1e-4, atol=1e-6)
#: What each precision of the speed section covers.
PRECISIONS = {
    "fp32": "float32 throughout, TF32 off (torch.set_float32_matmul_precision('highest'))",
    "tf32": "float32 tensors, matmuls on TF32 tensor cores (set_float32_matmul_precision('high'), as "
            "`bench --tf32`); CUDA only",
    "bf16": "the step run under torch.autocast(bfloat16): the package has no mixed-precision training option, "
            "so this is what autocast around train_step gives. The ops on autocast's list (the matmuls: the "
            "bound, the dense backend's encoder, decoder and their gradients) run in bf16; the weights, Adam and "
            "the reductions stay float32. On the CPU the sparse backend's kernels do not run under autocast "
            "(embedding_bag gets bf16 codes and float32 atoms); a row that fails records its error",
}
PEER_NAMES = ("sparsify", "saelens")  # of sae_lite.bench.bench.PEERS
MIB = 2 ** 20


@dataclass(frozen=True)
class Plan:
    """The sizes of a check: `GPU` on CUDA, `DRY` for ``--dry-run`` on the CPU."""

    name: str
    planted: dict            # planted data of the agreement section (`sae_lite.data.datasets.planted`)
    agreement: dict          # TrainConfig fields of its runs (the method's recipe adds the rest)
    sizes: tuple[tuple[int, int, int, int], ...]   # (d, N, k, B) of the speed and peer sections
    repeats: int
    warmup: int
    backbone: str
    images: int
    embed_batch: int
    train_args: tuple[str, ...] = field(default=())  # of `sae_lite train` in the torchrun section
    chapter: bool = True


_TORCHRUN = ("--data", "planted", "--penalty", "ratio", "--weight", "0.05", "--dead-after", "1024", "--backend", "sparse")
GPU = Plan("gpu", planted={}, agreement=dict(k=16, n_latents=512, batch_size=256, steps=50, log_every=10),
           sizes=((768, 16384, 64, 4096), (1024, 8192, 32, 4096)), repeats=10, warmup=3,
           backbone="clip-vit-l-14", images=1024, embed_batch=128,
           train_args=(*_TORCHRUN, "--k", "16", "--latents", "4096", "--batch-size", "1024", "--steps", "50",
                       "--log-every", "10"))
DRY = Plan("dry-run", planted=dict(n=1024, d=16, n_atoms=48, n_classes=4), agreement=dict(
           k=4, n_latents=64, batch_size=32, steps=5, log_every=1), sizes=((16, 64, 4, 32),), repeats=2, warmup=1,
           backbone="clip-vit-b-32", images=8, embed_batch=4,  # open_clip, as clip-vit-l-14
           train_args=(*_TORCHRUN, "--k", "4", "--latents", "64", "--batch-size", "32", "--steps", "5",
                       "--log-every", "1"), chapter=False)


class Skip(Exception):
    """A section that cannot run here; its message says why."""


class Failed(Exception):
    """A section that ran and whose check did not pass; its message is the one line to report."""


class SectionTimeout(BaseException):
    """The section's time is up (raised by SIGALRM; a BaseException, so no ``except Exception`` swallows it)."""


def one_line(error: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def relative(a: float, b: float) -> float:
    """|a - b| relative to |b| (absolute when b is 0)."""
    return abs(a - b) / abs(b) if b else abs(a - b)


# --------------------------------------------------------------------------------------------
# The check: its sections, their time limits, the report.
# --------------------------------------------------------------------------------------------

class Check:
    """One run of the check: where it writes, on what, with which sizes, and its report so far."""

    def __init__(self, out: Path, plan: Plan, device, peer_pythons: dict[str, Path], sections: tuple[str, ...]):
        import torch

        self.out, self.plan, self.device, self.peer_pythons = out, plan, device, peer_pythons
        self.start = time.monotonic()
        self.deadline = self.start + TOTAL_LIMIT
        self.results: dict = {}  # what a section leaves for a later one (our step times for the peers)
        self.section_end = self.deadline
        self.report = {"format": FORMAT, "mode": plan.name, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "time_limit_s": TOTAL_LIMIT, "machine": machine(device), "plan": asdict(plan),
                       "tolerances": {"agreement_relative": TOLERANCE, "torchrun": TORCHRUN_TOLERANCE},
                       "sections": {name: {"status": "pending"} for name in SECTIONS}, "wall_s": None, "ok": None}
        for name in SECTIONS:
            if name not in sections:
                self.report["sections"][name] = {"status": "skipped", "reason": "not selected (--sections)"}
        self.torch = torch
        self.write()

    def left(self) -> float:
        """Seconds left to the current section (its limit, or the whole check's)."""
        return min(self.section_end, self.deadline) - time.monotonic()

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a command this check runs: the sae_lite this script imported comes first."""
        import sae_lite

        root = str(Path(sae_lite.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYTHONPATH": path, **extra}

    def run_section(self, name: str, function) -> None:
        record = self.report["sections"][name]
        if record["status"] != "pending":
            return
        limit = LIMITS.get(name, TOTAL_LIMIT)
        budget = min(limit, self.deadline - time.monotonic())
        record.clear()
        record.update(status="running", limit_s=round(budget, 1))
        if budget < 5:
            record.update(status="skipped", reason=f"no time left in the check's {TOTAL_LIMIT} s")
            self._print_end(name, record)
            return
        print(f"[{name}] started (limit {budget:.0f} s)", flush=True)
        began = time.monotonic()
        self.section_end = began + budget
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            try:
                record["summary"] = function(self, record)
                record["status"] = "ok"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)  # before the handlers below, so none is cut short
        except Skip as reason:
            record.update(status="skipped", reason=str(reason))
        except Failed as failure:
            record.update(status="failed", error=str(failure))
        except SectionTimeout:
            record.update(status="failed", error=f"timed out after {budget:.0f} s (the numbers so far are kept)")
        except Exception as error:  # one failing section must not lose the others
            record.update(status="failed", error=one_line(error))
            with open(self.out / "errors.log", "a") as log:
                log.write(f"== {name}\n{traceback.format_exc()}\n")
        finally:
            signal.signal(signal.SIGALRM, previous)
            self.section_end = self.deadline
            record["wall_s"] = round(time.monotonic() - began, 2)
            if self.device.type == "cuda":
                self.torch.cuda.empty_cache()
        self._print_end(name, record)
        self.write()

    def _print_end(self, name: str, record: dict) -> None:
        what = record.get("summary") or record.get("error") or record.get("reason") or ""
        took = f" in {record['wall_s']:.1f} s" if record.get("wall_s") is not None else ""
        print(f"[{name}] {record['status']}{took}: {what}", flush=True)

    def finish(self, interrupted: bool = False) -> int:
        for record in self.report["sections"].values():
            if record["status"] in ("pending", "running"):
                record.update(status="skipped" if record["status"] == "pending" else "failed",
                              **({"reason": "interrupted"} if record["status"] == "pending" else {"error": "interrupted"}))
        self.report["wall_s"] = round(time.monotonic() - self.start, 1)
        self.report["ok"] = not interrupted and all(r["status"] != "failed" for r in self.report["sections"].values())
        self.write()
        print(f"wrote {self.out / 'report.json'} and {self.out / 'summary.md'} ({self.report['wall_s']:.0f} s)", flush=True)
        return 0 if self.report["ok"] else 1

    def write(self) -> None:
        from sae_lite.files import write_atomic, write_json

        write_json(self.out / "report.json", self.report, default=str)
        write_atomic(self.out / "summary.md", summary_markdown(self.report))


def _alarm(signum, frame):
    raise SectionTimeout


def run_command(command: list[str], log: Path, timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group, stdout and stderr into ``log``; raises `Failed` when it
    exits with an error or runs past ``timeout`` (then its whole group is killed)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=handle, text=True, env=env,
                                   start_new_session=True)
        try:
            stdout, _ = process.communicate(timeout=max(1.0, timeout))
        except BaseException as error:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if isinstance(error, subprocess.TimeoutExpired):
                raise Failed(f"{' '.join(Path(part).name for part in command[1:4])} ... timed out after "
                             f"{timeout:.0f} s (log: {log})") from None
            raise
        handle.write(f"\n== stdout\n{stdout}")
    if process.returncode != 0:
        lines = [line for line in log.read_text().splitlines() if line.strip() and not line.startswith("==")]
        raise Failed(f"exit status {process.returncode}: {lines[-1][:200] if lines else 'no output'} (log: {log})")
    return subprocess.CompletedProcess(command, process.returncode, stdout, "")


def machine(device) -> dict:
    """What the figures were measured on."""
    import torch

    from sae_lite.bench.bench import cpu_model
    from sae_lite.version import __version__

    root = Path(__file__).resolve().parents[1]
    git = lambda *args: subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()  # noqa: E731
    try:
        commit = git("rev-parse", "--short", "HEAD") + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")
    except OSError:
        commit = None
    info = {"device": str(device), "cpu": cpu_model(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "sae_lite": __version__, "commit": commit or None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    bf16=torch.cuda.is_bf16_supported())
    return info


# --------------------------------------------------------------------------------------------
# Training agrees with the CPU.
# --------------------------------------------------------------------------------------------

def compare_histories(device_history: dict, cpu_history: dict, tolerance: float = TOLERANCE) -> dict:
    """How far apart two training histories are: the final loss and FVU (relative, the check) and the
    largest relative difference over every logged row (for the reader)."""
    row = {}
    for key in ("loss", "fvu"):
        row[f"final_{key}_device"], row[f"final_{key}_cpu"] = device_history[key][-1], cpu_history[key][-1]
        row[f"final_{key}_rel"] = relative(device_history[key][-1], cpu_history[key][-1])
        row[f"max_{key}_rel"] = max(relative(a, b) for a, b in zip(device_history[key], cpu_history[key]))
    row["within"] = row["final_loss_rel"] <= tolerance and row["final_fvu_rel"] <= tolerance
    return row


def agreement(check: Check, record: dict) -> str:
    import torch

    from sae_lite.core.train import train
    from sae_lite.data.datasets import planted
    from sae_lite.study.methods import METHODS

    torch.set_float32_matmul_precision("highest")
    data = planted(**check.plan.planted)
    cpu = torch.device("cpu")
    record.update(tolerance={"relative": TOLERANCE, "on": "the final loss and the final FVU of the training history"},
                  devices={"device": str(check.device), "cpu": "cpu"}, data={"name": data.name, "n": data.n, "d": data.d},
                  runs=[])
    for method in ("baseline", "ratio"):
        for backend in ("dense", "sparse"):
            histories, seconds = {}, {}
            for side, device in (("device", check.device), ("cpu", cpu)):
                config = METHODS[method].config(check.plan.agreement["k"], **{
                    **{key: value for key, value in check.plan.agreement.items() if key != "k"},
                    "backend": backend, "device": str(device)})
                began = time.perf_counter()
                histories[side] = train(config, data, progress=False).history
                seconds[side] = round(time.perf_counter() - began, 2)
            row = {"method": method, "backend": backend, "steps": config.steps, "seconds": seconds,
                   **compare_histories(histories["device"], histories["cpu"])}
            record["runs"].append(row)
    bad = [f"{r['method']}/{r['backend']} (FVU {r['final_fvu_rel']:.1e}, loss {r['final_loss_rel']:.1e})"
           for r in record["runs"] if not r["within"]]
    worst = max(max(r["final_fvu_rel"], r["final_loss_rel"]) for r in record["runs"])
    if bad:
        raise Failed(f"beyond the relative tolerance {TOLERANCE:g}: {', '.join(bad)}")
    return (f"final loss and FVU within {TOLERANCE:g} relative in all {len(record['runs'])} runs "
            f"(largest {worst:.1e}; {check.device} against cpu)")


# --------------------------------------------------------------------------------------------
# Paper-scale speed.
# --------------------------------------------------------------------------------------------

def speed_variants() -> dict[str, dict]:
    """bench's variants on the sparse backend (base, off, ratio, auxk), and each on the dense backend."""
    from sae_lite.bench import bench

    return {**bench.VARIANTS, **{f"dense-{name}": {**change, "backend": "dense"} for name, change in bench.VARIANTS.items()}}


@contextlib.contextmanager
def precision(name: str, device):
    """The matmul precision and autocast of ``name`` (`PRECISIONS`), restored to float32 afterwards."""
    import torch

    torch.set_float32_matmul_precision("high" if name == "tf32" else "highest")
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bf16"):
            yield
    finally:
        torch.set_float32_matmul_precision("highest")


def speed(check: Check, record: dict) -> str:
    import torch

    from sae_lite.bench import bench

    device, cuda = check.device, check.device.type == "cuda"
    precisions = [p for p in PRECISIONS if cuda or p != "tf32"]
    record.update(precisions={p: PRECISIONS[p] for p in precisions}, repeats=check.plan.repeats, warmup=check.plan.warmup,
                  timing="sae_lite.bench.bench.ours with one variant at a time: the bound (the encoder matmul) and "
                         "the step interleaved, medians after warm-up",
                  peak_memory="torch.cuda.max_memory_allocated over the variant's bound and steps (weights, "
                              "Adam state and inputs included)" if cuda else "n/a on the CPU", rows=[])
    if not cuda:
        record["skipped_precisions"] = {"tf32": "TF32 is a CUDA tensor-core mode"}
    ours = check.results.setdefault("ours_base_ms", {})
    for d, n, k, batch in check.plan.sizes:
        size = bench.Size(d, n, k, batch)
        for name in precisions:
            for variant, change in speed_variants().items():
                row = {"size": size.name, "batch": batch, "precision": name, "variant": variant}
                record["rows"].append(row)
                try:
                    if cuda:
                        torch.cuda.reset_peak_memory_stats(device)
                    # one variant at a time (bench.ours times every entry of bench.VARIANTS)
                    with precision(name, device), mock.patch.dict(bench.VARIANTS, {variant: change}, clear=True):
                        times = bench.ours(size, device, check.plan.repeats, check.plan.warmup)
                except torch.cuda.OutOfMemoryError as error:
                    row.update(status="failed", error=one_line(error))
                    torch.cuda.empty_cache()
                    continue
                except Exception as error:  # a variant that cannot run at this precision: recorded, the rest go on
                    row.update(status="failed", error=one_line(error))
                    continue
                bound, step = median_ms(times["bound"]), median_ms(times[variant])
                row.update(status="ok", bound_ms=round(bound, 3), step_ms=round(step, 3), x_bound=round(step / bound, 2),
                           samples_per_s=round(batch / step * 1000),
                           peak_mib=round(torch.cuda.max_memory_allocated(device) / MIB) if cuda else None)
                if variant == "base":
                    ours[f"{size.name}/{name}"] = step
    failed = [r for r in record["rows"] if r["status"] == "failed"]
    hard = [r for r in failed if r["precision"] != "bf16"]
    if hard:
        raise Failed(f"{len(hard)} float32 step(s) failed, e.g. {hard[0]['size']} {hard[0]['precision']} "
                     f"{hard[0]['variant']}: {hard[0]['error']}")
    parts = [f"{r['size']} {r['precision']} base/bound={r['x_bound']}" for r in record["rows"]
             if r["variant"] == "base" and r["status"] == "ok"]
    soft = sorted({r["variant"] for r in failed})
    return "; ".join(parts) + (f"; under bf16 autocast {', '.join(soft)} fail (recorded)" if soft else "")


# --------------------------------------------------------------------------------------------
# Peers.
# --------------------------------------------------------------------------------------------

def peers(check: Check, record: dict) -> str:
    from sae_lite.bench import bench

    missing = {name: python for name, python in check.peer_pythons.items() if not python.is_file()}
    if len(missing) == len(check.peer_pythons):
        raise Skip("no peer environment: " + ", ".join(f"{p} is missing" for p in missing.values())
                   + f"; create them with scripts/bench_env.sh {' '.join(missing)}")
    ours = check.results.get("ours_base_ms", {})
    record.update(rows=[], compared_with="our sparse baseline step (speed section) at fp32 and tf32: the peer's "
                  "median step time over ours (sparsify sets TF32 matmuls itself)",
                  missing={name: str(python) for name, python in missing.items()})
    for d, n, k, batch in check.plan.sizes:
        size = bench.Size(d, n, k, batch)
        for name, python in check.peer_pythons.items():
            row = {"size": size.name, "peer": name}
            record["rows"].append(row)
            if name in missing:
                row.update(status="skipped", reason=f"{python} is missing")
                continue
            try:
                label, times = bench.peer(name, size, check.device, check.plan.repeats, check.plan.warmup, python)
            except Exception as error:
                row.update(status="failed", error=one_line(error))
                continue
            step = median_ms(times)
            row.update(status="ok", label=label, step_ms=round(step, 3),
                       **{f"vs_ours_{p}": round(step / ours[f"{size.name}/{p}"], 2)
                          for p in ("fp32", "tf32") if f"{size.name}/{p}" in ours})
    failed = [r for r in record["rows"] if r["status"] == "failed"]
    if failed:
        raise Failed(f"{failed[0]['peer']} at {failed[0]['size']}: {failed[0]['error']}")
    return "; ".join(f"{r['size']} {r['peer']} {r['step_ms']:.1f} ms" + (f" (x{r['vs_ours_fp32']} ours fp32)"
                                                                         if "vs_ours_fp32" in r else "")
                     for r in record["rows"] if r["status"] == "ok")


# --------------------------------------------------------------------------------------------
# Embedding throughput.
# --------------------------------------------------------------------------------------------

def embedding(check: Check, record: dict) -> str:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights: nothing to download, and no retries
    import numpy as np
    import torch
    from PIL import Image

    from sae_lite.data.backbones import load_backbone
    from sae_lite.data.embed import _choose_precision, _forward, embed_images

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from embed_throughput import write_images  # the sibling script's generated JPEGs

    device, plan = check.device, check.plan
    mode = _choose_precision("auto", device)  # bf16 (else fp16) on a GPU, fp32 on the CPU: embed's default
    record.update(backbone=plan.backbone, weights="random", precision=mode, batch=plan.embed_batch, images=plan.images)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-embed-"))
    try:
        write_images(work / "images", plan.images)
        began = time.perf_counter()
        loaded = load_backbone(plan.backbone, "random")
        record["model_build_s"] = round(time.perf_counter() - began, 2)
        loaded.module.to(device)
        pixels = loaded.preprocess(Image.fromarray(np.zeros((256, 256, 3), np.uint8)))[None].repeat(plan.embed_batch, 1, 1, 1)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for i in range(2 + max(2, plan.repeats // 2)):
            began = time.perf_counter()
            _forward(loaded, pixels, device, mode)  # embed's own forward (autocast, back to float32 on the CPU)
            if i >= 2:
                times.append(time.perf_counter() - began)
        record["forward_images_per_s"] = round(plan.embed_batch / statistics.median(times), 1)
        if device.type == "cuda":
            record["forward_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / MIB)
        del loaded
        if device.type == "cuda":
            torch.cuda.empty_cache()
        began = time.perf_counter()
        store = embed_images(plan.backbone, work / "images", work / "store", weights="random",
                             batch_size=plan.embed_batch, device=str(device), progress=False)
        whole = time.perf_counter() - began
        meta = json.loads((store / "meta.json").read_text())
        record.update(whole_call_s=round(whole, 2), whole_call_images_per_s=round(plan.images / whole, 1),
                      store={"n": meta["n"], "d": meta["d"], "precision": meta["precision"], "skipped": meta["skipped"]},
                      whole_call="embed_images on the generated JPEGs: decoding (DataLoader workers), preprocessing, "
                                 "forward, shards and store, the model's build included (model_build_s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if meta["n"] != plan.images:
        raise Failed(f"the store holds {meta['n']} of {plan.images} images")
    return (f"{plan.backbone} ({mode}, batch {plan.embed_batch}): forward {record['forward_images_per_s']:.0f} images/s, "
            f"whole call {record['whole_call_images_per_s']:.0f} images/s ({plan.images} images, build "
            f"{record['model_build_s']:.0f} s included)")


# --------------------------------------------------------------------------------------------
# torchrun.
# --------------------------------------------------------------------------------------------

def compare_runs(run: Path, reference: Path) -> dict:
    """The largest differences between two run directories' history.json and metrics.json, and whether
    they are within `TORCHRUN_TOLERANCE` (rtol, atol) everywhere."""
    rtol, atol = TORCHRUN_TOLERANCE["rtol"], TORCHRUN_TOLERANCE["atol"]
    history = [json.loads((path / "history.json").read_text()) for path in (run, reference)]
    metrics = [json.loads((path / "metrics.json").read_text()) for path in (run, reference)]
    pairs = [(key, a, b) for key in ("loss", "fvu", "penalty", "auxk", "l0") for a, b in zip(history[0][key], history[1][key])]
    pairs += [(f"metrics.{key}", metrics[0].get(key), value) for key, value in metrics[1].items()
              if isinstance(value, (int, float)) and not isinstance(value, bool)]
    worst = 0.0
    outside = [key for key in ("loss", "fvu", "penalty", "auxk", "l0") if len(history[0][key]) != len(history[1][key])]
    for key, a, b in pairs:
        if a is None or b is None:
            if a is not b:
                outside.append(key)
            continue
        worst = max(worst, relative(a, b))
        if abs(a - b) > atol + rtol * abs(b):
            outside.append(key)
    same_dead = history[0]["dead"] == history[1]["dead"]
    return {"max_rel": worst, "outside": sorted(set(outside)), "dead_equal": same_dead,
            "within": not outside and same_dead}


def torchrun(check: Check, record: dict) -> str:
    from sae_lite.cli import main as cli_main

    where = check.out / "torchrun"
    where.mkdir(parents=True, exist_ok=True)
    device = "cuda" if check.device.type == "cuda" else "cpu"
    args = [*check.plan.train_args, "--device", device]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    record.update(train_args=args, tolerance=TORCHRUN_TOLERANCE, runs={})

    began = time.perf_counter()  # the reference: the same command in this process
    with open(where / "single.log", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        code = cli_main(["train", *args, "--out", str(where / "single")])
    if code != 0:
        raise Failed(f"the one-process run failed (exit status {code}; log: {where / 'single.log'})")
    record["runs"]["single"] = {"command": "python -m sae_lite train " + " ".join(args),
                                "wall_s": round(time.perf_counter() - began, 2)}

    # torchrun with one process: WORLD_SIZE=1, which sae_lite.core.distributed.launched() reads as "no torchrun",
    # so the package trains as one process (no process group, no NCCL)
    began = time.perf_counter()
    run_command([*launcher, "-m", "sae_lite", "train", *args, "--out", str(where / "cli")], where / "cli.log",
                check.left() - 2, check.env())
    record["runs"]["cli"] = {"command": "torchrun --standalone --nproc_per_node=1 -m sae_lite train " + " ".join(args),
                             "wall_s": round(time.perf_counter() - began, 2), "process_group": None,
                             "note": "WORLD_SIZE=1: sae_lite.core.distributed.context() is Local (no process group)",
                             **compare_runs(where / "cli", where / "single")}

    # the same with the process group joined: this script as torchrun's worker (`torchrun_worker`), so one
    # process trains through DistributedDataParallel and the all-reduced sparse loss (NCCL on a GPU, gloo on the CPU)
    began = time.perf_counter()
    group = where / "group.json"
    run_command([*launcher, str(Path(__file__).resolve()), "--torchrun-worker", str(group), *args,
                 "--out", str(where / "group")], where / "group.log", check.left() - 2,
                check.env())
    joined = json.loads(group.read_text())
    record["runs"]["group"] = {"command": f"torchrun --standalone --nproc_per_node=1 {Path(__file__).name} "
                                          "--torchrun-worker (sae_lite train, distributed.launched() forced True) "
                                          + " ".join(args),
                               "wall_s": round(time.perf_counter() - began, 2), "process_group": joined,
                               **compare_runs(where / "group", where / "single")}
    expected = "nccl" if device == "cuda" else "gloo"
    if joined.get("backend") != expected:
        raise Failed(f"the worker joined {joined.get('backend')!r}, not {expected!r}")
    bad = [name for name in ("cli", "group") if not record["runs"][name]["within"]]
    if bad:
        raise Failed("beyond rtol 1e-4 of the one-process run: " + "; ".join(
            f"{name} ({', '.join(record['runs'][name]['outside'][:4]) or 'dead counts'}, max rel "
            f"{record['runs'][name]['max_rel']:.1e})" for name in bad))
    return (f"torchrun (1 process, no group) and torchrun + {expected} group match one process "
            f"(max rel {record['runs']['cli']['max_rel']:.1e} and {record['runs']['group']['max_rel']:.1e}); "
            f"{record['runs']['group']['wall_s']:.0f} s with the group, {record['runs']['single']['wall_s']:.0f} s alone")


def torchrun_worker(argv: list[str]) -> int:
    """``gpu_check.py --torchrun-worker GROUP_JSON TRAIN_ARGS...`` under torchrun: ``sae_lite train`` with
    the process group joined even with one process, then what it joined into GROUP_JSON."""
    import torch.distributed as dist

    from sae_lite.cli import main as cli_main
    from sae_lite.core import distributed
    from sae_lite.files import write_json

    distributed.launched = lambda: True  # context() then makes a Distributed job of WORLD_SIZE=1
    code = cli_main(["train", *argv[1:]])
    if distributed.is_main():
        write_json(argv[0], {"initialized": dist.is_initialized(),
                             "backend": dist.get_backend() if dist.is_initialized() else None,
                             "world": dist.get_world_size() if dist.is_initialized() else None})
    return code


# --------------------------------------------------------------------------------------------
# One chapter: reproduce --profile quick.
# --------------------------------------------------------------------------------------------

def last_json(stdout: str) -> dict:
    """The last JSON object a command printed (indented: from the last line that is ``{``)."""
    lines = stdout.splitlines()
    start = max((i for i, line in enumerate(lines) if line == "{"), default=None)  # nested ones are indented
    if start is None:
        raise Failed(f"no JSON summary in its output: {stdout.strip()[-200:]!r}")
    return json.loads("\n".join(lines[start:]))


def compare_verdicts(device_claims: dict[str, str], cpu_claims: dict[str, str]) -> dict:
    """Which claims' verdicts differ between two reproductions (each: {claim on data: verdict text})."""
    keys = sorted(device_claims.keys() | cpu_claims.keys())
    differ = [key for key in keys if device_claims.get(key) != cpu_claims.get(key)]
    return {"claims": len(keys), "differ": differ, "agree": not differ}


def chapter(check: Check, record: dict) -> str:
    if not check.plan.chapter:
        raise Skip("skipped in a dry run: reproduce --profile quick trains its grid (about 2 minutes on a laptop CPU)")
    where = check.out / "chapter"
    sides = {"cuda": {}, "cpu": {"CUDA_VISIBLE_DEVICES": ""}}
    record.update(command="python -m sae_lite reproduce --profile quick", runs={})
    claims = {}
    for side, extra in sides.items():
        left = check.left() - 2
        if left < CHAPTER_MIN_S:
            record["runs"][side] = {"status": "skipped", "reason": f"{left:.0f} s left, under {CHAPTER_MIN_S} s"}
            continue
        began = time.perf_counter()
        env = check.env(SAE_LITE_CACHE=str(where / f"cache-{side}"), **extra)  # a fresh cache: every run trains
        try:
            done = run_command([sys.executable, "-m", "sae_lite", "reproduce", "--profile", "quick",
                                "--out", str(where / side)], where / f"{side}.log", left, env)
        except Failed as failure:
            record["runs"][side] = {"status": "failed", "error": str(failure), "wall_s": round(time.perf_counter() - began, 1)}
            continue
        summary = last_json(done.stdout)
        claims[side] = summary["claims"]
        record["runs"][side] = {"status": "ok", "wall_s": round(time.perf_counter() - began, 1), "runs": summary["runs"],
                                "trained": summary["trained"], "weights": summary["weights"], "claims": summary["claims"]}
    for side in sides:  # the caches are large and of no use after the check
        shutil.rmtree(where / f"cache-{side}", ignore_errors=True)
    if "cuda" not in claims:
        run = record["runs"]["cuda"]
        raise Failed(f"the CUDA run did not finish: {run.get('error') or run.get('reason')}")
    times = ", ".join(f"{side} {run['wall_s']:.0f} s" for side, run in record["runs"].items() if "wall_s" in run)
    if "cpu" not in claims:
        run = record["runs"]["cpu"]
        record["verdicts"] = {"compared": False, "why": run.get("error") or run.get("reason")}
        return f"CUDA run ok ({times}); CPU run {run['status']}: verdicts not compared"
    record["verdicts"] = {"compared": True, **compare_verdicts(claims["cuda"], claims["cpu"])}
    if not record["verdicts"]["agree"]:
        raise Failed(f"verdicts differ between CUDA and CPU on: {', '.join(record['verdicts']['differ'])} ({times})")
    return f"{record['verdicts']['claims']} verdicts agree between CUDA and CPU ({times})"


# --------------------------------------------------------------------------------------------
# The readable summary.
# --------------------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list]) -> str:
    text = lambda v: "" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(text(v).replace("|", "/") for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_markdown(report: dict) -> str:
    """summary.md: the machine, one line per section, then each section's numbers as tables."""
    m, sections = report["machine"], report["sections"]
    out = [f"# sae_lite GPU check ({report['mode']})\n",
           f"{m.get('gpu', m['device'])} | CPU {m['cpu']} ({m['cpu_threads']} threads) | torch {m['torch']} "
           f"(CUDA {m['cuda']}) | sae_lite {m['sae_lite']} ({m['commit']}) | started {report['started']} | "
           f"wall {report['wall_s']} s of {report['time_limit_s']} s\n"]
    out.append(_table(["section", "status", "s", "result"],
                      [[name, r["status"], r.get("wall_s"), r.get("summary") or r.get("error") or r.get("reason") or ""]
                       for name, r in sections.items()]))
    agree = sections["agreement"]
    if agree.get("runs"):
        out.append(f"\n## Training agrees with the CPU\n\n{agree['devices']['device']} against cpu, relative tolerance "
                   f"{agree['tolerance']['relative']:g} on {agree['tolerance']['on']}.\n\n")
        out.append(_table(["method", "backend", "final FVU device", "final FVU cpu", "rel", "loss rel",
                           "max rel (history)", "within"],
                          [[r["method"], r["backend"], r["final_fvu_device"], r["final_fvu_cpu"], r["final_fvu_rel"],
                            r["final_loss_rel"], max(r["max_fvu_rel"], r["max_loss_rel"]), r["within"]]
                           for r in agree["runs"]]))
    fast = sections["speed"]
    if fast.get("rows"):
        out.append("\n## Paper-scale speed\n\n" + "\n".join(f"- {p}: {what}" for p, what in fast["precisions"].items())
                   + f"\n\nPeak memory: {fast['peak_memory']}.\n\n")
        out.append(_table(["size", "B", "precision", "variant", "bound ms", "step ms", "x bound", "samples/s",
                           "peak MiB", "status"],
                          [[r["size"], r["batch"], r["precision"], r["variant"], r.get("bound_ms"), r.get("step_ms"),
                            r.get("x_bound"), r.get("samples_per_s"), r.get("peak_mib"), r["status"] + (
                                f": {r['error'][:80]}" if r.get("error") else "")] for r in fast["rows"]]))
    peer = sections["peers"]
    if peer.get("rows"):
        out.append(f"\n## Peers\n\n{peer['compared_with']}.\n\n")
        out.append(_table(["size", "peer", "step ms", "x ours fp32", "x ours tf32", "status"],
                          [[r["size"], r.get("label", r["peer"]), r.get("step_ms"), r.get("vs_ours_fp32"),
                            r.get("vs_ours_tf32"), r["status"] + (f": {r.get('error') or r.get('reason')}"
                                                                  if r["status"] != "ok" else "")] for r in peer["rows"]]))
    emb = sections["embed"]
    if "forward_images_per_s" in emb:
        out.append(f"\n## Embedding throughput\n\n{emb['backbone']}, random weights, {emb['precision']}, batch {emb['batch']}: "
                   f"forward {emb['forward_images_per_s']} images/s"
                   + (f" (peak {emb['forward_peak_mib']} MiB)" if "forward_peak_mib" in emb else "")
                   + (f"; whole embed_images call on {emb['images']} JPEGs: {emb['whole_call_images_per_s']} images/s "
                      f"({emb['whole_call_s']} s, the model's build of {emb['model_build_s']} s included)"
                      if "whole_call_s" in emb else "") + ".\n")
    tr = sections["torchrun"]
    if tr.get("runs"):
        out.append("\n## torchrun\n\n")
        out.append(_table(["run", "command", "s", "process group", "max rel vs one process", "within"],
                          [[name, r["command"], r.get("wall_s"), json.dumps(r.get("process_group")), r.get("max_rel"),
                            r.get("within")] for name, r in tr["runs"].items()]))
    chap = sections["chapter"]
    if chap.get("runs"):
        out.append("\n## One chapter: reproduce --profile quick\n\n")
        out.append(_table(["device", "status", "s", "runs", "trained"],
                          [[side, r["status"], r.get("wall_s"), r.get("runs"), r.get("trained")]
                           for side, r in chap["runs"].items()]))
        if "verdicts" in chap:
            out.append(f"\nVerdicts: {json.dumps(chap['verdicts'])}\n")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# The command.
# --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="The module docstring of scripts/gpu_check.py describes every section.")
    parser.add_argument("--out", required=True, type=Path, help="the directory for report.json and summary.md")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it holds a previous check's report")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU at tiny sizes: the same code, in under a minute")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"the sections to run, comma-separated (default: all: {','.join(SECTIONS)})")
    parser.add_argument("--peer-python", action="append", default=[], metavar="NAME=PYTHON",
                        help="a peer environment's python (NAME: sparsify or saelens; default: those of scripts/bench_env.sh)")
    args = parser.parse_args(argv)
    args.sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown or not args.sections:
        parser.error(f"unknown section(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(SECTIONS)}")
    pythons = {}
    for text in args.peer_python:
        name, sep, path = text.partition("=")
        if not sep or name not in PEER_NAMES:
            parser.error(f"--peer-python takes NAME=PYTHON with NAME one of {', '.join(PEER_NAMES)}; got {text!r}")
        pythons[name] = Path(path)
    args.peer_python = pythons
    return args


def refuse_out(out: Path, overwrite: bool) -> str | None:
    """Why ``out`` may not be written (None when it may): it exists and is not an empty directory, and
    ``overwrite`` is not given or it is not a previous check's directory (one with a report.json)."""
    if not out.exists():
        return None
    if not out.is_dir():
        return f"{out} exists and is not a directory; choose another --out"
    if not any(out.iterdir()):
        return None
    if not overwrite:
        return f"{out} exists and is not empty; choose another --out or pass --overwrite"
    if not (out / "report.json").is_file():
        return f"{out} holds no report.json of a previous check; --overwrite replaces only such a directory"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--torchrun-worker"]:
        return torchrun_worker(argv[1:])
    args = parse_args(argv)
    refusal = refuse_out(args.out, args.overwrite)  # before any work
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    import torch

    from sae_lite.bench import bench

    if not args.dry_run and not torch.cuda.is_available():
        print(f"error: this torch ({torch.__version__}) sees no CUDA GPU; install the CUDA build of torch, or run "
              "--dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    plan = DRY if args.dry_run else GPU
    device = torch.device("cpu" if args.dry_run else "cuda")
    pythons = {name: args.peer_python.get(name, bench.PEERS[name].default_python()) for name in PEER_NAMES}
    check = Check(args.out, plan, device, pythons, args.sections)
    print(f"gpu check ({plan.name}) on {check.report['machine'].get('gpu', device)}: {len(args.sections)} section(s), "
          f"at most {TOTAL_LIMIT} s; writing {args.out}", flush=True)
    functions = {"agreement": agreement, "speed": speed, "peers": peers, "embed": embedding,
                 "torchrun": torchrun, "chapter": chapter}
    try:
        for name in SECTIONS:
            check.run_section(name, functions[name])
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        check.finish(interrupted=True)
        return 130
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
