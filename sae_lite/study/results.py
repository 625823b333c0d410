"""The results cache: one configuration trained on one data set, evaluated, and kept by its hash.

A run's cache key hashes its `TrainConfig`, its data spec and the source of the subpackages that
compute results (`sae_lite.cache.result_code_hash`: data/, core/, evaluation/ and the modules
beneath them), so a changed setting or changed training code never reuses a stale result, while
editing a figure, a verdict or a chapter retrains nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sae_lite.cache import cache_dir, result_code_hash
from sae_lite.core import distributed
from sae_lite.core.config import TrainConfig
from sae_lite.core.train import train
from sae_lite.data import catalog
from sae_lite.data.datasets import Dataset
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import card, metrics, probes, runs
from sae_lite.files import check_writable, write_json


def data_spec(name: str, test_fraction: float = 0.2, split_seed: int = 0, **kwargs) -> dict:
    """A JSON description of the data a run trains on, enough to rebuild the same split."""
    return {"name": str(name), "test_fraction": test_fraction, "split_seed": split_seed, "kwargs": kwargs}


def load_split(spec: dict) -> tuple[Dataset, Dataset]:
    """The (train, test) split that ``spec`` (from `data_spec`) describes."""
    dataset = catalog.load(spec["name"], **spec.get("kwargs", {}))
    return dataset.split(spec.get("test_fraction", 0.2), spec.get("split_seed", 0))


def config_hash(config: TrainConfig, spec: dict) -> str:
    """A short stable hash of everything that determines a run's result, the code included."""
    blob = json.dumps({"train": asdict(config), "data": spec, "code": result_code_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_run(config: TrainConfig, data: str | dict, out: str | os.PathLike, overwrite: bool = False,
              test_fraction: float = 0.2, split_seed: int = 0, progress: bool | None = None) -> runs.Run:
    """Train ``config`` on ``data`` and write the run directory ``out`` with all metrics."""
    out = check_writable(out, overwrite)
    spec = data if isinstance(data, dict) else data_spec(data, test_fraction, split_seed)
    train_set, test_set = load_split(spec)
    sae, history = train(config, train_set, progress=progress)
    if not distributed.is_main():  # under torchrun, rank 0 evaluates and writes the run directory
        distributed.barrier()
        return runs.load_run(out)
    scores = metrics.evaluate(sae, test_set)
    info = {**spec, "dataset": train_set.name, "d": train_set.d, "n_train": train_set.n,
            "n_test": test_set.n, "meta": train_set.meta}
    write = lambda directory: card.write_card(directory, sae=sae, config=config, data=info, metrics=scores)  # noqa: E731
    runs.save_run(out, sae, config, info, scores, history, card=write, overwrite=overwrite)
    distributed.barrier()
    return runs.load_run(out)


def cached_run(config: TrainConfig, data: str | dict, progress: bool | None = None) -> runs.Run:
    """The run of ``config`` on ``data``, trained once and then loaded from the cache.

    The cache key is a hash of the full configuration and data spec, so a changed setting never
    reuses a stale result.
    """
    spec = data if isinstance(data, dict) else data_spec(data)
    path = run_path(config, spec)
    if (path / "metrics.json").is_file():
        return runs.load_run(path)
    return train_run(config, spec, path, overwrite=True, progress=progress)


def run_path(config: TrainConfig, spec: dict) -> Path:
    """The cache directory of the run of ``config`` on ``spec``; it holds metrics.json once finished."""
    return cache_dir() / "runs" / config_hash(config, spec)


def default_ks(k: int) -> list[int]:
    """The inference budgets of a k-sweep: k/4, k/2, k, 2k, 4k (those that are >= 1)."""
    return sorted({max(1, k // 4), max(1, k // 2), k, 2 * k, 4 * k})


def evaluate_run(path: str | os.PathLike, ks: list[int] | None = None, ms: list[int] | None = None,
                 data: str | None = None) -> dict:
    """R^2 for each inference k' and truncated-probe accuracy for each m; written to evaluation.json."""
    run = runs.load_run(path)
    spec = run.data if data is None else data_spec(data)
    train_set, test_set = load_split(spec)
    if train_set.d != run.sae.d:
        raise SaeLiteError(f"the run's SAE expects d={run.sae.d} but {spec['name']} has d={train_set.d}; "
                           "evaluate on the data it was trained on")
    ks = default_ks(run.sae.k) if ks is None else ks
    too_big = [k for k in ks if k >= run.sae.n_latents]
    if too_big:
        raise SaeLiteError(f"inference k {too_big} must be below n_latents={run.sae.n_latents}")
    result: dict = {"r2_by_k": {str(k): v for k, v in metrics.k_sweep(run.sae, test_set.x, ks).items()}}
    if ms and train_set.labels is not None and np.asarray(train_set.labels).ndim == 1 \
            and train_set.n * run.sae.n_latents > probes.DENSE_LIMIT:  # the paper's scale: sparse top-m codes
        top_train, top_test = (probes.encode_top(run.sae, part.x, max(ms)) for part in (train_set, test_set))
        probe = probes.sparse_truncated_probe(top_train, train_set.labels, top_test, test_set.labels, ms)
        result["probe_by_m"] = {str(m): v for m, v in probe.items()}
        result["probe_codes"] = "sparse top-m, standardised without centring"
    elif ms and train_set.labels is not None and np.asarray(train_set.labels).ndim == 1:
        codes_train, _ = metrics.encode_all(run.sae, train_set.x)
        codes_test, _ = metrics.encode_all(run.sae, test_set.x)
        probe = probes.truncated_probe(codes_train, train_set.labels, codes_test, test_set.labels, ms)
        result["probe_by_m"] = {str(m): v for m, v in probe.items()}
    elif ms:
        result["probe_skipped"] = "the data has no single-label classes to probe"
    write_json(Path(path) / "evaluation.json", result)
    return result
