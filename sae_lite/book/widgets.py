"""One slider idea for every chapter: walk a precomputed grid of runs, never train on a move.

`explore(rows, x, y, slider)` shows ``y`` against ``x`` (mean ± std over seeds, one line per
``color``) for one value of ``slider`` at a time, twice:

- a static plotly figure whose slider moves without a kernel (every slider value is a set of traces
  in the page; a step only toggles which are visible), with plotly.js embedded, so it works in the
  built book offline;
- under a live kernel, an ipywidgets slider that redraws a matplotlib figure from the same rows.
  In the static book this output shows a one-line note instead (the book drops the widget view).
"""

from __future__ import annotations

import numpy as np

from sae_lite.book.plots import band, colour, label
from sae_lite.book.rows import mean_std
from sae_lite.errors import SaeLiteError

_plotlyjs_sent = False   # plotly.js is embedded once per kernel (once per page of the book)


def slider_values(rows: list[dict], slider: str) -> list:
    """The sorted distinct values of ``slider`` in ``rows``; raises if there are none."""
    if not rows or slider not in rows[0]:
        raise SaeLiteError(f"cannot slide over {slider!r}: the rows are empty or have no such key")
    return sorted({row[slider] for row in rows})


def static_figure(rows: list[dict], x: str, y: str, slider: str, color: str = "method",
                  logx: bool = False, title: str | None = None):
    """A plotly Figure with one slider step per value of ``slider``; each step shows its lines and bands."""
    import plotly.graph_objects as go

    values = slider_values(rows, slider)
    groups = list(dict.fromkeys(row[color] for row in rows))
    fig, owner = go.Figure(), []
    for i, value in enumerate(values):
        for group, (xs, means, stds, n) in mean_std([r for r in rows if r[slider] == value], x, y, color).items():
            shade = colour(group, groups)
            fig.add_trace(go.Scatter(x=np.r_[xs, xs[::-1]], y=np.r_[means + stds, (means - stds)[::-1]],
                                     mode="lines", fill="toself", fillcolor=shade, opacity=0.2, line={"width": 0},
                                     hoverinfo="skip", showlegend=False, visible=i == 0))
            fig.add_trace(go.Scatter(x=xs, y=means, mode="lines+markers", name=f"{group} (n={n})",
                                     line={"color": shade}, visible=i == 0,
                                     error_y={"type": "data", "array": stds, "visible": False}))
            owner += [i, i]
    steps = [{"method": "update", "label": f"{value:g}" if isinstance(value, float) else str(value),
              "args": [{"visible": [o == i for o in owner]}]} for i, value in enumerate(values)]
    fig.update_layout(sliders=[{"active": 0, "steps": steps, "pad": {"t": 60},
                                "currentvalue": {"prefix": f"{label(slider)}: "}}],
                      xaxis_title=label(x), yaxis_title=label(y), title=title, template="plotly_white",
                      height=500, margin={"t": 50 if title else 20})
    if logx:                                   # ticks at the grid's x values, not at 3, 4, 5, ...
        ticks = sorted({float(row[x]) for row in rows})
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return fig


def static_html(fig) -> str:
    """The figure as an HTML fragment; the first of a kernel embeds plotly.js (works offline)."""
    global _plotlyjs_sent
    html = fig.to_html(full_html=False, include_plotlyjs=not _plotlyjs_sent, config={"responsive": True})
    _plotlyjs_sent = True
    return html


class Explorer:
    """The live version: an ipywidgets slider redrawing a matplotlib figure from precomputed rows."""

    def __init__(self, rows: list[dict], x: str, y: str, slider: str, color: str = "method",
                 logx: bool = False, title: str | None = None):
        import ipywidgets
        import matplotlib.pyplot as plt

        self.rows, self.x, self.y, self.slider_key, self.color, self.logx, self.title = \
            rows, x, y, slider, color, logx, title
        values = slider_values(rows, slider)
        self.slider = ipywidgets.SelectionSlider(options=values, value=values[0], description=label(slider),
                                                 style={"description_width": "initial"},
                                                 layout={"width": "420px"}, continuous_update=True)
        self.output = ipywidgets.Output()
        self.figure, self.ax = plt.subplots(figsize=(6, 4))
        plt.close(self.figure)               # shown through the Output widget only
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self.box = ipywidgets.VBox([self.slider, self.output])
        self.update(values[0])

    def update(self, value) -> None:
        """Redraw the figure for one slider value (no training: the rows are precomputed)."""
        from IPython.display import clear_output, display

        self.ax.clear()
        chosen = [r for r in self.rows if r[self.slider_key] == value]
        band(chosen, self.x, self.y, self.color, ax=self.ax, logx=self.logx,
             title=f"{self.title + ' — ' if self.title else ''}{label(self.slider_key)} = {value}")
        with self.output:
            clear_output(wait=True)
            display(self.figure)

    def _repr_mimebundle_(self, **kwargs) -> dict:
        bundle = self.box._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = "(Live sliders: run this notebook in Jupyter to use them.)"
        return bundle


def explore(rows: list[dict], x: str, y: str, slider: str, color: str = "method", logx: bool = False,
            title: str | None = None, live: bool = True) -> None:
    """Display the static slider figure and, with ``live``, the ipywidgets explorer below it."""
    from IPython.display import HTML, display

    display(HTML(static_html(static_figure(rows, x, y, slider, color, logx, title))))
    if live:
        display(Explorer(rows, x, y, slider, color, logx, title))
