"""The results cache: one configuration trained on one data set, evaluated, and kept by its hash.

A run's cache key hashes its `TrainConfig`, its data spec and the source of the subpackages that
compute results (`sae_lite.cache.result_code_hash`: data/, core/, evaluation/ and the modules
beneath them), so a changed setting or changed training code never reuses a stale result, while
editing a figure, a verdict or a chapter retrains nothing. A missing entry is trained by
`sae_lite.study.pipeline.train_run`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

from sae_lite.cache import cache_dir, entry_lock, remove_leftovers, result_code_hash, set_aside
from sae_lite.core import distributed
from sae_lite.core.config import TrainConfig
from sae_lite.data.spec import DataSpec, as_spec
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import runs
from sae_lite.study import pipeline


def config_hash(config: TrainConfig, spec: DataSpec) -> str:
    """A short stable hash of everything that determines a run's result, the code included."""
    blob = json.dumps({"train": config.to_dict(), "data": spec.to_dict(), "code": result_code_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_run(config: TrainConfig, data: str | DataSpec | Mapping, progress: bool | None = None) -> runs.Run:
    """The run of ``config`` on ``data``, trained once and then loaded from the cache.

    The cache key is a hash of the full configuration and data spec, so a changed setting never
    reuses a stale result. A process wanting an entry another one is training waits for it
    (`sae_lite.cache.entry_lock`), then loads it. An entry with a damaged or missing file is moved
    aside with one warning (`sae_lite.cache.set_aside`) and trained again; what a writer killed
    mid-write left is removed.
    """
    spec = as_spec(data)
    path = run_path(config, spec)
    with entry_lock(path) if distributed.context().world == 1 else nullcontext():  # torchrun: ranks train together
        remove_leftovers(path)  # of a writer killed mid-write (SIGKILL)
        if path.exists():
            try:
                return load_cached_run(path)
            except SaeLiteError as error:
                set_aside(path, error)
        return pipeline.train_run(config, spec, path, overwrite=True, progress=progress)


def load_cached_run(path: Path) -> runs.Run:
    """The cached run directory ``path``, every file checked (`runs.load_run`, and the card and history
    `pipeline.train_run` writes there); raises SaeLiteError naming a damaged or missing one."""
    for name in ("card.md", "history.json"):
        if not (path / name).is_file():
            raise SaeLiteError(f"{path / name} is missing")
    return runs.load_run(path)


def run_path(config: TrainConfig, spec: DataSpec) -> Path:
    """The cache directory of the run of ``config`` on ``spec``; it holds metrics.json once finished."""
    return cache_dir() / "runs" / config_hash(config, spec)
