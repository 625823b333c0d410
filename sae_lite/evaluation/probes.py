"""Linear probes: how much of the class a code carries, and how much its top-m entries alone carry.

A probe is a multinomial logistic regression (scikit-learn) on standardised features, fit on the
training split and scored on the test split.

Above `DENSE_LIMIT` code entries the truncated probe reads sparse top-m codes instead (`TopCodes`: the
m_max largest-magnitude codes of each input, [n, m_max] indices and values, built batch by batch by
`encode_top`), as scipy CSR matrices standardised *without centring* (centring would make them
dense): each latent is divided by its standard deviation only. That is ours, and it fits the same
probe: the L2 penalty acts on the weights, not on the intercept, and the intercept absorbs the
centring, so both problems have the same optimum. It is needed at the paper's scale, where the dense
codes do not fit (1 M inputs x 8192 latents of float32 are 32 GB), and it is faster from a few
million entries on, where the dense solver's every step reads every zero (the book's implementation
notes give the measurement).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

#: Above this many code entries (n x N) the truncated probe uses sparse top-m codes (`TopCodes`).
DENSE_LIMIT = 5_000_000


class TopCodes(NamedTuple):
    """The m_max largest-magnitude codes of each of n inputs, in decreasing magnitude."""

    index: np.ndarray   # int32 [n, m_max] latent ids
    values: np.ndarray  # float32 [n, m_max] their codes
    n_latents: int

    def csr(self, m: int):
        """The top-m codes as a scipy CSR matrix [n, n_latents] (explicit zeros dropped)."""
        from scipy.sparse import csr_matrix

        n, m = self.index.shape[0], min(m, self.index.shape[1])
        matrix = csr_matrix((self.values[:, :m].ravel(), self.index[:, :m].ravel(), np.arange(0, n * m + 1, m)),
                            shape=(n, self.n_latents))
        matrix.eliminate_zeros()
        return matrix


def top_codes(codes: Tensor, m: int) -> TopCodes:
    """`TopCodes` of a batch of dense codes [n, N]."""
    m = min(m, codes.shape[1])
    index = codes.abs().topk(m, dim=1).indices
    return TopCodes(index.int().numpy(), codes.gather(1, index).float().numpy(), codes.shape[1])


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


@torch.no_grad()
def encode_top(sae, x, m: int, batch_size: int = 4096) -> TopCodes:
    """`TopCodes` of ``sae``'s codes of ``x`` [n, d], encoded batch by batch: memory O(n m), never O(n N)."""
    device = next(sae.parameters()).device
    parts = [top_codes(sae(torch.as_tensor(np.asarray(x[i:i + batch_size], np.float32), device=device)).codes.cpu(), m)
             for i in range(0, len(x), batch_size)]
    return TopCodes(np.concatenate([p.index for p in parts]), np.concatenate([p.values for p in parts]), sae.n_latents)


def sparse_truncated_probe(top_train: TopCodes, y_train, top_test: TopCodes, y_test, ms,
                           seed: int = 0) -> dict[int, dict[str, float]]:
    """`truncated_probe` on sparse top-m codes: CSR features scaled by their standard deviation without
    centring (see the module docstring), the same logistic regression, the unused latents left out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    results = {}
    for m in ms:
        train_x = top_train.csr(int(m))
        used = np.flatnonzero(np.diff(train_x.tocsc().indptr))
        train_x, test_x = train_x[:, used], top_test.csr(int(m))[:, used]
        scaler = StandardScaler(with_mean=False).fit(train_x)
        probe = LogisticRegression(max_iter=500, random_state=seed).fit(scaler.transform(train_x), y_train)
        results[int(m)] = {"train": float(probe.score(scaler.transform(train_x), y_train)),
                           "test": float(probe.score(scaler.transform(test_x), y_test))}
    return results


def truncated_probe(codes_train, y_train, codes_test, y_test, ms, seed: int = 0) -> dict[int, dict[str, float]]:
    """`linear_probe` accuracy when only the top-m codes of each input are kept, for each m in ``ms``.

    Latents that are zero in every truncated training code are left out of the probe: their
    weights would be 0 anyway (standardised, they stay 0; the L2 penalty keeps their weights at 0),
    and leaving them out shrinks a large dictionary's probe to the latents in use.
    """
    results = {}
    for m in ms:
        train_x = keep_top(torch.as_tensor(codes_train), int(m)).numpy()
        used = np.flatnonzero((train_x != 0).any(0))
        test_x = keep_top(torch.as_tensor(codes_test), int(m)).numpy()[:, used]
        results[int(m)] = linear_probe(train_x[:, used], y_train, test_x, y_test, seed)
    return results
