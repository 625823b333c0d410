"""The run directory: a trained SAE and how it was made, with no pickle anywhere.

    RUN/
      sae.safetensors   the weights
      config.json       {"train": TrainConfig, "sae": architecture, "data": data spec, "version"}
      metrics.json      every scalar metric on the test split
      history.json      the training history (loss terms, L0, dead count per logged step)
      card.md           the method card (`sae_lite.evaluation.card`)

A run directory is written whole or not at all: into a temporary sibling, then renamed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file, save_file

from sae_lite import __version__
from sae_lite.core.config import TrainConfig
from sae_lite.core.sae import SAE
from sae_lite.errors import SaeLiteError
from sae_lite.files import nan_for_null, write_dir, write_json


class Run(NamedTuple):
    sae: SAE
    config: TrainConfig
    data: dict         # {"name": ..., "test_fraction": ..., "split_seed": ...}
    metrics: dict
    path: Path


def save_run(path: str | os.PathLike, sae: SAE, config: TrainConfig, data: dict, metrics: dict,
             history: dict | None = None, card: Callable[[Path], None] | None = None,
             overwrite: bool = False) -> Path:
    """Write a run directory (see the module docstring); ``card(tmp_dir)`` may add the method card."""
    def write(tmp: Path) -> None:
        save_file({key: value.detach().cpu().contiguous() for key, value in sae.state_dict().items()},
                  tmp / "sae.safetensors")
        write_json(tmp / "config.json", {"train": asdict(config), "sae": sae.config(), "data": data,
                                         "sae_lite_version": __version__})
        write_json(tmp / "metrics.json", metrics)
        if history is not None:
            write_json(tmp / "history.json", history)
        if card is not None:
            card(tmp)

    return write_dir(path, write, overwrite)


def load_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Load a run directory written by `save_run`."""
    path = Path(path)
    if not (path / "sae.safetensors").is_file() or not (path / "config.json").is_file():
        raise SaeLiteError(f"{path} is not a run directory (needs sae.safetensors and config.json); "
                           "create one with `python -m sae_lite train`")
    meta = json.loads((path / "config.json").read_text())
    config = TrainConfig.from_dict(meta["train"])
    arch = meta["sae"]
    sae = SAE(**arch)  # d, n_latents, k, activation and the rule's own settings (`SAE.config`)
    sae.load_state_dict(load_file(path / "sae.safetensors"))
    metrics_file = path / "metrics.json"
    metrics = nan_for_null(json.loads(metrics_file.read_text())) if metrics_file.is_file() else {}  # null: NaN
    return Run(sae.to(device).eval(), config, meta.get("data", {}), metrics, path)
