"""Diagnostics that explain a chapter's result from saved runs (no training, nothing cached).

`top_latent_share` asks whether one latent dominates the codes: the share of test inputs whose
largest code sits on the single most common latent. A value near 1 means a dense, shared latent
carries the top activation of almost every input, so a top-1 probe sees almost no class information.
"""

from __future__ import annotations

import torch

from sae_lite import metrics, runs
from sae_lite.experiments import load_split


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
