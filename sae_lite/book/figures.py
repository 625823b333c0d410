"""The figures of a reproduction as PNG files: `python -m sae_lite reproduce` writes them into OUT/figures."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

from sae_lite.book import plots
from sae_lite.book.rows import long
from sae_lite.errors import SaeLiteError
from sae_lite.files import write_atomic
from sae_lite.study.reproduce import group_rows


def require_matplotlib() -> None:
    """Stop with one line where matplotlib, which `write_figures` draws with (the ``viz`` extra), is not
    installed: `python -m sae_lite reproduce` calls it before it trains anything."""
    if importlib.util.find_spec("matplotlib") is None:
        raise SaeLiteError('reproduce draws its figures with matplotlib, which is not installed; '
                           'pip install "sae-lite[viz]"')


def write_figures(directory: Path, rows: list[dict]) -> list[Path]:
    """The paper's kinds of figure, per data set and training k, as PNG (mean ± std over seeds).

    ``*_r2_vs_k.png``: R^2 against the inference k' / k; ``*_probe_vs_m.png``: probe accuracy against
    the m codes kept (single-label data only); ``*_per_method.png``: MS, purity, both R^2 and dead latents.
    """
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for (data, k), members in group_rows(rows, ("data", "k")).items():
        title = f"{data}, training k = {k}"
        figures = {"r2_vs_k": _sweep(members, "r2_x", "k_factor", "r2", title)}
        if all("probe_m1" in row for row in members):
            figures["probe_vs_m"] = _sweep(members, "probe_m", "m", "probe", title)
        metrics = [m for m in ("ms_mean", "purity_mean", "r2", "r2_vw", "dead") if all(m in row for row in members)]
        figures["per_method"] = plots.bars(members, metrics, title=title)
        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
            plt.close(figure)
            written.append(write_atomic(directory / f"{data.replace('/', '_')}_k{k}_{name}.png", buffer.getvalue()))
    return written


def _sweep(rows: list[dict], prefix: str, x: str, y: str, title: str):
    """A mean ± std band of the ``{prefix}{v}`` columns against v on a log axis ticked at the values."""
    walk = long(rows, prefix, x, y)
    ax = plots.band(walk, x, y, logx=True, title=title)
    values = sorted({row[x] for row in walk})
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()
    return ax.figure
