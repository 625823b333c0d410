"""Data: where an SAE's inputs come from, and the one format they all end in (`Dataset`).

    datasets       `Dataset`; planted features with ground truth; scikit-learn's digits
    store          the embedding store on disk (`write_store`, `load_store`)
    stream         reading a store in shuffled chunks while training
    images, idx, fashion_mnist    image sources (folders, Open Images, Fashion-MNIST) and their files
    backbones, efficientnet, _compat    vision models by name, and their weights
    embed          images -> an embedding store, in resumable shards
    catalog        data sets by name (`load`), the book's real data embedded once into a cached store
    spec           `DataSpec`: a data set by name and its train/test split, and its JSON form
"""

from sae_lite.data.catalog import load
from sae_lite.data.datasets import Dataset, digits, planted
from sae_lite.data.store import STORE_FORMAT, load_store, write_store

__all__ = ["Dataset", "STORE_FORMAT", "digits", "load", "load_store", "planted", "write_store"]
