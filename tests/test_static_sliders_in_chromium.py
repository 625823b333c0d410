"""The static slider (plotly, no kernel) moves when clicked in a headless Chromium.

The browser tests are skipped where no Chromium is installed (Debian: ``apt-get install chromium``);
the test of how the check stops the browser and removes its profile runs everywhere.
"""

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sae_lite.book import widgets

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_sliders.py"
spec = importlib.util.spec_from_file_location("check_sliders", SCRIPT)
check_sliders = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_sliders)

needs_chromium = pytest.mark.skipif(check_sliders.browser() is None, reason="no Chromium installed")


def page(path: Path, rows: list[dict]) -> Path:
    """A page with one static slider figure, as the book embeds it (plotly.js inline)."""
    figure = widgets.static_figure(rows, "k_factor", "r2", slider="k", logx=True)
    path.write_text("<html><body>" + figure.to_html(full_html=False, include_plotlyjs=True) + "</body></html>")
    return path


def rows(change: float) -> list[dict]:
    return [{"method": m, "k": k, "seed": 0, "k_factor": f, "r2": 0.5 + 0.1 * f + change * k + 0.05 * (m == "ratio")}
            for m in ("baseline", "ratio") for k in (8, 16, 32) for f in (0.5, 1, 2)]


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """The folder where the check creates Chromium's profile (and must remove it again)."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@needs_chromium
def test_a_click_moves_the_slider_and_the_curves(tmp_path, profiles):
    moving, frozen = page(tmp_path / "moving.html", rows(0.001)), page(tmp_path / "frozen.html", rows(0.0))
    results = asyncio.run(check_sliders.check([moving, frozen], tmp_path, check_sliders.browser()))
    assert results[0]["moved"] and results[0]["active"] == [0, 2]
    assert not results[1]["moved"]                          # same curves at every step: the check fails
    assert (tmp_path / "moving-0-before.png").stat().st_size > 1000
    assert (tmp_path / "moving-0-after.png").read_bytes() != (tmp_path / "moving-0-before.png").read_bytes()
    assert not list(profiles.iterdir())                      # the browser's profile is gone, whole


def test_stop_ends_the_whole_process_group_and_remove_retries(tmp_path):
    """The flake this guards: Chromium's helpers wrote into the profile after the browser exited, and
    removing it failed with 'Directory not empty'. A helper that ignores SIGTERM and keeps writing
    stands in for them; after `stop` nothing writes into the folder any more."""
    folder = tmp_path / "profile"
    folder.mkdir()
    helper = (f"import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              f"p = pathlib.Path({str(folder)!r}); [((p / str(i)).write_text('x'), time.sleep(0.01)) for i in range(10**6)]")
    process = subprocess.Popen(["sh", "-c", f"{sys.executable} -c \"{helper}\" & exec sleep 60"],
                               start_new_session=True)
    try:
        while len(list(folder.iterdir())) < 3:
            time.sleep(0.01)
        started = time.monotonic()
        check_sliders.stop(process, timeout=5.0)
        assert process.returncode is not None and time.monotonic() - started < 5
        written = len(list(folder.iterdir()))
        time.sleep(0.3)
        assert len(list(folder.iterdir())) == written          # the helper is gone too
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)             # never leave the helper running
        process.wait()
    check_sliders.remove(folder)
    assert not folder.exists()
    check_sliders.remove(folder)                               # already gone: nothing to do


@needs_chromium
def test_a_page_without_figures_is_skipped_not_failed(tmp_path, profiles):
    plain = tmp_path / "plain.html"
    plain.write_text("<html><body><p>no figure here</p></body></html>")
    [result] = asyncio.run(check_sliders.check([plain], None, check_sliders.browser()))
    assert result["moved"] is None and "no slider figure" in result["why"]
    assert not list(profiles.iterdir())
