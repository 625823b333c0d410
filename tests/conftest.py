import pytest

from sae_lite.data import planted


@pytest.fixture(scope="session")
def small_planted():
    """A small planted data set (fast to train on)."""
    return planted(n=2048, d=32, n_atoms=96, n_classes=4, seed=1)
