"""How many images per second `sae_lite.data.embed` turns into embeddings on this machine.

Writes N generated JPEGs (256×256, 4 class folders) to a temporary folder, then runs
`embed_images` on them with random weights (nothing is downloaded) and prints the throughput of
the whole call (decoding, preprocessing, forward, shards, store) and, on the CPU, of the model's
forward pass alone on one batch.

    python scripts/embed_throughput.py --backbone vit-tiny-16 --images 256
    python scripts/embed_throughput.py --backbone clip-vit-l-14 --images 64 --batch-size 16
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sae_lite.data.backbones import load_backbone
from sae_lite.data.embed import embed_images


def write_images(root: Path, n: int, size: int = 256, classes: int = 4) -> None:
    """``n`` random-noise JPEGs of ``size``², spread over ``classes`` class folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg")


def model_only(backbone: str, batch_size: int) -> float:
    """Images/s of the CPU forward pass alone on one preprocessed batch (median of 3 after a warm-up)."""
    loaded = load_backbone(backbone, "random")
    image = Image.fromarray(np.zeros((256, 256, 3), np.uint8))
    pixels = loaded.preprocess(image)[None].repeat(batch_size, 1, 1, 1)
    times = []
    with torch.inference_mode():
        for _ in range(4):
            start = time.perf_counter()
            loaded.embed(pixels)
            times.append(time.perf_counter() - start)
    return batch_size / float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="vit-tiny-16", help="a backbone of python -m sae_lite embed")
    parser.add_argument("--images", type=int, default=256, help="generated JPEGs to embed")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_images(root / "images", args.images)
        start = time.perf_counter()
        embed_images(args.backbone, root / "images", root / "store", weights="random",
                     batch_size=args.batch_size, device=args.device, progress=False)
        total = time.perf_counter() - start
    print(f"backbone={args.backbone} images={args.images} threads={torch.get_num_threads()} "
          f"whole_call={args.images / total:.1f} images/s ({total:.1f} s, model load included)")
    if args.device in ("auto", "cpu") and not torch.cuda.is_available():
        print(f"backbone={args.backbone} forward_only={model_only(args.backbone, args.batch_size):.1f} images/s "
              f"(batch {args.batch_size}, CPU, fp32)")


if __name__ == "__main__":
    main()
