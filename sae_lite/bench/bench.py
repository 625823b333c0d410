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
- ``peer``: overcomplete's ``TopKSAE`` step, in its own environment (``scripts/bench_env.sh``).

It ends with one line per size: ``size=d768_n16384_k64 base/bound=... off/bound=... ratio/bound=...
auxk/bound=... vs_peer=...`` where vs_peer = peer step time / our baseline step time.
"""

from __future__ import annotations

import argparse
import json
import os
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
PEER_PYTHON = Path(__file__).resolve().parents[2] / ".venv-bench" / "bin" / "python"


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


def peer(size: Size, device: torch.device, repeats: int, warmup: int, python: Path) -> tuple[str, list[float]] | None:
    """overcomplete's TopKSAE step times, from its own environment; None when that is missing."""
    if not python.is_file():
        return None
    script = Path(__file__).with_name("peer.py")
    command = [str(python), str(script), "--d", str(size.d), "--n", str(size.n), "--k", str(size.k),
               "--batch", str(size.batch), "--repeats", str(repeats), "--warmup", str(warmup),
               "--device", str(device), "--threads", str(torch.get_num_threads())]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    if done.returncode != 0:
        raise SaeLiteError(f"the peer benchmark failed ({python}): {done.stderr.strip().splitlines()[-1:]}; "
                           "re-create its environment with scripts/bench_env.sh or pass --no-peer")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["peer"], result["times"]


def summary(size: Size, medians: dict[str, float]) -> str:
    """The one-line summary of a size (ratios to the bound, and the peer's time over ours)."""
    bound = medians["bound"]
    parts = [f"size={size.name}"] + [f"{name}/bound={medians[name] / bound:.2f}" for name in ("base", "off", "ratio", "auxk")]
    vs_peer = f"{medians['peer'] / medians['base']:.2f}" if "peer" in medians else "n/a"
    return " ".join(parts + [f"vs_peer={vs_peer}"])


def run(sizes: list[Size], device: torch.device, repeats: int, warmup: int, peer_python: Path | None,
        dense: bool = False) -> list[str]:
    """Benchmark every size, print its table, and return the summary lines."""
    lines = []
    for size in sizes:
        times = ours(size, device, repeats, warmup, dense)
        peer_name = "peer"
        if peer_python is not None:
            found = peer(size, device, repeats, warmup, peer_python)
            if found is None:
                print(f"(no peer: {peer_python} is missing; create it with scripts/bench_env.sh)")
            else:
                peer_name, times["peer"] = found
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"\n{size.name} B={size.batch} on {device} ({torch.get_num_threads()} threads), median of {repeats}:")
        print(f"  {'':>6} {'s/step':>8} {'samples/s':>10} {'x bound':>8}")
        for name, value in medians.items():
            label = f"  ({peer_name})" if name == "peer" else ""
            print(f"  {name:>6} {value:8.3f} {size.batch / value:10.0f} {value / medians['bound']:8.2f}{label}")
        lines.append(summary(size, medians))
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
