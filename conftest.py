"""Test-wide settings, read before any test or notebook (nbmake kernels inherit the environment)."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).parent
pytest_plugins = ("pytester",)   # tests/test_check_figures.py runs nbmake on a notebook of its own

os.environ.setdefault("SAE_LITE_PROFILE", "quick")     # CI and nbmake run the quick profile
os.environ.setdefault("HF_HUB_OFFLINE", "1")          # a missing weight fails in a second, not a minute
os.environ.setdefault("SAE_LITE_CACHE", str(ROOT / ".cache" / "sae-lite-test"))
# One BLAS/OpenMP thread per process: on a loaded 2-core machine a 600-step run took 172 s with
# torch's default 2 threads and 11 s with 1 (measured with four people's jobs running).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No MPLBACKEND here: the kernels must keep IPython's inline backend, or no figure is ever shown
# (an exported MPLBACKEND=Agg once emptied every figure of the book). The chapters say
# `%matplotlib inline` themselves, and the notebooks' figures are checked below.


def _load(name: str, path: Path):
    """The module in the file ``path`` (a script or a book extension: not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_configure(config):
    """Every notebook nbmake executes must also show an image for every code cell that draws
    (scripts/check_figures.py): a chapter that runs but displays no figure fails the test command.
    The kernel's messages are polled in slices (book/_ext/nbclient_poll.py)."""
    try:
        from nbmake import nb_result, pytest_items
    except ImportError:   # nbmake absent: no notebooks are collected
        return
    _load("nbclient_poll", ROOT / "book" / "_ext" / "nbclient_poll.py").patch()  # no stall on a missed wake-up
    check = _load("check_figures", ROOT / "scripts" / "check_figures.py")

    class FigureCheckingRun(pytest_items.NotebookRun):
        def execute(self):
            result = super().execute()
            silent = check.silent_cells(result.nb) if result.error is None else []
            if silent:
                sources = "\n\n".join(f"cell {i}:\n{result.nb.cells[i].source}" for i in silent)
                summary = f"{len(silent)} code cell(s) draw but show no image (scripts/check_figures.py)"
                result.error = nb_result.NotebookError(summary=summary, trace=f"{summary}\n\n{sources}",
                                                       failing_cell_index=silent[0])
            return result

    pytest_items.NotebookRun = FigureCheckingRun


#: At most this many test processes (`-n auto` in pyproject.toml): a notebook's grid already trains one
#: process per core (SAE_LITE_JOBS), so more test processes than this add memory, not speed.
MAX_TEST_PROCESSES = 4


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: no error where xdist is not loaded
def pytest_xdist_auto_num_workers(config):
    """How many processes pytest-xdist starts for ``-n auto``: one per usable core, at most
    `MAX_TEST_PROCESSES` (the README's time budget gives what it saved)."""
    from sae_lite.study.runner import usable_cores  # what the grids count too; imported here, when asked

    return max(1, min(usable_cores(), MAX_TEST_PROCESSES))


def pytest_collection_modifyitems(config, items):
    """A notebook gets one retry. Twice here (about 1 in 50 notebook executions) nbclient and its
    kernel both sat idle waiting for each other after a cell (a lost message, seen with ipykernel 6
    and 7); the per-cell timeout (`--nbmake-timeout`) turns that into a failure, the retry into a
    pass. A notebook that really fails, fails twice."""
    for item in items:
        if item.nodeid.endswith(".ipynb"):
            item.add_marker(pytest.mark.flaky(reruns=1))
