"""The reproduction: one grid's runs, results table, claims, figures and method cards in one directory.

    OUT/
      grid.json      the grid's fingerprint; a later call with another grid is refused
      results.csv    one row per run: the recipe, every metric, R^2 at each k' (r2_x{f}), probes (probe_m{m})
      claims.json    the paper's four claims with our numbers and verdicts (`sae_lite.claims`)
      claims.md      the verdicts side by side (claims x data sets), then every part as a Markdown table
      figures/       R^2 vs inference k', probe accuracy vs m, MS and purity per method (PNG)
      cards/         the method card of every run, with its seed group's stability

The runs themselves live in the results cache (`experiments.cached_run`): an interrupted grid resumes
where it stopped and a second call trains nothing. Every file is written whole (temporary, then renamed).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from sae_lite import card, runs
from sae_lite.backbones import BACKBONES
from sae_lite.data import Dataset
from sae_lite.errors import SaeLiteError
from sae_lite.experiments import (PAPER_BACKBONES, PAPER_DATASETS, PAPER_EXPANSION, PAPER_KS, PAPER_METHODS,
                                  PROFILE_SETTINGS, Grid, cache_dir, run_jobs, run_path)
from sae_lite.runs import write_atomic
from sae_lite.train import TrainConfig, train

RECIPE = ("data", "backbone", "method", "penalty", "weight", "masked", "auxk", "activation", "n_latents", "k", "seed")


def reproduce(grid: Grid, out: str | os.PathLike, progress: bool | None = None) -> dict:
    """Train (or load) every run of ``grid`` and write the outputs listed in the module docstring into ``out``.

    ``progress``: show each training's progress bar (None: as `train.train` decides). Returns a
    summary: ``out``, ``profile``, ``runs``, ``trained`` (how many were not cached) and ``claims``.
    """
    out = Path(out)
    grid.jobs()  # validates every run's settings before anything is written
    claim_out(out, grid.fingerprint())
    sweeps = grid.sweep_jobs()
    pending = _pending(sweeps)
    sweep_rows = run_jobs([job for _, job in sweeps], progress)  # every cell's sweeps in one pool
    weights = grid.weights([(cell, row) for (cell, _), row in zip(sweeps, sweep_rows)])
    jobs = grid.jobs(weights)
    pending += _pending(jobs)
    print(f"reproduce ({grid.profile.name}): {len(jobs)} runs, {pending} trained (weight sweeps included)",
          file=sys.stderr)
    rows = [{**row, "data": cell.label, "backbone": cell.backbone, "n_latents": cell.n_latents}
            for (cell, _), row in zip(jobs, run_jobs([job for _, job in jobs], progress))]
    write_stability(rows)
    write_atomic(out / "results.csv", to_csv(rows))
    verdicts = write_claims(out, rows)
    write_figures(out / "figures", rows)
    write_cards(out / "cards", rows)
    return {"out": str(out), "profile": grid.profile.name, "runs": len(rows), "trained": pending,
            "weights": weights, "claims": verdicts}


def _pending(jobs: list) -> int:
    """How many of the (cell, job) runs are not in the results cache."""
    unique = {run_path(job.config, job.spec) for _, job in jobs}
    return sum(not (path / "metrics.json").is_file() for path in unique)


def results_dir(grid: Grid) -> Path:
    """A directory in the results cache for ``grid``'s outputs, named by its profile and fingerprint."""
    digest = hashlib.sha256(json.dumps(grid.fingerprint(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "reproduce" / f"{grid.profile.name}-{digest}"


def claim_out(out: Path, fingerprint: dict) -> None:
    """Make ``out`` the directory of this grid, or raise if it holds anything else (before any training)."""
    saved = out / "grid.json"
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples become lists, as in the saved file
    if saved.is_file():
        if json.loads(saved.read_text()) != fingerprint:
            raise SaeLiteError(f"{out} holds the results of a different grid configuration (its grid.json differs: "
                               "another profile, data, k, seed or method weight); choose another --out or delete it")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SaeLiteError(f"{out} exists and is not a reproduce directory (no grid.json); choose an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(saved, json.dumps(fingerprint, indent=2) + "\n")


def group_rows(rows: list[dict], by: tuple[str, ...]) -> dict[tuple, list[dict]]:
    """The rows grouped by the values of ``by``, in order of appearance."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in by), []).append(row)
    return groups


def write_stability(rows: list[dict]) -> None:
    """Rewrite the card of every run in a seeded group (two or more seeds) with the group's stability."""
    for members in group_rows(rows, ("data", "method", "k")).values():  # a recipe's seeds
        if len(members) < 2:
            continue
        loaded = [runs.load_run(row["path"]) for row in members]
        stability = card.seed_stability([run.config.seed for run in loaded], [run.metrics for run in loaded],
                                        [run.sae.W_dec.detach() for run in loaded])
        for run in loaded:
            card.write_card(run.path, sae=run.sae, config=run.config, data=run.data, metrics=run.metrics,
                            stability=stability)


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV: the recipe first, then every metric in sorted order, the run's path last."""
    keys = {key for row in rows for key in row}
    columns = [key for key in RECIPE if key in keys] + sorted(keys - set(RECIPE) - {"path"}) + ["path"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_claims(out: Path, rows: list[dict]) -> dict[str, str]:
    """claims.json and claims.md (`sae_lite.claims`); returns each claim's verdict per data set."""
    from sae_lite import claims

    results = claims.evaluate_claims(rows)
    write_atomic(out / "claims.json", json.dumps(results, indent=2, default=float) + "\n")
    write_atomic(out / "claims.md", "## Verdicts, side by side\n\n" + claims.overview(results)
                 + "\n## Each claim, part by part\n\n" + claims.to_markdown(results))
    return {f"{result['claim']} on {result['data']}": claims.verdict_text(result) for result in results}


def write_figures(directory: Path, rows: list[dict]) -> list[Path]:
    """The paper's kinds of figure, per data set and training k, as PNG (mean ± std over seeds).

    ``*_r2_vs_k.png``: R^2 against the inference k' / k; ``*_probe_vs_m.png``: probe accuracy against
    the m codes kept (single-label data only); ``*_per_method.png``: MS, purity, R^2 and dead latents.
    """
    import matplotlib.pyplot as plt

    from sae_lite import plots

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for (data, k), members in group_rows(rows, ("data", "k")).items():
        title = f"{data}, training k = {k}"
        figures = {"r2_vs_k": _sweep(plots, members, "r2_x", "k_factor", "r2", title)}
        if all("probe_m1" in row for row in members):
            figures["probe_vs_m"] = _sweep(plots, members, "probe_m", "m", "probe", title)
        metrics = [m for m in ("ms_mean", "purity_mean", "r2", "r2_vw", "dead") if all(m in row for row in members)]
        figures["per_method"] = plots.bars(members, metrics, title=title)
        for name, figure in figures.items():
            path = directory / f"{data.replace('/', '_')}_k{k}_{name}.png"
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
            plt.close(figure)
            write_atomic(path, buffer.getvalue())
            written.append(path)
    return written


def _sweep(plots, rows: list[dict], prefix: str, x: str, y: str, title: str):
    """A mean ± std band of the ``{prefix}{v}`` columns against v on a log axis ticked at the values."""
    long = plots.long(rows, prefix, x, y)
    ax = plots.band(long, x, y, logx=True, title=title)
    values = sorted({row[x] for row in long})
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()
    return ax.figure


def card_name(row: dict) -> str:
    """The file name of a run's card under ``cards/``."""
    return f"{row['data'].replace('/', '_')}_{row['method']}_k{row['k']}_seed{row['seed']}.md"


def write_cards(directory: Path, rows: list[dict]) -> None:
    """A copy of every run's card.md, named by `card_name`."""
    for row in rows:
        write_atomic(directory / card_name(row), (Path(row["path"]) / "card.md").read_text())


# --- what the paper profile costs: an estimate from measured throughput -------------------------

def step_flops(d: int, n_latents: int, batch_size: int) -> float:
    """FLOPs of one dense training step: encoder and decoder products (2 x 2*B*d*N), backward twice that.

    Top-k, the penalties and AuxK add terms linear in N and are left out.
    """
    return 3 * 2 * 2 * batch_size * d * n_latents


def measure_step_rate(d: int = 256, n_latents: int = 2048, steps: int = 20, device: str = "auto") -> float:
    """Training steps per second of the baseline (k=32, batch of `TrainConfig`'s default) on random data."""
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
    dims = [BACKBONES[name].dim for name in PAPER_BACKBONES]  # 768, 1152, 1024
    return sum(runs_per_backbone * profile.steps * step_flops(d, PAPER_EXPANSION * d, batch) for d in dims)


def paper_hours(flops_per_second: float) -> float:
    """Hours to train the paper profile at a sustained ``flops_per_second`` (an estimate: see `step_flops`)."""
    if flops_per_second <= 0:
        raise SaeLiteError(f"flops_per_second must be > 0, got {flops_per_second}")
    return paper_train_flops() / flops_per_second / 3600
