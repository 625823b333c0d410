"""The static slider (plotly, no kernel) moves when clicked in a headless Chromium.

Skipped where no Chromium is installed (Debian: ``apt-get install chromium``).
"""

import asyncio
import importlib.util
from pathlib import Path

import pytest

from sae_lite.book import widgets

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_sliders.py"
spec = importlib.util.spec_from_file_location("check_sliders", SCRIPT)
check_sliders = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_sliders)

pytestmark = pytest.mark.skipif(check_sliders.browser() is None, reason="no Chromium installed")


def page(path: Path, rows: list[dict]) -> Path:
    """A page with one static slider figure, as the book embeds it (plotly.js inline)."""
    figure = widgets.static_figure(rows, "k_factor", "r2", slider="k", logx=True)
    path.write_text("<html><body>" + figure.to_html(full_html=False, include_plotlyjs=True) + "</body></html>")
    return path


def rows(change: float) -> list[dict]:
    return [{"method": m, "k": k, "seed": 0, "k_factor": f, "r2": 0.5 + 0.1 * f + change * k + 0.05 * (m == "ratio")}
            for m in ("baseline", "ratio") for k in (8, 16, 32) for f in (0.5, 1, 2)]


def test_a_click_moves_the_slider_and_the_curves(tmp_path):
    moving, frozen = page(tmp_path / "moving.html", rows(0.001)), page(tmp_path / "frozen.html", rows(0.0))
    results = asyncio.run(check_sliders.check([moving, frozen], tmp_path, check_sliders.browser()))
    assert results[0]["moved"] and results[0]["active"] == [0, 2]
    assert not results[1]["moved"]                          # same curves at every step: the check fails
    assert (tmp_path / "moving-0-before.png").stat().st_size > 1000
    assert (tmp_path / "moving-0-after.png").read_bytes() != (tmp_path / "moving-0-before.png").read_bytes()


def test_a_page_without_figures_is_skipped_not_failed(tmp_path):
    plain = tmp_path / "plain.html"
    plain.write_text("<html><body><p>no figure here</p></body></html>")
    [result] = asyncio.run(check_sliders.check([plain], None, check_sliders.browser()))
    assert result["moved"] is None and "no slider figure" in result["why"]
