"""How large and how long the real data's SAE should train: dictionary size, learning rate, steps and batch
against held-out FVU, dead latents and time.

Trains the Top-k baseline (k = 16, AuxK on, sparse backend, seed 0) on Fashion-MNIST through
EfficientNet-Lite0 at each setting of the grid, one run per CPU core at a time (each with one torch
thread, as the book's workers), and prints one row per setting: N, lr, steps, batch, the inputs seen,
held-out FVU and dead latents (fired on no held-out input), and the seconds the run trained. The
store and split are the book's (`sae_lite.study.profiles.RealData` of the profile, ``default`` unless
``SAE_LITE_PROFILE`` says otherwise); the CPU model and the commit are printed first.

With ``--step-time`` it only times a training step of each N and batch instead (one run at a time,
the median of three timings of 20 steps, a run's set-up left out): run it on an otherwise idle machine.

    python scripts/real_sizing.py                                  # the grid below
    python scripts/real_sizing.py --latents 2560 --lrs 1e-3 --steps 500,1000
    python scripts/real_sizing.py --step-time --latents 1024,2560,4096
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import torch

from sae_lite.bench.bench import cpu_model
from sae_lite.core.train import train
from sae_lite.evaluation import metrics
from sae_lite.study.grids import K, real_spec
from sae_lite.study.methods import METHODS
from sae_lite.study.pipeline import load_split
from sae_lite.study.runner import limit_threads, usable_cores


def commit() -> str:
    """The repository's commit (with ``+`` when the work tree differs from it)."""
    run = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()  # noqa: E731
    return run("rev-parse", "--short", "HEAD") + ("+" if run("status", "--porcelain", "--untracked-files=no") else "")


def one_setting(setting: tuple[int, float, int, int]) -> dict:
    """Train the baseline at ``setting`` = (N, lr, steps, batch) and measure it on the held-out split."""
    n_latents, lr, steps, batch = setting
    limit_threads(1)
    train_set, test_set = load_split(real_spec())
    config = METHODS["baseline"].config(K, n_latents=n_latents, lr=lr, steps=steps, batch_size=batch,
                                        backend="sparse", log_every=steps)
    start = time.perf_counter()
    sae = train(config, train_set, progress=False).sae
    seconds = time.perf_counter() - start
    codes, x_hat = metrics.encode_all(sae, test_set.x)
    dead = int(metrics.dead_latents(codes).sum())
    return {"N": n_latents, "lr": lr, "steps": steps, "batch": batch, "inputs": steps * batch,
            "epochs": steps * batch / train_set.n, "fvu": metrics.fvu(test_set.x, x_hat), "dead": dead,
            "dead %": 100 * dead / n_latents, "seconds": seconds}


def step_time(n_latents: int, batch: int, train_set) -> float:
    """Median seconds per training step of the baseline at N = ``n_latents`` and ``batch``: three times
    the difference between a run of 25 steps and one of 5, over 20 (the set-up of a run cancels)."""
    config = METHODS["baseline"].config(K, n_latents=n_latents, batch_size=batch, backend="sparse", lr=1e-3)

    def seconds(steps: int) -> float:
        start = time.perf_counter()
        train(replace(config, steps=steps, log_every=steps), train_set, progress=False)
        return time.perf_counter() - start

    seconds(5)  # warm-up
    return statistics.median((seconds(25) - seconds(5)) / 20 for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", default="2560,4096", help="dictionary sizes N, comma-separated")
    parser.add_argument("--lrs", default="5e-4,1e-3,2e-3", help="Adam learning rates, comma-separated")
    parser.add_argument("--steps", default="500,1000,2000", help="training steps, comma-separated")
    parser.add_argument("--batches", default="256", help="batch sizes, comma-separated")
    parser.add_argument("--jobs", type=int, default=usable_cores(), help="settings trained at once")
    parser.add_argument("--step-time", action="store_true", help="only time a step of each N and batch, one at a time")
    args = parser.parse_args()
    grid = list(itertools.product(*[[cast(v) for v in text.split(",")] for cast, text in
                                    ((int, args.latents), (float, args.lrs), (int, args.steps), (int, args.batches))]))
    train_set, test_set = load_split(real_spec())  # embeds the store once, before the workers start
    print(f"# {cpu_model()}, {os.cpu_count()} cores, 1 torch thread per run, {args.jobs} runs at once; "
          f"commit {commit()}; torch {torch.__version__}")
    print(f"# {train_set.name}: {train_set.n} training and {test_set.n} held-out embeddings of d = {train_set.d}")
    if args.step_time:
        limit_threads(1)
        print("| N | batch | ms per step |\n|---|---|---|")
        for n_latents, batch in itertools.product([int(v) for v in args.latents.split(",")],
                                                  [int(v) for v in args.batches.split(",")]):
            print(f"| {n_latents} | {batch} | {1000 * step_time(n_latents, batch, train_set):.0f} |", flush=True)
        return
    print("| N | lr | steps | batch | inputs | epochs | held-out FVU | dead | dead % | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(one_setting, grid):
            print(f"| {row['N']} | {row['lr']:g} | {row['steps']} | {row['batch']} | {row['inputs']} | "
                  f"{row['epochs']:.1f} | {row['fvu']:.4f} | {row['dead']} | {row['dead %']:.1f} | "
                  f"{row['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
