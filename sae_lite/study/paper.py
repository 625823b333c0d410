"""The paper's grid: the reproduction grid of each profile (`grid`).

``quick`` and ``default`` train the book's data (planted, digits and the real data) at its k = 16;
``paper`` trains the published grid ("Beyond the Hard Budget", Jacquier, Vakalopoulou, Hosseini
2026) on embedding stores of two data sets and three backbones. Each cell's penalties run at the
weight the rule picks there (`sae_lite.study.weights`). What the paper profile would cost to train
is estimated in `sae_lite.study.cost`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from sae_lite.data import catalog
from sae_lite.data.embed import check_backbone
from sae_lite.data.store import load_store
from sae_lite.errors import SaeLiteError
from sae_lite.study.methods import METHODS, PAPER_METHODS, PENALTY_WEIGHTS, with_weights
from sae_lite.study.profiles import PROFILE_SETTINGS, PROFILES, REAL_LATENTS, Profile
from sae_lite.study.runner import Job, grid_jobs
from sae_lite.study.weights import TOLERANCE, sweep_jobs, sweep_weights

#: The published grid ("Beyond the Hard Budget", Jacquier, Vakalopoulou, Hosseini 2026, arXiv:2606.27321):
#: two datasets x three backbones x k in {32, 64, 128}, three seeds.
PAPER_DATASETS = ("imagenet-1k", "open-images-v7")
PAPER_BACKBONES = ("clip-vit-l-14", "siglip2", "vit-l-16")
PAPER_KS = (32, 64, 128)
#: Dictionary size of the paper profile: N = PAPER_EXPANSION * d (8 * 768 = 6144 latents for CLIP
#: ViT-L/14, 8 * 1152 = 9216 for SigLIP2 So400m, 8 * 1024 = 8192 for ViT-L/16). An ASSUMPTION: the
#: paper's abstract (the text we could read) does not state its dictionary size; x8 is the expansion
#: factor commonly used for Top-k SAEs on vision embeddings (e.g. Pach et al. 2025). Change it here.
PAPER_EXPANSION = 8


@dataclass(frozen=True)
class Cell:
    """One data set of a grid and the training budgets k it is trained at."""

    label: str                # how tables name it: "planted", "imagenet-1k/clip-vit-l-14", ...
    data: str                 # a data name (planted, fashion-mnist, ...) or the directory of an embedding store
    ks: tuple[int, ...]
    n_latents: int = 512
    backbone: str = "none"

    @property
    def rule_k(self) -> int:
        """The training budget at which the weight rule sweeps this cell: its middle k."""
        return self.ks[len(self.ks) // 2]


@dataclass(frozen=True)
class Grid:
    """What `reproduce` trains: every cell x k x method x the profile's seeds, each penalty at the weight
    the rule picks on that cell (`chosen_weights` at `Cell.rule_k`)."""

    profile: Profile
    cells: tuple[Cell, ...]
    methods: tuple[str, ...] = PAPER_METHODS

    @property
    def penalties(self) -> tuple[str, ...]:
        """The penalties whose weight the rule picks on each cell: those of `PENALTY_WEIGHTS`."""
        return tuple(PENALTY_WEIGHTS)

    def sweep_jobs(self) -> list[tuple[Cell, Job]]:
        """Every run of the cells' weight sweeps (`sae_lite.study.weights.sweep_jobs`), with its cell."""
        return [(cell, job) for cell in self.cells
                for job in sweep_jobs(cell.data, self.penalties, cell.rule_k, self.profile, n_latents=cell.n_latents)]

    def jobs(self, weights: dict[str, dict[str, float]] | None = None) -> list[tuple[Cell, Job]]:
        """Every run of the grid, with its cell, in the order `sae_lite.study.reproduce` trains them.

        ``weights``: {cell label: {penalty: weight}} (from `sae_lite.study.reproduce.train_grid`); without them the methods'
        default weights stand in (enough to count and validate the runs)."""
        methods = [METHODS[name] for name in self.methods]
        return [(cell, job) for cell in self.cells
                for job in grid_jobs(cell.data, with_weights(methods, (weights or {}).get(cell.label, {})),
                                     list(cell.ks), profile=self.profile, n_latents=cell.n_latents)]

    def fingerprint(self) -> dict:
        """Everything that defines the grid's results (its `grid.json`): the methods' recipes and the
        weight rule (its sweep and tolerance; the weights it picks follow from them)."""
        recipes = {name: {key: value for key, value in asdict(METHODS[name]).items() if key != "weight"}
                   for name in self.methods}
        return {"profile": asdict(self.profile), "cells": [asdict(cell) for cell in self.cells], "methods": recipes,
                "weight_rule": {"sweep": list(sweep_weights(self.profile)), "tolerance": TOLERANCE,
                                "seed": self.profile.seeds[0], "k": "each cell's middle k"}}


#: quick/default: the planted data (the lab, with ground truth) and the real data (Fashion-MNIST through
#: EfficientNet-Lite0) at the book's k = 16, so the runs are shared with the chapters through the cache;
#: default's three seeds give the spread of every number.
SMALL_CELLS = (Cell("planted", "planted", (16,)),
               Cell(catalog.REAL, catalog.REAL, (16,), n_latents=REAL_LATENTS, backbone=catalog.REAL_BACKBONE))


def grid(profile: str, data_dir: str | os.PathLike | None = None) -> Grid:
    """The reproduction grid of ``profile``; ``paper`` reads its stores from ``data_dir`` (see `paper_cells`)."""
    if profile not in PROFILE_SETTINGS:
        raise SaeLiteError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    if profile != "paper":
        if data_dir is not None:
            raise SaeLiteError(f"--data is for the paper profile only; the {profile} profile trains on planted "
                               "and real data (drop --data or use --profile paper)")
        return Grid(PROFILE_SETTINGS[profile], SMALL_CELLS)
    if data_dir is None:
        raise SaeLiteError("the paper profile needs --data DIR holding <dataset>/<backbone>/ embedding stores "
                           f"(datasets {', '.join(PAPER_DATASETS)}; backbones {', '.join(PAPER_BACKBONES)})")
    return Grid(PROFILE_SETTINGS["paper"], paper_cells(Path(data_dir)))


def paper_cells(data_dir: Path) -> tuple[Cell, ...]:
    """The paper's cells from ``data_dir/<dataset>/<backbone>/`` stores, checked before any training.

    Raises SaeLiteError naming every missing store (and the command that makes it) or a store whose
    ``meta.json`` names another backbone than its directory.
    """
    cells, missing = [], []
    for dataset in PAPER_DATASETS:
        for backbone in PAPER_BACKBONES:
            store = data_dir / dataset / backbone
            if not (store / "meta.json").is_file():
                missing.append(f"{dataset}/{backbone}")
                continue
            meta = load_store(store, check=False).meta  # every file of the store checked, from its headers
            check_backbone(store, backbone)
            cells.append(Cell(f"{dataset}/{backbone}", str(store.resolve()), PAPER_KS,
                              n_latents=PAPER_EXPANSION * int(meta["d"]), backbone=backbone))
    if missing:
        raise SaeLiteError(f"{data_dir} lacks the embedding stores {', '.join(missing)}; create each with "
                           f"`python -m sae_lite embed --backbone BACKBONE --images IMAGES --out {data_dir}/DATASET/BACKBONE`")
    return tuple(cells)
