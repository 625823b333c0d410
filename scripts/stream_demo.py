"""Streaming demonstration (not part of CI): resident memory stays flat as the store grows.

    PYTHONPATH=$PWD python scripts/stream_demo.py --gb 1
    PYTHONPATH=$PWD python scripts/stream_demo.py --gb 20 --dir /big/disk

Writes a store of ``--gb`` gigabytes of float32 embeddings piece by piece (never held in memory;
into a temporary directory renamed at the end), opens it with `sae_lite.data.load_store` (which
scans every row for NaN/Inf: one full read), reads ``--read-steps`` batches through the chunked
reader alone, trains the sparse backend for ``--steps`` steps, and prints the rows per second read
and the peak resident memory of each phase (each runs in its own process, so one phase's peak does
not hide in another's). The store is deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sae_lite.core.config import TrainConfig
from sae_lite.core.train import train
from sae_lite.data import STORE_FORMAT, load_store
from sae_lite.data.stream import ChunkedBatches

PIECE_ROWS = 1 << 15
PHASES = ("write", "scan", "read", "train")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_big_store(path: Path, n: int, d: int, seed: int = 0) -> None:
    """A store of n rows: low-rank structure plus noise, written PIECE_ROWS rows at a time."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((64, d)).astype(np.float32) / 8
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    with open(tmp / "embeddings.npy", "wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
        for start in range(0, n, PIECE_ROWS):
            rows = min(PIECE_ROWS, n - start)
            piece = rng.standard_normal((rows, 64), dtype=np.float32) @ mixing
            piece += 0.1 * rng.standard_normal((rows, d), dtype=np.float32)
            file.write(piece.tobytes())
    meta = {"format": STORE_FORMAT, "n": n, "d": d, "label_kind": None, "source": "scripts/stream_demo.py"}
    (tmp / "meta.json").write_text(json.dumps(meta))
    tmp.rename(path)


def run_phase(phase: str, path: Path, n: int, args: argparse.Namespace) -> str:
    """One phase in this process; returns its report line, with this process's peak RSS."""
    start = time.perf_counter()
    if phase == "write":
        write_big_store(path, n, args.d)
        what = f"written in {time.perf_counter() - start:.0f} s"
    elif phase == "scan":
        load_store(path)  # scans every row for NaN/Inf
        elapsed = time.perf_counter() - start
        what = f"load_store (full NaN scan): {n / elapsed:,.0f} rows/s ({n * args.d * 4 / 1e9 / elapsed:.2f} GB/s)"
    elif phase == "read":
        reader = ChunkedBatches(load_store(path, check=False).x, args.batch, seed=0)
        start = time.perf_counter()
        for step in range(args.read_steps):
            reader(step)
        elapsed = time.perf_counter() - start
        reader.close()
        rate = args.read_steps * args.batch / elapsed
        what = f"chunked reader alone, {args.read_steps} batches of {args.batch}: {rate:,.0f} rows/s"
    else:
        config = TrainConfig(k=args.k, n_latents=args.latents, batch_size=args.batch, steps=args.steps,
                             backend="sparse", device="cpu", log_every=args.steps)
        dataset = load_store(path, check=False)
        start = time.perf_counter()
        result = train(config, dataset, progress=False)
        elapsed = time.perf_counter() - start
        what = (f"trained {args.steps} steps (d={args.d}, N={args.latents}, k={args.k}, B={args.batch}, sparse): "
                f"{args.steps * args.batch / elapsed:,.0f} samples/s, fvu {result.history['fvu'][-1]:.3f}")
    return f"{what}; peak RSS {peak_rss_mb():.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, required=True, help="store size in GB (10^9 bytes)")
    parser.add_argument("--d", type=int, default=1024, help="embedding dimension of the store")
    parser.add_argument("--latents", type=int, default=4096, help="dictionary size N of the SAE")
    parser.add_argument("--k", type=int, default=32, help="latents kept per input")
    parser.add_argument("--batch", type=int, default=4096, help="inputs per training step and per read batch")
    parser.add_argument("--steps", type=int, default=30, help="training steps")
    parser.add_argument("--read-steps", type=int, default=200, help="batches read by the reader alone")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the store is written")
    parser.add_argument("--keep", action="store_true", help="keep the store")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # a child runs one phase
    args = parser.parse_args()
    n = int(args.gb * 1e9) // (4 * args.d)
    path = args.dir / f"sae-lite-stream-{args.gb:g}gb"
    if args.phase:
        print(run_phase(args.phase, path, n, args), flush=True)
        return
    print(f"store {path}: {n} x {args.d} float32 = {n * args.d * 4 / 1e9:.1f} GB; each phase in its own process")
    try:
        for phase in PHASES:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--phase", phase], check=True)
    finally:
        if not args.keep:
            shutil.rmtree(path, ignore_errors=True)
            for tmp in args.dir.glob(f".{path.name}.*"):
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
