"""sae-lite: Top-k sparse autoencoders and their sparsity regularizers, small enough to teach.

The few names a user imports::

    from sae_lite import SAE, TrainConfig, train, load, load_run, metrics, penalties
    train_set, test_set = load("planted").split()
    sae, history = train(TrainConfig(k=16, penalty="ratio", weight=0.01), train_set)
    print(metrics.evaluate(sae, test_set))

The package's folders follow the data: data/ (where inputs come from) <- core/ (the model and its
training) <- evaluation/ (metrics, run directories, method cards) <- study/ (profiles, grids, claims,
the reproduction) <- book/ (what the chapters draw and say) <- cli.py (every subcommand), with
bench/ beside the command line. A module imports only from the folders to its left.
"""

from sae_lite.core import penalties
from sae_lite.core.config import TrainConfig
from sae_lite.core.sae import SAE
from sae_lite.core.train import train
from sae_lite.data import Dataset, digits, load, load_store, planted, write_store
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import metrics
from sae_lite.evaluation.runs import load_run
from sae_lite.version import __version__

__all__ = ["SAE", "Dataset", "SaeLiteError", "TrainConfig", "__version__", "digits", "load", "load_run",
           "load_store", "metrics", "penalties", "planted", "train", "write_store"]
