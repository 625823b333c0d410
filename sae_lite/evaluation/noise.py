"""How much of a metric is the test set's noise: its standard error from resampling the test inputs.

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


def bootstrap_se(codes: Tensor, ref, labels, draws: int = 20, seed: int = 0) -> dict[str, float]:
    """Standard errors of the mean MS (``ms_mean``, against ``ref``) and mean class purity
    (``purity_mean``) of ``codes`` [n, N] over ``draws`` resamples of the n test inputs (seeded)."""
    if draws < 2:
        raise SaeLiteError(f"draws must be >= 2 to estimate a spread, got {draws}")
    ref, labels = np.asarray(ref), np.asarray(labels)
    if not len(codes) == len(ref) == len(labels):
        raise SaeLiteError(f"codes, ref and labels need one row per test input; got {len(codes)}, {len(ref)}, {len(labels)}")
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
