"""Matplotlib figures of the book: means over seeds with a ± one standard deviation band.

Every function takes the flat rows of `experiments.run_grid` (or `long` rows made from them),
labels its axes with `label`, and returns the matplotlib Axes (or Figure) it drew on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sae_lite.errors import SaeLiteError

LABELS = {
    "r2": "test R²", "fvu": "fraction of variance unexplained", "l0": "L0 (active latents per input)",
    "dead": "dead latents", "dead_fraction": "share of dead latents", "ms_mean": "mean monosemanticity",
    "purity_mean": "mean class purity", "weighted_purity_mean": "mean weighted class purity",
    "recovery_mmcs": "mean best cosine with a planted atom", "recovery_matched": "planted atoms recovered",
    "k": "training k", "weight": "penalty weight", "k_factor": "inference k' / training k",
    "m": "activations kept per input (m)", "probe": "probe test accuracy", "step": "training step",
    "method": "method", "loss": "training loss", "penalty": "penalty term", "auxk": "AuxK term",
}


def label(name: str) -> str:
    """A readable axis label for a row key (the key itself when unknown)."""
    if name.startswith("r2_x"):
        return f"test R² at k' = {name[4:]}·k"
    if name.startswith("probe_m"):
        return f"probe accuracy, top {name[7:]}"
    return LABELS.get(name, name)


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


def band(rows: list[dict], x: str, y: str, by: str | None = "method", ax=None, logx: bool = False,
         title: str | None = None):
    """Line of the mean of ``y`` against ``x`` per group ``by``, with a ± std band over seeds."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for group, (xs, means, stds, n) in mean_std(rows, x, y, by).items():
        line, = ax.plot(xs, means, marker="o", label=f"{group} (n={n})")
        ax.fill_between(xs, means - stds, means + stds, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def bars(rows: list[dict], metrics: list[str], by: str = "method", title: str | None = None):
    """One panel per metric: the mean per group with a ± std error bar over seeds."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row[by] for row in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        values = [[float(r[metric]) for r in rows if r[by] == name and np.isfinite(r.get(metric, np.nan))]
                  for name in names]
        means = [np.mean(v) if v else np.nan for v in values]
        stds = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
        ax.bar(range(len(names)), means, yerr=stds, capsize=3, color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel(label(metric))
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


#: The keys of a grid row that say how the run was made (not what it measured).
RECIPE = ("data", "method", "penalty", "weight", "masked", "auxk", "activation", "k", "seed", "path")


def history_rows(rows: list[dict]) -> list[dict]:
    """One row per logged training step of each run (its ``history.json``), with the run's keys."""
    out = []
    for row in rows:
        history = json.loads((Path(row["path"]) / "history.json").read_text())
        recipe = {key: row[key] for key in RECIPE if key in row}
        for i, step in enumerate(history["step"]):
            out.append({**recipe, **{key: values[i] for key, values in history.items()}, "step": step})
    return out


def history(rows: list[dict], y: str = "dead", by: str = "method", ax=None, title: str | None = None):
    """``y`` (a history column: dead, l0, fvu, penalty, ...) over training steps, mean ± std per group."""
    ax = band(history_rows(rows), "step", y, by=by, ax=ax, title=title)
    for line in ax.get_lines():
        line.set_marker("")
    return ax


def top_inputs(images: np.ndarray, acts: np.ndarray, latents: list[int], n: int = 8, shape=(8, 8)):
    """For each latent (a row), the ``n`` inputs that activate it most, drawn as images.

    images: [N_inputs, prod(shape)]; acts: [N_inputs, N_latents].
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(latents), n, figsize=(n * 0.9, len(latents) * 1.0), squeeze=False)
    for row, j in zip(axes, latents):
        order = np.argsort(-acts[:, j])[:n]
        for ax, i in zip(row, order):
            ax.imshow(images[i].reshape(shape), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"latent {j}", rotation=0, ha="right", va="center", fontsize="small")
    fig.suptitle("top-activating inputs per latent")
    return fig


def atom_match(W_dec: np.ndarray, atoms: np.ndarray, ax=None, title: str | None = None):
    """Histogram over planted atoms of the best cosine similarity with any SAE atom."""
    import matplotlib.pyplot as plt

    W = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)
    A = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    best = (A @ W.T).max(1)
    ax = ax or plt.subplots(figsize=(5, 3.2))[1]
    ax.hist(best, bins=np.linspace(min(0.0, best.min()), 1, 26), color="C0")
    ax.set_xlabel("best cosine of a planted atom with an SAE atom")
    ax.set_ylabel("planted atoms")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def data_overview(dataset):
    """Three panels on a data set: active planted atoms per input, atom coherence, class sizes."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    if dataset.n_active is not None:
        axes[0].hist(dataset.n_active, bins=np.arange(dataset.n_active.max() + 2) - 0.5, color="C0")
        axes[0].set_xlabel("planted atoms active in an input")
        axes[0].set_ylabel("inputs")
    if dataset.atoms is not None:
        cos = dataset.atoms @ dataset.atoms.T
        axes[1].hist(np.abs(cos[np.triu_indices_from(cos, 1)]), bins=40, color="C1")
        axes[1].set_xlabel("|cosine| between two planted atoms")
        axes[1].set_ylabel("pairs of atoms")
    if dataset.labels is not None and np.asarray(dataset.labels).ndim == 1:
        classes, counts = np.unique(dataset.labels, return_counts=True)
        axes[2].bar(classes, counts, color="C2")
        axes[2].set_xlabel("class")
        axes[2].set_ylabel("inputs")
    for ax in axes:
        ax.grid(alpha=0.3)
        if not ax.has_data():
            ax.set_axis_off()
    fig.suptitle(f"{dataset.name}: n = {dataset.n} inputs of dimension d = {dataset.d}")
    fig.tight_layout()
    return fig


def gallery(images: np.ndarray, titles: list[str], shape=(8, 8), columns: int = 10):
    """A grid of small grey images (rows of ``images`` reshaped to ``shape``) with titles."""
    import matplotlib.pyplot as plt

    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(np.asarray(image).reshape(shape), cmap="gray_r")
        ax.set_title(title, fontsize="small")
    return fig


def latent_cards(codes: np.ndarray, W_dec: np.ndarray, dataset, latents: list[int], n: int = 12):
    """For each latent (a row of panels): the ground-truth planted codes of its ``n`` top inputs,
    and the cosine of its decoder atom with every planted atom.

    codes: [n_inputs, N] SAE codes on ``dataset`` (planted: it has ``codes`` and ``atoms``).
    A latent that learned a planted atom shows one bright column on the left and one peak on the right.
    """
    import matplotlib.pyplot as plt

    if dataset.atoms is None or dataset.codes is None:
        raise SaeLiteError("latent_cards needs planted data (ground-truth atoms and codes); use top_inputs otherwise")
    W = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)
    cos = dataset.atoms @ W.T                                          # [M, N]
    fig, axes = plt.subplots(len(latents), 2, figsize=(11, 1.6 * len(latents)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    for (left, right), j in zip(axes, latents):
        top = np.argsort(-np.asarray(codes[:, j]))[:n]
        left.imshow(dataset.codes[top], aspect="auto", cmap="magma", interpolation="nearest")
        left.set_ylabel(f"latent {j}\ntop inputs", fontsize="small")
        left.set_yticks([])
        right.stem(np.arange(len(cos)), cos[:, j], markerfmt=" ", basefmt="grey")
        right.set_ylim(-1, 1)
        best = int(np.argmax(cos[:, j]))
        right.set_title(f"best planted atom {best}: cos = {cos[best, j]:.2f}", fontsize="small")
    axes[-1][0].set_xlabel("planted atom (ground-truth codes of the top inputs)")
    axes[-1][1].set_xlabel("planted atom")
    fig.tight_layout()
    return fig


def sweep(rows: list[dict], metrics: list[str], x: str = "weight", reference: str = "baseline",
          tolerance: float | None = None):
    """Each metric against ``x`` (log scale) for the non-reference rows, the reference as a dashed
    line; with ``tolerance``, the band reference - tolerance shaded on the first panel."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    swept = [r for r in rows if r["method"] != reference]
    for i, (ax, metric) in enumerate(zip(axes[0], metrics)):
        band(swept, x, metric, ax=ax, logx=True)
        base = [float(r[metric]) for r in rows if r["method"] == reference and metric in r]
        if base:
            ax.axhline(np.mean(base), color="black", linestyle="--", label=reference)
            if tolerance is not None and i == 0:
                ax.axhspan(np.mean(base) - tolerance, np.mean(base), color="grey", alpha=0.2,
                           label=f"within {tolerance:g}")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
