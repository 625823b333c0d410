"""What the three peer scripts share: their size options and the timed loop.

The peer scripts (`peer_overcomplete`, `peer_sparsify`, `peer_saelens`) run as plain scripts in their own
environments, where sae_lite is not installed; they import this file as their sibling
(``from peer_timing import ...``), so it needs nothing beyond the standard library and torch.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch


def size_parser(description: str) -> argparse.ArgumentParser:
    """The options every peer script takes: the size (d, N, k, B), repeats, warm-up, device, threads."""
    parser = argparse.ArgumentParser(description=description)
    for name, what in (("d", "input width"), ("n", "latents"), ("k", "active latents"), ("batch", "batch size")):
        parser.add_argument(f"--{name}", type=int, required=True, help=what)
    parser.add_argument("--repeats", "--steps", dest="repeats", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """``parser``'s arguments, with torch's CPU threads set as they say."""
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


def time_steps(step: Callable[[], None], device: torch.device, warmup: int, repeats: int,
               before: Callable[[], None] | None = None) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``step`` after ``warmup`` untimed ones (synchronised on a
    GPU); ``before`` runs untimed before every call."""
    times = []
    for i in range(warmup + repeats):
        if before is not None:
            before()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times
