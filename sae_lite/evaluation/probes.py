"""Linear probes: how much of the class a code carries, and how much its top-m entries alone carry.

A probe is a multinomial logistic regression (scikit-learn) on standardised features, fit on the
training split and scored on the test split.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def keep_top(codes: Tensor, m: int) -> Tensor:
    """Keep the m largest-magnitude codes of each row [n, N], zero the rest."""
    m = min(m, codes.shape[1])
    index = codes.abs().topk(m, dim=1).indices
    return torch.zeros_like(codes).scatter(1, index, codes.gather(1, index))


def linear_probe(x_train, y_train, x_test, y_test, seed: int = 0) -> dict[str, float]:
    """Train and test accuracy of a multinomial logistic regression (scikit-learn, standardised
    features) fit on ``x_train`` [n, f] with classes ``y_train`` [n] and scored on the test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    probe.fit(np.asarray(x_train), np.asarray(y_train))
    return {"train": float(probe.score(x_train, y_train)), "test": float(probe.score(x_test, y_test))}


def truncated_probe(codes_train, y_train, codes_test, y_test, ms, seed: int = 0) -> dict[int, dict[str, float]]:
    """`linear_probe` accuracy when only the top-m codes of each input are kept, for each m in ``ms``.

    Latents that are zero in every truncated training code are left out of the probe: their
    weights would be 0 anyway (standardised, they stay 0; the L2 penalty keeps their weights at 0),
    and without them a probe on a large dictionary fits about twice as fast.
    """
    results = {}
    for m in ms:
        train_x = keep_top(torch.as_tensor(codes_train), int(m)).numpy()
        used = np.flatnonzero((train_x != 0).any(0))
        test_x = keep_top(torch.as_tensor(codes_test), int(m)).numpy()[:, used]
        results[int(m)] = linear_probe(train_x[:, used], y_train, test_x, y_test, seed)
    return results
