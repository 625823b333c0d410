"""What a metric reads without signal, and how much of it is the test set's noise.

Chance levels (`chance_levels`): the mean MS and class purity that the same codes score when their
link to the inputs is broken: the reference embeddings (for MS) or the labels (for purity) shuffled
across the test inputs. A latent that fires on few inputs is "pure" by chance, and on non-negative
embeddings every cosine is positive, so neither score starts at 0.

Standard errors (`bootstrap_se`, `accuracy_se`): how much of a metric is the test set's noise.

The claims judge differences over seeds (`sae_lite.study.stats`); every seed is measured on the same
test set, so this noise is the part a larger test set removes. Bootstrap: draw the test inputs with
replacement, recompute the metric, and take the standard deviation of the draws. A probe's accuracy
needs no resampling: it is a mean of n right-or-wrong answers, with standard error sqrt(p (1 - p) / n).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from sae_lite.errors import SaeLiteError
from sae_lite.evaluation.metrics import class_purity, monosemanticity


def check_rows(codes, ref, labels) -> None:
    """Raise unless ``codes``, ``ref`` and ``labels`` have one row per test input."""
    if not len(codes) == len(ref) == len(labels):
        raise SaeLiteError(f"codes, ref and labels need one row per test input; got {len(codes)}, {len(ref)}, {len(labels)}")


def chance_levels(codes: Tensor, ref, labels, draws: int = 5, seed: int = 0) -> dict[str, float]:
    """Mean MS (``ms_mean``, against ``ref`` [n, D]) and mean class purity (``purity_mean``) of ``codes``
    [n, N] with the rows of ``ref`` and the ``labels`` [n] shuffled across the inputs, averaged over
    ``draws`` seeded shuffles. Without labels (None), purity is NaN."""
    ref, has_labels = np.asarray(ref), labels is not None
    labels = np.asarray(labels) if has_labels else np.zeros(len(codes), np.int64)
    check_rows(codes, ref, labels)
    generator = np.random.default_rng(seed)
    ms, purity = [], []
    for _ in range(draws):
        order = generator.permutation(len(codes))
        ms.append(float(torch.nanmean(monosemanticity(codes, ref[order]))))
        purity.append(float(torch.nanmean(class_purity(codes, labels[order]))))
    return {"ms_mean": float(np.mean(ms)), "purity_mean": float(np.mean(purity)) if has_labels else float("nan")}


def bootstrap_se(codes: Tensor, ref, labels, draws: int = 20, seed: int = 0) -> dict[str, float]:
    """Standard errors of the mean MS (``ms_mean``, against ``ref``) and mean class purity
    (``purity_mean``) of ``codes`` [n, N] over ``draws`` resamples of the n test inputs (seeded)."""
    if draws < 2:
        raise SaeLiteError(f"draws must be >= 2 to estimate a spread, got {draws}")
    ref, labels = np.asarray(ref), np.asarray(labels)
    check_rows(codes, ref, labels)
    generator = np.random.default_rng(seed)
    ms, purity = [], []
    for _ in range(draws):
        rows = generator.integers(0, len(codes), len(codes))
        index = torch.as_tensor(rows)
        ms.append(float(torch.nanmean(monosemanticity(codes[index], ref[rows]))))
        purity.append(float(torch.nanmean(class_purity(codes[index], labels[rows]))))
    return {"ms_mean": float(np.std(ms, ddof=1)), "purity_mean": float(np.std(purity, ddof=1))}


def accuracy_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on ``n`` test inputs: sqrt(p (1 - p) / n)."""
    if n < 1 or not 0 <= accuracy <= 1:
        raise SaeLiteError(f"an accuracy needs 0 <= p <= 1 and n >= 1 test inputs, got p={accuracy}, n={n}")
    return math.sqrt(accuracy * (1 - accuracy) / n)
