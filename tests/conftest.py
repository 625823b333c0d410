import matplotlib
import pytest

from sae_lite.data import planted

matplotlib.use("Agg")  # the package's tests draw off screen (notebook kernels keep their inline backend)


@pytest.fixture(scope="session")
def small_planted():
    """A small planted data set (fast to train on)."""
    return planted(n=2048, d=32, n_atoms=96, n_classes=4, seed=1)
