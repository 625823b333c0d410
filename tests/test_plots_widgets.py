import json
import time

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from sae_lite.book import plots, widgets  # noqa: E402
from sae_lite.book.rows import history_rows, long, mean_std  # noqa: E402
from sae_lite.errors import SaeLiteError  # noqa: E402


def grid(tmp_path=None) -> list[dict]:
    """Hand-made grid rows: 2 methods x 3 training k x 3 seeds, with a k-sweep and a history."""
    rows = []
    for method, shift in (("baseline", 0.0), ("ratio", 0.05)):
        for k in (8, 16, 32):
            for seed in range(3):
                row = {"data": "planted", "method": method, "k": k, "seed": seed, "weight": 0.01,
                       "r2": 0.8 + shift + 0.001 * k + 0.01 * seed,
                       **{f"r2_x{f:g}": 0.5 + shift + 0.1 * f + 0.01 * seed + 0.001 * k for f in (0.25, 0.5, 1, 2, 4)}}
                if tmp_path is not None:
                    path = tmp_path / f"{method}-{k}-{seed}"
                    path.mkdir(parents=True)
                    history = {"step": [0, 50, 100], "dead": [0, 5 + seed, 10 + seed + 10 * shift],
                               "auxk": [0.1, 0.2, 0.3]}
                    (path / "history.json").write_text(json.dumps(history))
                    row["path"] = str(path)
                rows.append(row)
    return rows


def test_mean_std_over_seeds():
    stats = mean_std(grid(), "k", "r2")
    xs, means, stds, n = stats["ratio"]
    assert list(xs) == [8, 16, 32] and n == 3
    assert means[0] == pytest.approx(0.85 + 0.008 + 0.01)
    assert stds[0] == pytest.approx(np.std([0, 0.01, 0.02], ddof=1))


def test_long_turns_columns_into_rows():
    rows = long(grid()[:1], "r2_x", "k_factor", "r2_at")
    assert [r["k_factor"] for r in rows] == [0.25, 0.5, 1, 2, 4]
    assert rows[0]["r2_at"] == pytest.approx(0.5 + 0.025 + 0.008)
    with pytest.raises(SaeLiteError, match="no column"):
        long(grid(), "probe_m", "m", "probe")


def test_figures_have_labelled_axes(tmp_path):
    ax = plots.band(grid(), "k", "r2")
    assert ax.get_xlabel() == "training k" and ax.get_ylabel() == "test R²"
    assert len(ax.collections) == 2                               # one ± std band per method
    flipped = plots.band(grid()[::-1], "k", "r2")                 # ratio first: colours stay with methods
    assert [line.get_color() for line in flipped.get_lines()] == [plots.METHOD_COLOURS["ratio"],
                                                                    plots.METHOD_COLOURS["baseline"]]
    fig = plots.bars(grid(), ["r2", "r2_x4"])
    assert [a.get_ylabel() for a in fig.axes] == ["test R²", "test R² (variance-weighted) at k' = 4·k"]
    hist = plots.history(grid(tmp_path), "dead")
    assert hist.get_xlabel() == "training step" and len(hist.get_lines()) == 2
    labelled = [{**row, "variant": f"{row['method']}/{row['k']}"} for row in grid(tmp_path / "again")]
    steps = history_rows(labelled, keep=("variant",))
    assert len(steps) == 3 * len(labelled) and steps[0]["variant"] == "baseline/8"
    with_recipe = history_rows([{**row, "auxk": True} for row in labelled[:1]])
    assert with_recipe[0]["auxk"] is True and with_recipe[2]["auxk_loss"] == 0.3   # a loss never hides the recipe
    assert len(plots.history(labelled, "dead", by="variant").get_lines()) == 6
    with pytest.raises(SaeLiteError, match="lack"):
        plots.band(grid(), "k", "no_such_metric")


def test_static_figure_has_one_step_per_slider_value():
    rows = long(grid(), "r2_x", "k_factor", "r2_at")
    fig = widgets.static_figure(rows, "k_factor", "r2_at", slider="k", logx=True)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["8", "16", "32"]
    assert len(fig.data) == 3 * 2 * 2                             # values x methods x (band, line)
    for i, step in enumerate(steps):
        visible = step.args[0]["visible"]
        assert sum(visible) == 4
        shown = [trace for trace, v in zip(fig.data, visible) if v and trace.mode == "lines+markers"]
        expected = [mean_std([r for r in rows if r["k"] == (8, 16, 32)[i]], "k_factor", "r2_at")[m][1]
                    for m in ("baseline", "ratio")]
        assert np.allclose([t.y for t in shown], expected)
    assert fig.layout.xaxis.title.text == "inference k' / training k"
    html = widgets.static_html(fig)
    assert "sliders" in html


def test_live_callback_changes_the_data_fast():
    explorer = widgets.Explorer(grid(), "seed", "r2", slider="k")
    before = [line.get_ydata().copy() for line in explorer.ax.get_lines()]
    start = time.perf_counter()
    explorer.slider.value = 32
    elapsed = time.perf_counter() - start
    after = [line.get_ydata() for line in explorer.ax.get_lines()]
    assert len(after) == 2 and not np.allclose(before[0], after[0])
    assert np.allclose(after[0], [0.8 + 0.032 + 0.01 * s for s in range(3)])
    assert "k = 32" in explorer.ax.get_title()
    assert elapsed < 1.0, f"a slider move took {elapsed:.2f} s"
    assert "run this notebook" in explorer._repr_mimebundle_()["text/plain"]


def test_slider_over_a_missing_key_is_an_error():
    with pytest.raises(SaeLiteError, match="cannot slide"):
        widgets.static_figure(grid(), "k", "r2", slider="weight_decay")


def test_data_and_latent_pictures():
    from sae_lite.data import planted

    data = planted(n=256, d=16, n_atoms=40, n_classes=4, seed=0)
    fig = plots.data_overview(data)
    assert fig.axes[0].get_xlabel() == "planted atoms active in an input"
    codes = np.abs(data.codes[:, :6])                     # a "perfect" SAE: latents = the first atoms
    cards = plots.latent_cards(codes, data.atoms[:6], data, latents=[0, 3])
    assert "cos = 1.00" in cards.axes[1].get_title()
    with pytest.raises(SaeLiteError, match="planted"):
        plots.latent_cards(codes, data.atoms[:6], data.subset(np.arange(10)).__class__(x=data.x), [0])
    sweep = [{"method": "baseline", "weight": 0.0, "r2": 0.9}] + [
        {"method": "ratio", "weight": w, "r2": 0.9 - w} for w in (0.001, 0.01, 0.1)]
    panels = plots.sweep(sweep, ["r2"], tolerance=0.005)
    assert panels.axes[0].get_xscale() == "log" and panels.axes[0].get_ylabel() == "test R²"


def test_history_with_schedule_draws_each_run_the_schedule_and_the_hard_phase():
    from sae_lite.core.rules.softsae import SoftSAEConfig, schedule_table

    table = schedule_table(SoftSAEConfig(k_anneal=0.1, alpha_anneal=0.1, hard_fraction=0.2), d=64, k=16, total=100)
    assert table["k_target"][0] == 64 and table["k_target"][10] == table["k_target"][99] == 16
    assert table["hard"].index(True) == 80 and all(table["hard"][80:])
    runs = {"α = 1e-4": {"step": [25, 50, 75, 100], "dead": [0, 60, 110, 100]},
            "α = 1e-2": {"step": [25, 50, 75, 100], "dead": [0, 10, 20, 15]}}
    ax = plots.history_with_schedule(runs, table, "dead")
    assert [line.get_label() for line in ax.get_lines()] == list(runs)
    assert list(ax.get_lines()[1].get_ydata()) == [0, 10, 20, 15]
    twin = [other for other in ax.figure.axes if other is not ax][0]
    assert list(twin.get_lines()[0].get_ydata()) == table["k_target"]
    assert ax.patches and ax.patches[0].get_x() == 80                 # the hard phase, shaded from its first step
    assert plots.history_with_schedule(runs, table, right="alpha").figure.axes[1].get_yscale() == "log"
    with pytest.raises(SaeLiteError, match="no column 'l0'"):
        plots.history_with_schedule(runs, table, "l0")
    with pytest.raises(SaeLiteError, match="no column 'beta'"):
        plots.history_with_schedule(runs, table, right="beta")
