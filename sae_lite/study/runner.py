"""Grids of runs: every method x k x seed trained once (in worker processes when there are several
cores), then each run evaluated into one flat row."""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch
from threadpoolctl import threadpool_limits

from sae_lite.core.config import TrainConfig
from sae_lite.data import catalog
from sae_lite.data.spec import DataSpec, as_spec, data_spec
from sae_lite.device import usable_cores
from sae_lite.errors import SaeLiteError, show_warning_line
from sae_lite.evaluation import runs
from sae_lite.evaluation.runs import Run
from sae_lite.study.methods import Method
from sae_lite.study.pipeline import evaluate_run, load_split
from sae_lite.study.profiles import Profile, active_profile
from sae_lite.study.results import cached_run, run_path


def planted_spec(profile: Profile | None = None, name: str = "planted") -> DataSpec:
    """The data spec of the planted default (or ``planted-signed``) at the profile's size."""
    return data_spec(name, n=(profile or active_profile()).n_planted)


def grid_spec(data: str | DataSpec | Mapping, profile: Profile | None = None) -> DataSpec:
    """The data spec a grid trains on: ``planted`` and the real data at the profile's size, other
    names as they are, a spec (or its JSON form) as it is."""
    if not isinstance(data, str):
        return as_spec(data)
    profile = profile or active_profile()
    if data == catalog.REAL:
        return data_spec(data, profile.real.test_fraction, images=profile.real.images, resolution=profile.real.resolution)
    return planted_spec(profile, data) if data in ("planted", "planted-signed") else data_spec(data)


def data_overrides(spec: DataSpec, profile: Profile | None = None) -> dict:
    """The `TrainConfig` fields a data set fixes: the real data's size of run (`RealData`), else none."""
    return (profile or active_profile()).real.overrides() if spec.name == catalog.REAL else {}


class Job(NamedTuple):
    """One run of a grid and how its row is evaluated (see `run_grid`)."""

    method: Method
    config: TrainConfig
    spec: DataSpec
    k_factors: tuple[float, ...] = (0.25, 0.5, 1, 2, 4)
    probe_ms: tuple[int, ...] = (1, 2, 4, 8)


def grid_jobs(data: str | DataSpec | Mapping, methods: list[Method], ks: list[int], seeds: tuple[int, ...] | None = None,
              profile: Profile | None = None, k_factors: tuple[float, ...] = (0.25, 0.5, 1, 2, 4),
              probe_ms: tuple[int, ...] = (1, 2, 4, 8), **overrides) -> list[Job]:
    """Every method x k x seed of a grid on ``data`` as a `Job` (``overrides`` go to every `TrainConfig`)."""
    profile = profile or active_profile()
    spec = grid_spec(data, profile)
    overrides = {**data_overrides(spec, profile), **overrides}
    return [Job(method, method.config(k, seed, profile, **overrides), spec, tuple(k_factors), tuple(probe_ms))
            for method in methods for k in ks for seed in (profile.seeds if seeds is None else seeds)]


def run_grid(data: str | DataSpec | Mapping, methods: list[Method], ks: list[int], seeds: tuple[int, ...] | None = None,
             profile: Profile | None = None, k_factors: tuple[float, ...] = (0.25, 0.5, 1, 2, 4),
             probe_ms: tuple[int, ...] = (1, 2, 4, 8), progress: bool | None = None, **overrides) -> list[dict]:
    """Train (or load from the cache) every method x k x seed and evaluate each run.

    Returns one flat row per run: the recipe (``method``, ``penalty``, ``weight``, ``masked``, ``auxk``,
    ``activation``, ``k``, ``seed``), every metric of ``metrics.json``, ``r2_x{f}`` = R^2 at the
    inference budget k' = f * k for each ``f`` in ``k_factors``, ``probe_m{m}`` = test accuracy of the
    truncated linear probe keeping the top-m activations (when the data has single labels), and ``path``.
    ``overrides`` go to every `TrainConfig` (e.g. ``n_latents``).
    """
    return run_jobs(grid_jobs(data, methods, ks, seeds, profile, k_factors, probe_ms, **overrides), progress)


def run_jobs(jobs: list[Job], progress: bool | None = None) -> list[dict]:
    """The row of every job, in order: uncached runs train side by side in worker processes (see
    `parallel_jobs`; jobs of several grids and data sets share one pool), cached ones are loaded."""
    paths = [run_path(job.config, job.spec) for job in jobs]
    # a run to train, or a trained one still to evaluate as its row needs (probes a sweep skipped)
    missing = [i for i, path in enumerate(paths) if paths.index(path) == i and not _done(jobs[i], path)]
    with JobPool(progress, workers=min(parallel_jobs(), len(missing))) as pool:
        pool.prepare(jobs)
        futures = {i: pool.submit(jobs[i]) for i in missing}  # to the workers first, then the rest here
        rows = {i: future.result() for i, future in futures.items()}
        return [rows[i] if i in rows else pool.submit(job).result() for i, job in enumerate(jobs)]


class JobPool:
    """Trains and evaluates jobs as they are submitted, each `submit` giving a future of the job's row.

    With more than one worker (`parallel_jobs` by default), an uncached run trains in a worker process
    (started at the first one, each with cores / workers torch threads); a cached one, or any with one
    worker, is computed here at once. The real data is embedded here, once, before any worker needs it
    (`prepare`).
    ``trained`` counts the distinct runs submitted that were not in the results cache.
    """

    def __init__(self, progress: bool | None = None, workers: int | None = None) -> None:
        self.progress, self.workers = progress, parallel_jobs() if workers is None else workers
        self.trained, self._futures, self._paths, self._specs = 0, {}, set(), set()
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> JobPool:
        return self

    def __exit__(self, *error) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=error[0] is not None)

    def submit(self, job: Job) -> Future:
        """A future of the job's row (`_train_and_evaluate`); the same future for the same job submitted again."""
        path = run_path(job.config, job.spec)
        key = (path, job.method, job.k_factors, job.probe_ms)
        if key in self._futures:
            return self._futures[key]
        if path not in self._paths:
            self._paths.add(path)
            self.trained += not (path / "metrics.json").is_file()
        self.prepare([job])
        if self.workers > 1 and not _done(job, path):
            future = self._workers().submit(_train_and_evaluate, job, False)
        else:
            future = Future()
            future.set_result(_train_and_evaluate(job, self.progress))
        self._futures[key] = future
        return future

    def prepare(self, jobs: list[Job]) -> None:
        """Embed the real data of ``jobs`` once, here, before any worker needs it (call it before the first
        `submit` so that no run trains beside the embedding)."""
        for job in jobs:
            if job.spec.name == catalog.REAL and job.spec not in self._specs:
                load_split(job.spec)
                self._specs.add(job.spec)

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe under Jupyter and torch
            threads = max(1, usable_cores() // self.workers)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=start_worker,
                                             initargs=(threads,))
        return self._pool


def parallel_jobs() -> int:
    """How many runs of a grid train at once: ``SAE_LITE_JOBS``, by default one per CPU core this
    process may use (one, in this process, when a CUDA GPU is there: the runs would share it).

    With more than one, the grid's uncached runs train in that many worker processes, each with
    cores / jobs torch threads; results are the same as training them one after the other.
    """
    value = os.environ.get("SAE_LITE_JOBS") or str(1 if torch.cuda.is_available() else usable_cores())
    if not value.isdigit() or int(value) < 1:
        raise SaeLiteError(f"SAE_LITE_JOBS={value!r} must be a whole number >= 1 (runs trained at once)")
    return int(value)


def limit_threads(threads: int) -> None:
    """Let this process use ``threads`` threads, in torch and in the BLAS and OpenMP pools numpy and
    scikit-learn use: without the BLAS limit, every worker's BLAS would start a thread per core and the
    workers would oversubscribe the cores."""
    torch.set_num_threads(threads)
    threadpool_limits(threads)


def start_worker(threads: int) -> None:
    """Set up a worker process of a grid: `limit_threads`, and its warnings as one line each."""
    limit_threads(threads)
    warnings.showwarning = show_warning_line


def _train_and_evaluate(job: Job, progress: bool | None) -> dict:
    """One grid row: the run of the job's config (trained once, then cached) and its evaluation."""
    return _grid_row(cached_run(job.config, job.spec, progress=progress), job.method, job.k_factors, job.probe_ms)


def _evaluation_plan(config: TrainConfig, k_factors: tuple[float, ...], probe_ms: tuple[int, ...]) -> tuple[dict, list]:
    """({f: k'} of the k-sweep, [m] of the probes) that a row of a run of ``config`` reports."""
    ks = {f: max(1, round(f * config.k)) for f in k_factors if round(f * config.k) < config.n_latents}
    return ks, [m for m in probe_ms if m <= config.k]


def _done(job: Job, path: Path) -> bool:
    """True when the job's run is trained and evaluated as its row needs (nothing for a worker to do)."""
    ks, ms = _evaluation_plan(job.config, job.k_factors, job.probe_ms)
    if not (path / "metrics.json").is_file():
        return False
    try:
        return runs.covers(runs.load_evaluation(path), job.spec, sorted(set(ks.values())), ms)
    except SaeLiteError:  # a damaged evaluation.json: the job computes it again (and says so)
        return False


def _grid_row(run: Run, method: Method, k_factors: tuple[float, ...], probe_ms: tuple[int, ...]) -> dict:
    k = run.config.k
    ks, ms = _evaluation_plan(run.config, k_factors, probe_ms)
    evaluation = _cached_evaluation(run.path, sorted(set(ks.values())), ms, run.spec)
    row = {"data": run.data["name"], "method": method.name, "penalty": method.penalty, "weight": method.weight,
           "masked": method.masked, "auxk": method.auxk, "activation": run.config.activation, "k": k,
           "seed": run.config.seed, **run.metrics}
    row.update({f"r2_x{f:g}": evaluation["r2_by_k"][str(kk)] for f, kk in ks.items()})
    row.update({f"probe_m{m}": v["test"] for m, v in evaluation.get("probe_by_m", {}).items()})
    row["path"] = str(run.path)
    return row


def _cached_evaluation(path: Path, ks: list[int], ms: list[int], data: DataSpec) -> dict:
    """``evaluate_run`` for these k' and m on the run's own ``data``, reusing evaluation.json when it was
    computed on that data and covers them (`runs.covers`). Says so in one line when it holds an
    evaluation on other data (``evaluate RUN --data OTHER``) or is damaged; either is replaced."""
    try:
        saved = runs.load_evaluation(path)
    except SaeLiteError as error:
        warnings.warn(f"damaged cache entry: {error}; evaluating the run again", stacklevel=2)
    else:
        if runs.covers(saved, data, ks, ms):
            return saved
        note = runs.other_data_note(path, saved, data)
        if note:
            print(note, file=sys.stderr)
    return evaluate_run(path, ks=ks, ms=ms)
