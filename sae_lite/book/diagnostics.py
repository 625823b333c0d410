"""Diagnostics that explain a chapter's result from saved runs (no training, nothing cached).

`top_latent_share` asks whether one latent dominates the codes: the share of test inputs whose
largest code sits on the single most common latent. A value near 1 means a dense, shared latent
carries the top activation of almost every input, so a top-1 probe sees almost no class information.

`rank_gap` measures how far apart an input's k-th and (k+1)-th activations lie: the scale a soft
top-k's temperature is compared with (chapter 8).

`sample_latents` picks the latents a chapter shows as image grids: at random among the live ones
(seeded), so that the grids are a fair sample and not the best-looking latents.
"""

from __future__ import annotations

import numpy as np
import torch

from sae_lite.evaluation import metrics, runs
from sae_lite.study.pipeline import load_split


def top_latent_share(rows: list[dict]) -> list[dict]:
    """Each grid row (it needs ``path``) with ``top1_share`` (share of test inputs whose largest
    |code| is on the most common such latent) and ``top1_distinct`` (how many latents are ever the largest)."""
    out = []
    for row in rows:
        run = runs.load_run(row["path"])
        codes, _ = metrics.encode_all(run.sae, load_split(run.data)[1].x)   # [n_test, N]
        top = codes.abs().argmax(1)
        counts = torch.bincount(top)
        out.append({**row, "top1_share": counts.max().item() / len(top), "top1_distinct": int((counts > 0).sum())})
    return out


def sample_latents(codes, m: int, seed: int = 0, min_inputs: int = 8) -> list[int]:
    """``m`` latents drawn at random (seeded) among those that fire on at least ``min_inputs`` of the
    inputs of ``codes`` [n_inputs, N], sorted; fewer when fewer qualify."""
    fires = (torch.as_tensor(codes) != 0).sum(0).numpy()
    live = np.flatnonzero(fires >= min_inputs)
    chosen = np.random.default_rng(seed).choice(live, size=min(m, len(live)), replace=False)
    return sorted(int(j) for j in chosen)


@torch.no_grad()
def rank_gap(sae, x, k: int, batch_size: int = 4096) -> np.ndarray:
    """[n]: for each input of ``x`` [n, d], ReLU(pre) at rank ``k`` minus ReLU(pre) at rank k + 1 (sorted
    in decreasing order): the gap a selection of k units has to cut through."""
    gaps = []
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(np.asarray(x[start:start + batch_size], np.float32))
        top = torch.relu(sae.pre_activations(batch)).topk(k + 1, dim=1).values
        gaps.append((top[:, k - 1] - top[:, k]).numpy())
    return np.concatenate(gaps)
