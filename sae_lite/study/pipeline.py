"""One run, as the command line makes it: train a configuration on a data set into a run
directory (`train_run`), and evaluate a run at other inference budgets k' and with truncated
probes (`evaluate_run`). The results cache (`sae_lite.study.results`) calls `train_run`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import numpy as np

from sae_lite.core import distributed
from sae_lite.core.config import TrainConfig
from sae_lite.core.train import train
from sae_lite.data import catalog, stream
from sae_lite.data.datasets import Dataset
from sae_lite.data.spec import DataSpec, as_spec, data_spec
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import card, metrics, probes, runs
from sae_lite.files import check_writable


def load_split(data: DataSpec | Mapping | str) -> tuple[Dataset, Dataset]:
    """The (train, test) split that ``data`` describes (a spec, a run's data record, or a name: `as_spec`)."""
    spec = as_spec(data)
    return catalog.load(spec.name, **spec.options).split(spec.test_fraction, spec.split_seed)


def train_run(config: TrainConfig, data: str | DataSpec | Mapping, out: str | os.PathLike, overwrite: bool = False,
              test_fraction: float = 0.2, split_seed: int = 0, progress: bool | None = None,
              checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 500,
              resume: bool = False) -> runs.Run:
    """Train ``config`` on ``data`` (a spec, or a name split by ``test_fraction`` and ``split_seed``) and
    write the run directory ``out`` with all metrics.

    ``checkpoint``, ``checkpoint_every``, ``resume``: as in `sae_lite.core.train.train` (the training
    state every N steps; a resumed run ends equal to an uninterrupted one).
    """
    out = check_writable(out, overwrite)
    spec = as_spec(data, test_fraction, split_seed)
    train_set, test_set = load_split(spec)
    sae, history = train(config, train_set, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                         resume=resume, progress=progress)
    if not distributed.is_main():  # under torchrun, rank 0 evaluates and writes the run directory
        distributed.barrier()
        return runs.load_run(out)
    scores = metrics.evaluate(sae, test_set)
    info = {**spec.to_dict(), "dataset": train_set.name, "d": train_set.d, "n_train": train_set.n,
            "n_test": test_set.n, "meta": train_set.meta}
    write = lambda directory: card.write_card(directory, sae=sae, config=config, data=info, metrics=scores)  # noqa: E731
    runs.save_run(out, sae, config, info, scores, history, card=write, overwrite=overwrite)
    distributed.barrier()
    return runs.load_run(out)


def default_ks(k: int) -> list[int]:
    """The inference budgets of a k-sweep: k/4, k/2, k, 2k, 4k (those that are >= 1)."""
    return sorted({max(1, k // 4), max(1, k // 2), k, 2 * k, 4 * k})


def fingerprint(*datasets: Dataset) -> str:
    """A short hash of the contents of ``datasets``: their shapes, up to 1024 evenly spaced rows of each
    and their labels (cheap on a store of millions of rows, and different for other data)."""
    digest = hashlib.sha256()
    for dataset in datasets:
        rows = np.unique(np.linspace(0, dataset.n - 1, min(dataset.n, 1024)).astype(np.int64))
        digest.update(repr(tuple(dataset.x.shape)).encode() + stream.take_rows(dataset.x, rows).tobytes())
        if dataset.labels is not None:
            digest.update(np.ascontiguousarray(dataset.labels).tobytes())
    return digest.hexdigest()[:16]


def evaluate_run(path: str | os.PathLike, ks: list[int] | None = None, ms: list[int] | None = None,
                 data: str | None = None) -> dict:
    """R^2 for each inference k' and truncated-probe accuracy for each m, saved as the run's
    evaluation.json (`sae_lite.evaluation.runs.save_evaluation`).

    The result records what it was computed on (``computed_on``: the data spec, a `fingerprint` of
    the split, the k' and the m), so that it is reused only for the same data (`runs.covers`).
    """
    run = runs.load_run(path)
    spec = run.spec if data is None else data_spec(data)
    train_set, test_set = load_split(spec)
    if train_set.d != run.sae.d:
        raise SaeLiteError(f"the run's SAE expects d={run.sae.d} but {spec.name} has d={train_set.d}; "
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
    result["computed_on"] = {"data": spec.to_dict(), "own_data": spec == run.spec,
                             "fingerprint": fingerprint(train_set, test_set), "ks": list(ks), "ms": list(ms or [])}
    runs.save_evaluation(path, result)
    return result
