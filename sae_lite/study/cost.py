"""What the paper profile would cost to train: a FLOP count of one training step, a measured step
rate, and the hours they give for the paper's grid (`sae_lite.study.paper`). An estimate, not a
measurement: the count covers the encoder and decoder products only.
"""

from __future__ import annotations

import time

import numpy as np

from sae_lite.core.config import TrainConfig
from sae_lite.core.train import train
from sae_lite.data.backbones import BACKBONES
from sae_lite.data.datasets import Dataset
from sae_lite.errors import SaeLiteError
from sae_lite.study.methods import PAPER_METHODS
from sae_lite.study.paper import PAPER_BACKBONES, PAPER_DATASETS, PAPER_EXPANSION, PAPER_KS
from sae_lite.study.profiles import PROFILE_SETTINGS


def step_flops(d: int, n_latents: int, batch_size: int) -> float:
    """FLOPs of one dense training step: encoder and decoder products (2 x 2*B*d*N), backward twice that.

    Top-k, the penalties and AuxK add terms linear in N and are left out.
    """
    return 3 * 2 * 2 * batch_size * d * n_latents


def measure_step_rate(d: int = 256, n_latents: int = 2048, steps: int = 20, device: str = "auto") -> float:
    """Training steps per second of the baseline (k=32, batch of `TrainConfig`'s default) on random [4096, d] data."""
    x = np.random.default_rng(0).standard_normal((4096, d)).astype(np.float32)
    config = TrainConfig(k=32, n_latents=n_latents, steps=steps + 5, device=device, b_pre_init="mean")
    train(config, Dataset(x=x), stop_at=5, progress=False)  # warm-up: allocation, kernels
    start = time.perf_counter()
    train(config, Dataset(x=x), progress=False)
    return (steps + 5) / (time.perf_counter() - start)


def paper_train_flops() -> float:
    """FLOPs of training every run of the paper profile (evaluation and embedding extraction excluded)."""
    profile, batch = PROFILE_SETTINGS["paper"], TrainConfig().batch_size
    runs_per_backbone = len(PAPER_DATASETS) * len(PAPER_KS) * len(PAPER_METHODS) * len(profile.seeds)
    dims = [BACKBONES[name].dim for name in PAPER_BACKBONES]
    return sum(runs_per_backbone * profile.steps * step_flops(d, PAPER_EXPANSION * d, batch) for d in dims)


def paper_hours(flops_per_second: float) -> float:
    """Hours to train the paper profile at a sustained ``flops_per_second`` (an estimate: see `step_flops`)."""
    if flops_per_second <= 0:
        raise SaeLiteError(f"flops_per_second must be > 0, got {flops_per_second}")
    return paper_train_flops() / flops_per_second / 3600
