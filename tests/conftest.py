import matplotlib
import pytest

from sae_lite.data import planted

matplotlib.use("Agg")  # the package's tests draw off screen (notebook kernels keep their inline backend)


@pytest.fixture(scope="session")
def small_planted():
    """A small planted data set (fast to train on)."""
    return planted(n=2048, d=32, n_atoms=96, n_classes=4, seed=1)


@pytest.fixture(autouse=True)
def one_training_process(monkeypatch):
    """The package's tests train their small grids in this process (``SAE_LITE_JOBS=1``): starting worker
    processes would cost more than the runs. A test may set another value; the notebooks, executed
    after the tests, keep the default (one process per core)."""
    monkeypatch.setenv("SAE_LITE_JOBS", "1")
