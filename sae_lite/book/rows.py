"""The rows the book's figures draw: long-format tables computed from grid rows, runs and rules.

Every function returns a list of flat dicts (one point each), which `sae_lite.book.plots` and
`sae_lite.book.widgets` draw; nothing here draws.
"""

from __future__ import annotations

import numpy as np
import torch

from sae_lite.core import prox
from sae_lite.core.rules.lapsum import soft_weights
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import runs
from sae_lite.files import nan_for_null

#: The four proximal maps of `sae_lite.core.prox`, with the regulariser each one is the prox of.
PROX_TITLES = {"relu": "ReLU: R = ℓ1, z ≥ 0", "jumprelu": "JumpReLU: R = ℓ0, z ≥ 0",
               "topk": "Top-k: ‖z‖₀ ≤ k, z ≥ 0", "abstopk": "AbsTopK: ‖z‖₀ ≤ k"}


def long(rows: list[dict], prefix: str, x: str, value: str) -> list[dict]:
    """Wide columns ``{prefix}{v}`` of each row as one row per v: ``{x: float(v), value: ...}``.

    E.g. ``long(rows, "r2_x", "k_factor", "r2")`` turns the k-sweep columns into rows with a
    ``k_factor`` and an ``r2``; every other key is copied.
    """
    out = []
    for row in rows:
        rest = {key: v for key, v in row.items() if not key.startswith(prefix)}
        for key, v in row.items():
            if key.startswith(prefix):
                out.append({**rest, x: float(key[len(prefix):]), value: v})
    if not out:
        raise SaeLiteError(f"no column starts with {prefix!r}; run the grid with the evaluation that writes it")
    return out


def mean_std(rows: list[dict], x: str, y: str, by: str | None = "method") -> dict:
    """{group: (xs, means, stds, n)} of ``y`` against ``x``, over the seeds (rows) of each point.

    The std is over seeds (ddof=1), 0 for a single seed; non-finite values are left out.
    """
    missing = [key for key in (x, y, by) if key and rows and key not in rows[0]]
    if not rows or missing:
        raise SaeLiteError(f"nothing to plot: rows are empty or lack {missing}; check the metric names")
    points: dict = {}
    for row in rows:
        value = float(row.get(y, np.nan))
        if np.isfinite(value):
            points.setdefault(row[by] if by else y, {}).setdefault(row[x], []).append(value)
    result = {}
    for group, by_x in points.items():
        xs = sorted(by_x)
        values = [np.asarray(by_x[v]) for v in xs]
        result[group] = (np.asarray(xs, dtype=float), np.array([v.mean() for v in values]),
                         np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in values]),
                         min(len(v) for v in values))
    return result


RECIPE = ("data", "method", "penalty", "weight", "masked", "auxk", "activation", "k", "seed", "path")


def history_rows(rows: list[dict], keep: tuple[str, ...] = ()) -> list[dict]:
    """One row per logged training step of each run (its ``history.json``), with the run's recipe
    keys and the keys named in ``keep`` (e.g. a ``variant`` label added to the grid rows).

    A logged loss term named like a recipe key gets ``_loss`` appended: ``penalty_loss``, ``auxk_loss``.
    """
    out = []
    for row in rows:
        history = runs.load_history(row["path"])
        recipe = {key: row[key] for key in (*RECIPE, *keep) if key in row}
        for i, step in enumerate(history["step"]):
            logged = {(f"{key}_loss" if key in recipe else key): values[i] for key, values in history.items()}
            out.append({**recipe, **nan_for_null(logged), "step": step})   # a loss that was NaN is null in the file
    return out


def prox_rows(lams: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0), span: float = 3.0) -> list[dict]:
    """The four scalar prox maps as rows ``{method, u, z, lam}`` for a slider over ``lam``.

    For Top-k and AbsTopK the slider value stands for tau = sqrt(2 lam), the k-th largest other
    coordinate at which JumpReLU with the same lam would also cut (`prox.scalar_map`).
    """
    u = torch.linspace(-span, span, 241)
    rows = []
    for lam in lams:
        for name in PROX_TITLES:
            z = prox.scalar_map(u, name, lam=lam, tau=float(np.sqrt(2 * lam)))
            rows += [{"method": name, "u": float(a), "z": float(b), "lam": lam} for a, b in zip(u, z)]
    return rows


def soft_weight_rows(acts, k_hats: tuple[float, ...], temperatures: tuple[float, ...]) -> list[dict]:
    """SoftSAE's weights p_j of one input's activations ``acts`` [N], sorted, as rows
    ``{method: 'k_hat = ...', rank, p, temperature}`` for a slider over the temperature."""
    a = torch.as_tensor(np.sort(np.asarray(acts, dtype=np.float64))[::-1].copy())[None]
    rows = []
    for temperature in temperatures:
        for k_hat in k_hats:
            p = soft_weights(a, torch.tensor([k_hat], dtype=a.dtype), temperature)[0][0]
            rows += [{"method": f"k_hat = {k_hat:g}", "rank": j + 1, "p": float(v), "temperature": temperature}
                     for j, v in enumerate(p)]
    return rows
