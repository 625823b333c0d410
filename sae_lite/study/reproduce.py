"""The reproduction: one grid's runs, results table, claims and method cards in one directory.

    OUT/
      grid.json      the grid's fingerprint; a later call with another grid is refused
      results.csv    one row per run: the recipe, every metric, R^2 at each k' (r2_x{f}), probes (probe_m{m})
      claims.json    the paper's four claims with our numbers and verdicts (`sae_lite.study.claims`)
      claims.md      the verdicts side by side (claims x data sets), then every part as a Markdown table
      cards/         the method card of every run, with its seed group's stability

(``python -m sae_lite reproduce`` also draws the figures into ``OUT/figures/``: `sae_lite.book.figures`.)
The runs themselves live in the results cache (`sae_lite.study.results.cached_run`): an interrupted
grid resumes where it stopped and a second call trains nothing. Every file is written whole.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path
from typing import NamedTuple

from sae_lite.cache import cache_dir
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import card, runs
from sae_lite.files import read_json, write_atomic, write_json
from sae_lite.study import claims
from sae_lite.study.paper import Grid
from sae_lite.study.runner import JobPool, run_jobs
from sae_lite.study.weights import WeightSearch

RECIPE = ("data", "backbone", "method", "penalty", "weight", "masked", "auxk", "activation", "n_latents", "k", "seed")


class Reproduction(NamedTuple):
    """What `reproduce` returns: its summary (JSON-serialisable) and the rows of results.csv."""

    summary: dict   # out, profile, runs, trained (not cached before, sweeps included), weights, claims
    rows: list[dict]


def reproduce(grid: Grid, out: str | os.PathLike, progress: bool | None = None) -> Reproduction:
    """Train (or load) every run of ``grid`` and write the outputs listed in the module docstring into ``out``.

    ``progress``: show each training's progress bar (None: as `sae_lite.core.train.train` decides).
    """
    out = Path(out)
    grid.jobs()  # validates every run's settings before anything is written
    claim_out(out, grid.fingerprint())
    with JobPool(progress) as pool:
        weights = train_grid(grid, pool)
    jobs = grid.jobs(weights)
    print(f"reproduce ({grid.profile.name}): {len(jobs)} runs, {pool.trained} trained (the weight search included)",
          file=sys.stderr)
    rows = [{**row, "data": cell.label, "backbone": cell.backbone, "n_latents": cell.n_latents}
            for (cell, _), row in zip(jobs, run_jobs([job for _, job in jobs], progress))]  # all cached: loaded
    write_stability(rows)
    write_atomic(out / "results.csv", to_csv(rows))
    verdicts = write_claims(out, rows)
    write_cards(out / "cards", rows)
    summary = {"out": str(out), "profile": grid.profile.name, "runs": len(rows), "trained": pool.trained,
               "weights": weights, "claims": verdicts}
    return Reproduction(summary, rows)


def train_grid(grid: Grid, pool: JobPool) -> dict[str, dict[str, float]]:
    """Train every run of ``grid`` in ``pool``; returns the weights the rule picks ({cell label: {penalty: weight}}).

    All work shares the pool, so no worker waits while another finishes a phase. Each cell's baseline and
    the runs of its weight searches (`WeightSearch`, one per penalty: a chain of runs, one after the other)
    go to a free worker first; the baseline's other seeds (they need no weight) and a cell's grid, once its
    searches end (its runs already trained are only evaluated), fill the workers in between.
    """
    sweep = {(cell, job.method.penalty, job.method.weight): job for cell, job in grid.sweep_jobs()}
    pool.prepare(list(sweep.values()))
    searches = {(cell, penalty): WeightSearch(grid.profile) for cell in grid.cells for penalty in grid.penalties}
    first_seed = grid.profile.seeds[0]  # the sweeps' seed: that baseline is trained once, in the sweep
    urgent = deque([(sweep[cell, "none", 0.0], None) for cell in grid.cells]
                   + [(sweep[key[0], key[1], search.next_weight()], key) for key, search in searches.items()])
    backlog = deque((job, None) for _, job in grid.jobs() if job.method.penalty == "none" and job.config.seed != first_seed)
    weights: dict[str, dict[str, float]] = {}
    running: dict = {}
    while urgent or backlog or running:
        while len(running) < pool.workers and (urgent or backlog):
            job, key = (urgent or backlog).popleft()
            running[pool.submit(job)] = key
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            key, row = running.pop(future), future.result()
            if key is None:
                continue
            cell, penalty = key
            search = searches[key]
            search.judge(pool.submit(sweep[cell, "none", 0.0]).result(), row)  # the same future: it ran first
            if search.next_weight() is not None:
                urgent.append((sweep[cell, penalty, search.next_weight()], key))
            elif all(searches[cell, p].pick is not None for p in grid.penalties):
                weights[cell.label] = {p: searches[cell, p].pick for p in grid.penalties}
                backlog.extend((job, None) for c, job in grid.jobs(weights) if c == cell)
    return weights


def results_dir(grid: Grid) -> Path:
    """A directory in the results cache for ``grid``'s outputs, named by its profile and fingerprint."""
    digest = hashlib.sha256(json.dumps(grid.fingerprint(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "reproduce" / f"{grid.profile.name}-{digest}"


def claim_out(out: Path, fingerprint: dict) -> None:
    """Make ``out`` the directory of this grid, or raise if it holds anything else (before any training)."""
    saved = out / "grid.json"
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples become lists, as in the saved file
    if saved.exists():
        fix = f"delete {out} (its runs stay in the results cache: nothing is trained again) or choose another --out"
        if read_json(saved, fix) != fingerprint:
            raise SaeLiteError(f"{out} holds the results of a different grid configuration (its grid.json differs: "
                               "another profile, data, k, seed or method weight); choose another --out or delete it")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SaeLiteError(f"{out} exists and is not a reproduce directory (no grid.json); choose an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(saved, fingerprint)


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
    """claims.json and claims.md (`sae_lite.study.claims`); returns each claim's verdict per data set."""
    results = claims.evaluate_claims(rows)
    write_json(out / "claims.json", results)
    write_atomic(out / "claims.md", "## Verdicts, side by side\n\n" + claims.overview(results)
                 + "\n## Each claim, part by part\n\n" + claims.to_markdown(results))
    return {f"{result['claim']} on {result['data']}": claims.verdict_text(result) for result in results}


def card_name(row: dict) -> str:
    """The file name of a run's card under ``cards/``."""
    return f"{row['data'].replace('/', '_')}_{row['method']}_k{row['k']}_seed{row['seed']}.md"


def write_cards(directory: Path, rows: list[dict]) -> None:
    """A copy of every run's card.md, named by `card_name`."""
    for row in rows:
        write_atomic(directory / card_name(row), (Path(row["path"]) / "card.md").read_text())


