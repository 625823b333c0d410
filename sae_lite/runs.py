"""The run directory: a trained SAE and how it was made, with no pickle anywhere.

    RUN/
      sae.safetensors   the weights
      config.json       {"train": TrainConfig, "sae": architecture, "data": data spec, "version"}
      metrics.json      every scalar metric on the test split
      history.json      the training history (loss terms, L0, dead count per logged step)
      card.md           the method card (written when `sae_lite.card` is available)

A run directory is written whole or not at all: into a temporary sibling, then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from safetensors.torch import load_file, save_file

from sae_lite import __version__
from sae_lite.errors import SaeLiteError
from sae_lite.sae import SAE
from sae_lite.train import TrainConfig


class Run(NamedTuple):
    sae: SAE
    config: TrainConfig
    data: dict         # {"name": ..., "test_fraction": ..., "split_seed": ...}
    metrics: dict
    path: Path


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Raise before any work if ``path`` exists and may not be replaced."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise SaeLiteError(f"{path} already exists; choose another --out or pass --overwrite")
    return path


def atomic_dir(path: Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmp)`` on a fresh temporary directory, then move it to ``path``."""
    check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a file whole or not at all: into a temporary file of its own, then renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content.encode() if isinstance(content, str) else content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    write_atomic(path, json.dumps(value, indent=2, default=float) + "\n")


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

    return atomic_dir(Path(path), write, overwrite)


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
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return Run(sae.to(device).eval(), config, meta.get("data", {}), metrics, path)
