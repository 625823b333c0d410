"""The book's figures: means over seeds with a ± one standard deviation band (seaborn draws the
statistical ones, matplotlib the rest).

Every function draws: it takes the flat rows of `sae_lite.study.runner.run_grid` (or rows made from
them by `sae_lite.book.rows`), labels its axes with `label`, and returns the matplotlib Axes (or
Figure) it drew on.
"""

from __future__ import annotations

import numpy as np

from sae_lite.book.rows import PROX_TITLES, history_rows, mean_std
from sae_lite.core import prox
from sae_lite.errors import SaeLiteError

LABELS = {
    "r2": "test R²", "r2_vw": "test R², variance-weighted (1 − FVU)", "fvu": "fraction of variance unexplained",
    "l0": "L0 (active latents per input)",
    "dead": "dead latents", "dead_fraction": "share of dead latents", "ms_mean": "mean monosemanticity",
    "purity_mean": "mean class purity", "weighted_purity_mean": "mean weighted class purity",
    "recovery_mmcs": "mean best cosine with a planted atom", "recovery_matched": "planted atoms recovered",
    "k": "training k", "weight": "penalty weight", "k_factor": "inference k' / training k",
    "m": "activations kept per input (m)", "probe": "probe test accuracy",
    "r2_at_k": "test R² (variance-weighted) at the inference k'", "step": "training step",
    "method": "method", "loss": "training loss", "penalty": "penalty", "auxk": "AuxK",
    "penalty_loss": "penalty term", "auxk_loss": "AuxK term", "variant": "variant",
    "u": "u = Dᵀ(x − b)", "z": "z = prox(u)", "lam": "λ (Top-k/AbsTopK: τ = √(2λ))", "rank": "rank j of the activation",
    "p": "soft weight p_j", "temperature": "temperature τ", "opposite_pairs": "pairs of opposite atoms (cos < −0.9)",
    "one_latent": "signed atoms covered by one latent", "pair": "signed atoms covered by an opposite pair",
    "budget_rank_corr": "Spearman ρ(budget, true active atoms)",
    "k_target": "budget target k_t", "alpha": "soft top-k temperature τ",
    "share": "activation / the input's largest", "gradient": "penalty gradient ∂P/∂a_j",
}


#: The colours of the figures (matplotlib's tab10); a method keeps its colour in every chapter.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
METHOD_COLOURS = {"baseline": PALETTE[0], "offsupport": PALETTE[1], "ratio": PALETTE[2],
                  "offsupport-nomask": PALETTE[3], "ratio-nomask": PALETTE[4]}


def colour(group, groups: list) -> str:
    """The colour of ``group``: its method's colour when it is a method name, else by position in ``groups``."""
    if isinstance(group, str) and group in METHOD_COLOURS:
        return METHOD_COLOURS[group]
    return PALETTE[groups.index(group) % len(PALETTE)]


def label(name: str) -> str:
    """A readable axis label for a row key (the key itself when unknown)."""
    if name.startswith("r2_x"):
        return f"test R² (variance-weighted) at k' = {name[4:]}·k"
    if name.startswith("probe_m"):
        return f"probe accuracy, top {name[7:]}"
    return LABELS.get(name, name)


def band(rows: list[dict], x: str, y: str, by: str | None = "method", ax=None, logx: bool = False,
         title: str | None = None):
    """Line of the mean of ``y`` against ``x`` per group ``by``, with a ± std band over seeds (seaborn's
    estimator: the mean and the standard deviation, ddof 1, of the rows at each point)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    stats = mean_std(rows, x, y, by)                 # checks the columns; the groups in order, each with its n
    names = {group: f"{group} (n={n})" for group, (_, _, _, n) in stats.items()}
    data = pd.DataFrame([{x: float(row[x]), y: float(row[y]), "group": names[row[by] if by else y]}
                         for row in rows if np.isfinite(float(row.get(y, np.nan)))])
    sns.lineplot(data=data, x=x, y=y, hue="group", hue_order=list(names.values()), errorbar="sd", marker="o",
                 markeredgewidth=0, palette={name: colour(group, list(stats)) for group, name in names.items()},
                 legend=False, ax=ax)
    for line, name in zip(ax.get_lines()[-len(names):], names.values()):  # one line per group, in hue order
        line.set_label(name)
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    if logx:                                   # ticks at the grid's x values
        ticks = sorted({float(row[x]) for row in rows})
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def bars(rows: list[dict], metrics: list[str], by: str = "method", title: str | None = None):
    """One panel per metric: the mean per group with a ± std error bar over seeds (seaborn's estimator)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    names = list(dict.fromkeys(row[by] for row in rows))
    palette = {name: colour(name, names) for name in names}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        data = pd.DataFrame([{by: row[by], metric: float(row[metric])} for row in rows
                             if np.isfinite(float(row.get(metric, np.nan)))])
        sns.barplot(data=data, x=by, y=metric, hue=by, order=names, hue_order=names, palette=palette,
                    errorbar="sd", capsize=0.2, err_kws={"linewidth": 1}, legend=False, ax=ax)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_xlabel("")
        ax.set_ylabel(label(metric))
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


#: The keys of a grid row that say how the run was made (not what it measured).
def history(rows: list[dict], y: str = "dead", by: str = "method", ax=None, title: str | None = None):
    """``y`` (a history column: dead, l0, fvu, penalty_loss, ...) over training steps, mean ± std per group."""
    ax = band(history_rows(rows, keep=(by,)), "step", y, by=by, ax=ax, title=title)
    for line in ax.get_lines():
        line.set_marker("")
    return ax


def history_with_schedule(histories: dict[str, dict], schedule: dict[str, list], y: str = "dead",
                          right: str = "k_target", ax=None, title: str | None = None):
    """``y`` (a history column: dead, fvu, l0, ...) of each run in ``histories`` (label -> its training
    history) over the steps, against a rule's ``schedule`` (columns ``step``, ``right`` and, when it
    has a hard phase, ``hard``; e.g. `sae_lite.core.rules.softsae.schedule_table`): ``right`` on a
    second axis (log-scaled for ``alpha``), the hard phase shaded."""
    import matplotlib.pyplot as plt

    if right not in schedule or "step" not in schedule:
        raise SaeLiteError(f"the schedule has no column {right!r} (it has {', '.join(schedule)})")
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for i, (name, run) in enumerate(histories.items()):
        if y not in run:
            raise SaeLiteError(f"the history of {name!r} has no column {y!r} (it has {', '.join(run)})")
        ax.plot(run["step"], run[y], label=name, color=PALETTE[i % len(PALETTE)])
    hard = [step for step, on in zip(schedule["step"], schedule.get("hard", ())) if on]
    if hard:
        ax.axvspan(min(hard), max(hard) + 1, color="0.85", alpha=0.6, label="hard phase")
    twin = ax.twinx()
    twin.plot(schedule["step"], schedule[right], color="0.4", linestyle="--", label=label(right))
    if right == "alpha":
        twin.set_yscale("log")
    twin.set_ylabel(label(right))
    ax.set_xlabel(label("step"))
    ax.set_ylabel(label(y))
    lines = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize="small")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def latent_images(images: np.ndarray, codes: np.ndarray, latents: list[int], n: int = 8,
                  labels: np.ndarray | None = None, classes: list[str] | None = None, title: str | None = None,
                  fig=None):
    """For each latent (a row), its ``n`` top-activating images, best first.

    images: uint8 [N_inputs, H, W] or [N_inputs, H, W, 3]; codes: [N_inputs, N_latents]. With
    ``labels`` (int [N_inputs]) and ``classes``, each row is titled with the most frequent class of
    its images and that class's share of them (the purity of the top images). ``fig`` may be a
    matplotlib (sub)figure to draw into.
    """
    import matplotlib.pyplot as plt

    fig = fig or plt.figure(figsize=(n * 0.75, len(latents) * 0.95))
    axes = fig.subplots(len(latents), n, squeeze=False)
    for row, j in zip(axes, latents):
        order = np.argsort(-np.asarray(codes[:, j]), kind="stable")[:n]
        for ax, i in zip(row, order):
            ax.imshow(images[i], cmap="gray_r" if images.ndim == 3 else None)
            ax.set_xticks([])
            ax.set_yticks([])
        name = f"latent {j}"
        if labels is not None:
            top, count = np.unique(np.asarray(labels)[order], return_counts=True)
            best = top[np.argmax(count)]
            name += f": {classes[best] if classes else best} {count.max()}/{len(order)}"
        row[0].set_title(name, fontsize="small", loc="left")
    if title:
        fig.suptitle(title)
    return fig


def compare_latent_images(images: np.ndarray, panels: dict[str, tuple[np.ndarray, list[int]]], n: int = 8,
                          labels: np.ndarray | None = None, classes: list[str] | None = None):
    """`latent_images` of several SAEs side by side: ``panels`` maps a title to (codes, latents)."""
    import matplotlib.pyplot as plt

    rows = max(len(latents) for _, latents in panels.values())
    fig = plt.figure(figsize=(len(panels) * n * 0.8, rows * 1.05), layout="constrained")
    for sub, (title, (codes, latents)) in zip(np.atleast_1d(fig.subfigures(1, len(panels))), panels.items()):
        latent_images(images, codes, latents, n, labels, classes, title=title, fig=sub)
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
        raise SaeLiteError("latent_cards needs planted data (ground-truth atoms and codes); use latent_images otherwise")
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


def prox_maps(lam: float = 0.5, tau: float = 1.0, span: float = 3.0):
    """The four proximal maps of `sae_lite.core.prox` as scalar maps u -> z, side by side.

    ReLU and JumpReLU with weight ``lam``; Top-k and AbsTopK with ``tau`` standing for the k-th
    largest of the other coordinates (`prox.scalar_map`). The identity is drawn dotted.
    """
    import matplotlib.pyplot as plt
    import torch

    u = torch.linspace(-span, span, 1201)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), sharey=True)
    for ax, name in zip(axes, PROX_TITLES):
        z = prox.scalar_map(u, name, lam=lam, tau=tau)
        jumps = (z[1:] - z[:-1]).abs() > 2 * (u[1] - u[0])      # break the line where the map jumps
        ax.plot(u, np.where(np.r_[False, jumps.numpy()], np.nan, z.numpy()), color="C0", linewidth=2)
        ax.plot(u, u, ":", color="grey", linewidth=1)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.axvline(0, color="black", linewidth=0.5)
        ax.set_title(PROX_TITLES[name], fontsize="medium")
        ax.set_xlabel("u = Dᵀ(x − b)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("z = prox(u)")
    fig.suptitle(f"one proximal step from z = 0  (λ = {lam:g}; Top-k/AbsTopK: k-th largest other |u| = {tau:g})",
                 fontsize="small")
    fig.tight_layout()
    return fig


def signed_usage(W_dec: np.ndarray, atoms: np.ndarray, signed: np.ndarray, threshold: float = 0.9,
                 ax=None, title: str | None = None):
    """For each signed planted atom (x), how many latents match it with sign + (up) and with sign − (down)."""
    import matplotlib.pyplot as plt

    from sae_lite.evaluation.metrics import atom_cosines

    cos = atom_cosines(W_dec, atoms).numpy()[np.asarray(signed, dtype=bool)]
    plus, minus = (cos > threshold).sum(1), (cos < -threshold).sum(1)
    order = np.lexsort((-minus, -plus))
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    ax.bar(np.arange(len(cos)), plus[order], color="C0", label=f"cos > {threshold:g}")
    ax.bar(np.arange(len(cos)), -minus[order], color="C3", label=f"cos < −{threshold:g}")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("signed planted atom (sorted)")
    ax.set_ylabel("matching latents (− below)")
    ax.set_title(title or f"{int(((plus > 0) & (minus > 0)).sum())} of {len(cos)} covered by an opposite pair",
                 fontsize="medium")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3, axis="y")
    return ax


def budget_vs_truth(budgets: dict, n_active: np.ndarray, max_active: int = 20):
    """One panel per model: its per-input budget (SoftSAE's k_hat, or the L0) against the true
    number of active planted atoms, as the median and the 10-90% range per true count."""
    import matplotlib.pyplot as plt

    from sae_lite.evaluation.metrics import rank_correlation

    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.4), sharey=True, squeeze=False)
    n_active = np.asarray(n_active)
    for ax, (name, values) in zip(axes[0], budgets.items()):
        values = np.asarray(values, dtype=float)
        counts = [c for c in range(1, max_active + 1) if (n_active == c).sum() >= 5]
        q = np.array([np.percentile(values[n_active == c], [10, 50, 90]) for c in counts])
        ax.fill_between(counts, q[:, 0], q[:, 2], alpha=0.25, color="C0")
        ax.plot(counts, q[:, 1], marker="o", color="C0")
        ax.plot(counts, counts, ":", color="grey", label="y = x")
        ax.set_title(f"{name}: Spearman ρ = {rank_correlation(values, n_active):.2f}", fontsize="medium")
        ax.set_xlabel("true active atoms in the input")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("per-input budget (k̂ or L0)")
    axes[0][0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def penalty_gradients(profile: dict[str, dict], k: int, ax=None, title: str | None = None):
    """The gradient of each penalty on one input's units, by rank of activation: ``profile`` maps a
    penalty to `sae_lite.book.diagnostics.penalty_gradient` (rank, gradient, selected, in_batch).
    Units Top-k selected are filled, the others hollow; the dotted line is rank k."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 3.8))[1]
    for i, (name, g) in enumerate(profile.items()):
        colour = METHOD_COLOURS.get(name, PALETTE[i % len(PALETTE)])
        rank, grad, selected = np.asarray(g["rank"]), np.asarray(g["gradient"]), np.asarray(g["selected"], bool)
        ax.plot(rank, grad, color=colour, alpha=0.5, linewidth=1)
        ax.scatter(rank[selected], grad[selected], color=colour, s=18, label=f"{label(name)}: selected")
        ax.scatter(rank[~selected], grad[~selected], facecolors="none", edgecolors=colour, s=18,
                   label=f"{label(name)}: not selected")
    ax.axvline(k + 0.5, color="0.5", linestyle=":")
    ax.axhline(0, color="0.7", linewidth=0.8)
    ax.set_xlabel(label("rank"))
    ax.set_ylabel(label("gradient"))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax
