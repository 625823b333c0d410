"""The training-speed benchmark: ``python -m sae_lite bench``.

For each size (d, N, k, B) it times, in one process on one device, after warm-up, the median of
``repeats`` runs (the variants interleaved round-robin, so a change in machine load hits them alike):

- ``bound``: the encoder matmul (x - b_pre) @ W_enc^T alone, the one dense product an exact Top-k
  SAE cannot skip;
- one full training step (`sae_lite.core.train.train_step`: forward, loss, backward, decoder-gradient
  projection, Adam, renormalisation) with the sparse backend for the baseline (``base``), off-support
  L1 (``off``) and the ratio (``ratio``, masked; weight 0.01, AuxK off), and the baseline with AuxK
  on (``auxk``: a quarter of the latents dead, k_aux = d // 2);
- ``dense`` (with ``--dense``): the baseline step with the dense reference backend;
- the peers, each in its own environment next to the repository (``scripts/bench_env.sh`` makes them),
  at the same (d, N, k, B), same inputs, Adam, AuxK off (our ``base``):
  ``overcomplete`` (0.3.0 ``TopKSAE``, `peer_overcomplete`), ``sparsify`` (eai-sparsify 1.3.3 ``SparseCoder`` as its
  ``Trainer`` steps it, `peer_sparsify`), ``saelens`` (sae-lens 6.54.12 ``TopKTrainingSAE`` through
  ``SAETrainer.step``, `peer_saelens`). A peer whose environment is missing is reported ``n/a``.

It prints a header line (CPU model, threads, torch version, device, repeats) and then one line per size:
``size=d768_n16384_k64 base/bound=... off/bound=... ratio/bound=... auxk/bound=... vs_overcomplete=...
vs_sparsify=... vs_saelens=...`` where vs_<peer> = the peer's step time / our baseline step time (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch

from sae_lite.core.config import TrainConfig
from sae_lite.core.sae import SAE
from sae_lite.core.train import make_optimizer, train_step
from sae_lite.errors import SaeLiteError

SIZES = ((768, 16384, 64, 4096), (1024, 8192, 32, 4096))
DEAD_FRACTION = 0.25
VARIANTS = {
    "base": dict(),
    "off": dict(penalty="offsupport", weight=0.01),
    "ratio": dict(penalty="ratio", weight=0.01),
    "auxk": dict(auxk=True),
}
DENSE = {"dense": dict(backend="dense")}
ROOT = Path(__file__).resolve().parents[2]


class Peer(NamedTuple):
    script: str  # beside this file, run as a plain script
    env: str     # its virtual environment, next to the repository (scripts/bench_env.sh)

    def default_python(self) -> Path:
        return ROOT / self.env / "bin" / "python"


PEERS = {
    "overcomplete": Peer("peer_overcomplete.py", ".venv-bench"),
    "sparsify": Peer("peer_sparsify.py", ".venv-bench-sparsify"),
    "saelens": Peer("peer_saelens.py", ".venv-bench-saelens"),
}


class Size(NamedTuple):
    d: int
    n: int
    k: int
    batch: int

    @property
    def name(self) -> str:
        return f"d{self.d}_n{self.n}_k{self.k}"


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def ours(size: Size, device: torch.device, repeats: int, warmup: int, dense: bool = False) -> dict[str, list[float]]:
    """Step times (s) of the bound and of every variant (and the dense reference), interleaved round-robin."""
    sae = SAE(size.d, size.n, size.k).to(device)
    base = TrainConfig(k=size.k, n_latents=size.n, batch_size=size.batch, auxk=False, backend="sparse")
    optimizer = make_optimizer(sae, base)
    x = torch.randn(size.batch, size.d, generator=torch.Generator().manual_seed(0)).to(device)
    dead = torch.rand(size.n, generator=torch.Generator().manual_seed(1)).to(device) < DEAD_FRACTION

    def bound() -> None:
        with torch.no_grad():
            (x - sae.b_pre) @ sae.W_enc.T

    runs = {"bound": bound}
    for name, change in {**VARIANTS, **(DENSE if dense else {})}.items():
        config = replace(base, **change)
        runs[name] = lambda config=config: train_step(sae, optimizer, x, config, dead, config.lr)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + repeats):
        for name, run in runs.items():
            elapsed = _timed(run, device)
            if i >= warmup:
                times[name].append(elapsed)
    return times


def peer(name: str, size: Size, device: torch.device, repeats: int, warmup: int,
         python: Path) -> tuple[str, list[float]] | None:
    """The step times of peer ``name`` (`PEERS`), from its own environment's ``python``; None when that is missing."""
    if not python.is_file():
        return None
    script = Path(__file__).with_name(PEERS[name].script)
    command = [str(python), str(script), "--d", str(size.d), "--n", str(size.n), "--k", str(size.k),
               "--batch", str(size.batch), "--repeats", str(repeats), "--warmup", str(warmup),
               "--device", str(device), "--threads", str(torch.get_num_threads())]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    if done.returncode != 0:
        raise SaeLiteError(f"the {name} peer failed ({python}): {done.stderr.strip().splitlines()[-1:]}; "
                           f"re-create its environment with scripts/bench_env.sh or pass --no-peer")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["peer"], result["times"]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def header(device: torch.device, repeats: int, warmup: int) -> str:
    """What the figures were measured on: printed before the summary lines."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return (f"# {name} | threads={torch.get_num_threads()} | torch {torch.__version__} | device={device} | "
            f"median of {repeats} (warm-up {warmup})")


def summary(size: Size, medians: dict[str, float], peers: tuple[str, ...] = tuple(PEERS)) -> str:
    """The one-line summary of a size (ratios to the bound, and each peer's time over our baseline's)."""
    bound = medians["bound"]
    parts = [f"size={size.name}"] + [f"{name}/bound={medians[name] / bound:.2f}" for name in ("base", "off", "ratio", "auxk")]
    for name in peers:
        parts.append(f"vs_{name}=" + (f"{medians[name] / medians['base']:.2f}" if name in medians else "n/a"))
    return " ".join(parts)


def run(sizes: list[Size], device: torch.device, repeats: int, warmup: int, peer_pythons: dict[str, Path],
        dense: bool = False) -> list[str]:
    """Benchmark every size and every peer of ``peer_pythons`` (name -> its python), print a table per size,
    then the header and the summary lines, which it returns (header first)."""
    lines = []
    for size in sizes:
        times = ours(size, device, repeats, warmup, dense)
        labels = {}
        for name, python in peer_pythons.items():
            found = peer(name, size, device, repeats, warmup, python)
            if found is None:
                print(f"(no {name} peer: {python} is missing; create it with scripts/bench_env.sh)")
            else:
                labels[name], times[name] = found
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"\n{size.name} B={size.batch} on {device} ({torch.get_num_threads()} threads), median of {repeats}:")
        print(f"  {'':>12} {'s/step':>8} {'samples/s':>10} {'x bound':>8}")
        for name, value in medians.items():
            label = f"  ({labels[name]})" if name in labels else ""
            print(f"  {name:>12} {value:8.3f} {size.batch / value:10.0f} {value / medians['bound']:8.2f}{label}")
        lines.append(summary(size, medians))
    lines.insert(0, header(device, repeats, warmup))
    print()
    for line in lines:
        print(line)
    return lines


def parse_size(text: str) -> Size:
    try:
        size = Size(*(int(part) for part in text.split(",")))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"a size is d,N,k,B such as 768,16384,64,4096; got {text!r}")
    if not 0 < size.k < size.n or min(size) < 1:
        raise argparse.ArgumentTypeError(f"a size needs positive d, N, k, B with k < N; got {text!r}")
    return size
