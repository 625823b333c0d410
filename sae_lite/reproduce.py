"""The reproduction: one grid's runs, results table, claims, figures and method cards in one directory.

    OUT/
      grid.json      the grid's fingerprint; a later call with another grid is refused
      results.csv    one row per run: the recipe, every metric, R^2 at each k' (r2_x{f}), probes (probe_m{m})
      claims.json    the paper's four claims with our numbers and verdicts (`sae_lite.claims`)
      claims.md      the same as a Markdown table
      figures/       R^2 vs inference k', probe accuracy vs m, MS and purity per method (PNG)
      cards/         the method card of every run, with its seed group's stability

The runs themselves live in the results cache (`experiments.cached_run`): an interrupted grid resumes
where it stopped and a second call trains nothing. Every file is written whole (temporary, then renamed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

from sae_lite import card, runs
from sae_lite.errors import SaeLiteError
from sae_lite.experiments import METHODS, Grid, run_grid, run_path

RECIPE = ("data", "backbone", "method", "penalty", "weight", "masked", "auxk", "activation", "n_latents", "k", "seed")


def reproduce(grid: Grid, out: str | os.PathLike) -> dict:
    """Train (or load) every run of ``grid`` and write the outputs listed in the module docstring into ``out``."""
    out = Path(out)
    configs = grid.configs()  # validates every run's settings before anything is written
    claim_out(out, grid.fingerprint())
    pending = sum(not (run_path(config, spec) / "metrics.json").is_file() for _, spec, config in configs)
    print(f"reproduce ({grid.profile.name}): {len(configs)} runs, {pending} to train", file=sys.stderr)
    rows = grid_rows(grid)
    write_stability(rows)
    write_text(out / "results.csv", to_csv(rows))
    write_cards(out / "cards", rows)
    return {"out": str(out), "profile": grid.profile.name, "runs": len(rows), "trained": pending}


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
    write_text(saved, json.dumps(fingerprint, indent=2) + "\n")


def grid_rows(grid: Grid) -> list[dict]:
    """One row per run (see `experiments.run_grid`), ``data`` named by the cell's label, plus its backbone."""
    rows = []
    methods = [METHODS[name] for name in grid.methods]
    for cell in grid.cells:
        for row in run_grid(cell.data, methods, list(cell.ks), profile=grid.profile, n_latents=cell.n_latents):
            rows.append({**row, "data": cell.label, "backbone": cell.backbone, "n_latents": cell.n_latents})
    return rows


def seed_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows grouped by recipe (data, method, k): each group holds the seeds of one configuration."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["data"], row["method"], row["k"]), []).append(row)
    return groups


def write_stability(rows: list[dict]) -> None:
    """Rewrite the card of every run in a seeded group (two or more seeds) with the group's stability."""
    for members in seed_groups(rows).values():
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


def write_cards(directory: Path, rows: list[dict]) -> None:
    """A copy of every run's card.md, named by its recipe."""
    directory.mkdir(parents=True, exist_ok=True)
    for row in rows:
        name = f"{row['data'].replace('/', '_')}_{row['method']}_k{row['k']}_seed{row['seed']}.md"
        write_text(directory / name, (Path(row["path"]) / "card.md").read_text())


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
