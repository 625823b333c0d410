"""Which input resolution for Fashion-MNIST through EfficientNet-Lite0: speed against probe accuracy.

For each resolution, embeds the same seeded, class-balanced FIT + HELD_OUT Fashion-MNIST training
images with `sae_lite.data.embed.embed_images` (pretrained weights; with --random also random ones)
and prints the images/s of that call (decoding, preprocessing, forward pass, store; the model is
built once beforehand so that library imports are not timed) and the held-out accuracy of a
logistic-regression probe fitted on FIT of them. The raw 28x28 pixels are probed once as a
baseline. The CPU model and torch's thread count are printed first: compare runs on one machine.

    python scripts/embed_resolution.py                                  # 1,500 fit / 500 held out
    python scripts/embed_resolution.py --resolutions 64,112 --fit 150 --held-out 50 --random
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sae_lite.data import load_store
from sae_lite.data.backbones import load_backbone
from sae_lite.data.embed import embed_images
from sae_lite.data.fashion_mnist import fashion_mnist
from sae_lite.data.images import select

BACKBONE = "efficientnet-lite0"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def probe_accuracy(x: np.ndarray, labels: np.ndarray, fit: int) -> float:
    """Held-out accuracy of a logistic probe (standardised inputs) fitted on the first ``fit`` rows."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(x[:fit], labels[:fit])
    return float(probe.score(x[fit:], labels[fit:]))


def embed(source, resolution: int, weights: str, batch_size: int) -> tuple[np.ndarray, float]:
    """The embeddings [n, 1280] of ``source`` and the images/s of the embed call."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = embed_images(BACKBONE, source, Path(tmp) / "store", weights=weights, resolution=resolution,
                             batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - start
        return np.array(load_store(store).x), len(source) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", default="64,96,112,160,224", help="comma-separated sizes in pixels")
    parser.add_argument("--fit", type=int, default=1500, help="images the probe is fitted on")
    parser.add_argument("--held-out", type=int, default=500, help="images the probe is scored on")
    parser.add_argument("--random", action="store_true", help="also embed with random weights (a baseline)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image subset and of its order")
    args = parser.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]
    n = args.fit + args.held_out
    source = select(fashion_mnist(split="train"), n, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(n)  # fit and held-out rows mixed over classes
    source = source.take(order)
    labels = source.labels
    print(f"cpu={cpu_model()!r} cores={os.cpu_count()} threads={torch.get_num_threads()} "
          f"torch={torch.__version__} images={n} (fit {args.fit}, held out {args.held_out}, "
          f"class-balanced, seed {args.seed})")
    raw = source.pixels.reshape(n, -1).astype(np.float32)
    print(f"raw pixels (784-d): probe accuracy {probe_accuracy(raw, labels, args.fit):.3f}")
    load_backbone(BACKBONE, weights="random")  # imports timm once, outside the timed calls
    for resolution in resolutions:
        for weights in ("pretrained", "random") if args.random else ("pretrained",):
            x, speed = embed(source, resolution, weights, args.batch_size)
            print(f"{BACKBONE} {weights:10s} {resolution:4d} px: {speed:7.1f} images/s, "
                  f"probe accuracy {probe_accuracy(x, labels, args.fit):.3f}", flush=True)


if __name__ == "__main__":
    main()
