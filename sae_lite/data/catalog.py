"""Data sets by name: the one place where a name in a data spec becomes a `Dataset`.

    load("planted", n=8192)                        # generated, with ground truth (`data.planted`)
    load("digits")                                 # scikit-learn's 8x8 digits, raw pixels
    load("fashion-mnist", images=10000, resolution=96)   # real images through a real backbone
    load("stores/in1k-clip")                       # the directory of any embedding store

``fashion-mnist`` is the book's real data: a seeded, class-balanced subset of ``images`` Fashion-MNIST
training images embedded by the pretrained EfficientNet-Lite0 at ``resolution`` px. It is embedded
once into a store in the results cache (`fashion_mnist_store`) and read from there afterwards; the
store keeps the images, so a chapter can show what a latent responds to.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from sae_lite.cache import cache_dir, entry_lock, set_aside, source_hash
from sae_lite.data import fashion_mnist
from sae_lite.data.datasets import Dataset, digits, planted
from sae_lite.data.embed import embed_images
from sae_lite.data.images import select
from sae_lite.data.store import load_store
from sae_lite.device import usable_cores
from sae_lite.errors import SaeLiteError

REAL = fashion_mnist.NAME
REAL_BACKBONE = "efficientnet-lite0"
#: The code that turns images into a store: a change to it makes new stores (and so new runs).
EMBEDDING_MODULES = tuple(f"data/{name}" for name in ("_compat.py", "backbones.py", "efficientnet.py", "embed.py",
                                                       "fashion_mnist.py", "idx.py", "images.py", "store.py"))


def load(name: str, **kwargs) -> Dataset:
    """A dataset by name: ``planted``, ``planted-signed``, ``digits``, ``fashion-mnist`` or a store's path."""
    if name == "planted":
        return planted(**kwargs)
    if name == "planted-signed":
        return planted(signed_fraction=kwargs.pop("signed_fraction", 0.25), **kwargs)
    if name == "digits":
        return digits()
    if name == REAL:
        return load_store(fashion_mnist_store(**kwargs))
    if Path(name).is_dir():
        return load_store(name)
    raise SaeLiteError(f"unknown data {name!r}: use 'planted', 'planted-signed', 'digits', '{REAL}' "
                       "or the directory of an embedding store")


def fashion_mnist_store(images: int, resolution: int, seed: int = 0) -> Path:
    """The store of ``images`` class-balanced Fashion-MNIST training images (seed ``seed``) embedded by the
    pretrained `REAL_BACKBONE` at ``resolution`` px: embedded on the first call, then reused.

    It lives in ``cache_dir()/stores/``, named by these settings and a hash of `EMBEDDING_MODULES`.
    A missing data set raises before anything is written (see `sae_lite.data.fashion_mnist`). Like a
    cached run, the store is embedded by one process at a time, and a damaged one is moved aside and
    embedded again (`sae_lite.cache.entry_lock`, `sae_lite.cache.set_aside`).
    """
    settings = {"images": images, "resolution": resolution, "seed": seed, "backbone": REAL_BACKBONE,
                "code": source_hash(EMBEDDING_MODULES)}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / "stores" / f"{REAL}-{images}-{resolution}px-{key}"
    if _whole(path):  # a store is renamed into place whole, so no lock is needed to read one
        return path
    source = select(fashion_mnist.fashion_mnist(REAL, "train"), images, seed)  # a missing data set raises here
    with entry_lock(path):
        if path.exists():
            try:
                load_store(path, check=False)  # another process embedded it meanwhile
                return path
            except SaeLiteError as error:
                set_aside(path, error)
        threads = torch.get_num_threads()
        torch.set_num_threads(usable_cores())
        try:  # the backbone on every core this process may use (a grid embeds before its workers start)
            embed_images(REAL_BACKBONE, source, path, resolution=resolution, overwrite=True, progress=False)
        finally:
            torch.set_num_threads(threads)
    return path


def _whole(store: Path) -> bool:
    """True when ``store`` exists with every file intact (`load_store` checks them from their headers)."""
    try:
        load_store(store, check=False)
    except SaeLiteError:
        return False
    return True
