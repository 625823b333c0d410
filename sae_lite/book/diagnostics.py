"""Diagnostics that explain a chapter's result from saved runs (no training, nothing cached).

`top_latent_share` asks whether one latent dominates the codes: the share of test inputs whose
largest code sits on the single most common latent. A value near 1 means a dense, shared latent
carries the top activation of almost every input, so a top-1 probe sees almost no class information.

`rank_gap` measures how far apart an input's k-th and (k+1)-th activations lie: the scale a soft
top-k's temperature is compared with (chapter 8).

`penalty_gradient` and `rank_profile` show a penalty's mechanism (chapters 2 and 3): the gradient the
penalty puts on each unit of an input, and how the activations fall off around rank k.

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


def penalty_gradient(sae, x, penalty: str, masked: bool = True, row: int = 0, ranks: int | None = None) -> dict:
    """The gradient of ``penalty`` (a name in `sae_lite.core.penalties`) on the units of input ``row`` of
    the batch ``x`` [B, d] (the batch-active set is the batch's), in units of one input's share of the
    batch mean (so B times the gradient of the mean), for its ``ranks`` (default 3k) largest activations.

    Returns columns ``rank`` (1 = largest), ``activation``, ``gradient``, ``selected`` (kept by the
    rule) and ``in_batch`` (in the batch-active set A)."""
    from sae_lite.core import penalties

    batch = torch.as_tensor(np.asarray(x, np.float32))
    with torch.no_grad():
        selection = sae.encode(batch)
    acts = selection.acts.detach().clone().requires_grad_(True)
    penalties.get(penalty)(acts, selection.support, masked).backward()
    ranks = ranks or 3 * sae.k
    order = acts[row].detach().argsort(descending=True)[:ranks]
    active = penalties.batch_active(selection.support)
    return {"rank": list(range(1, len(order) + 1)), "activation": acts[row, order].tolist(),
            "gradient": (len(batch) * acts.grad[row, order]).tolist(),
            "selected": selection.support[row, order].tolist(), "in_batch": active[order].tolist()}


@torch.no_grad()
def rank_profile(sae, x, ranks: int | None = None, batch_size: int = 4096) -> np.ndarray:
    """[ranks]: the mean over the inputs of ``x`` [n, d] of ReLU(pre) at each rank (1 = largest, default
    up to 3k), each input divided by its largest: how sharply the activations fall off around rank k."""
    ranks = ranks or 3 * sae.k
    parts = []
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(np.asarray(x[start:start + batch_size], np.float32))
        top = torch.relu(sae.pre_activations(batch)).topk(ranks, dim=1).values
        parts.append((top / top[:, :1].clamp_min(1e-12)).numpy())
    return np.concatenate(parts).mean(0)


def rank_profile_rows(rows: list[dict], ranks: int | None = None) -> list[dict]:
    """`rank_profile` of each grid row's run on its own test split, as one row per rank: the row's
    ``method``, ``weight``, ``seed`` and ``k``, with ``rank`` and ``share`` (a slider's rows)."""
    out = []
    for row in rows:
        run = runs.load_run(row["path"])
        profile = rank_profile(run.sae, load_split(run.spec)[1].x, ranks)
        keys = {key: row[key] for key in ("method", "weight", "seed", "k") if key in row}
        out += [{**keys, "rank": rank, "share": float(share)} for rank, share in enumerate(profile, start=1)]
    return out
