"""Fashion-MNIST (Xiao et al. 2017) as an image source: grey 28x28 garments in ten classes, in memory.

    fashion_mnist()                                  # train split: uint8 [60000, 28, 28], labels [60000]
    fashion_mnist("/data/fmnist", split="test")      # any folder holding the four files: [10000, 28, 28]
    python -m sae_lite embed --backbone efficientnet-lite0 --images fashion-mnist --limit 6000 --out STORE

The data are the four gzip'd idx files of the original release (`FILES`). The name
``fashion-mnist`` finds them, in this order: in the Debian/Ubuntu package ``dataset-fashion-mnist``
(`DEBIAN_DIR`); in the download cache (``$SAE_LITE_DOWNLOADS/fashion-mnist``, by default
``~/.cache/sae-lite/downloads/fashion-mnist``); else, with network access, torchvision's
``FashionMNIST(download=True)`` fetches them into that cache (into a temporary folder renamed into
place when all four are there). Offline that last step fails within seconds. A folder given instead
of the name is read as it is. Every file is checked (present, gzip, magic number, sizes) before
anything is embedded or written; any problem is one SaeLiteError that says how to get the data.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np

from sae_lite.data.idx import idx_shape, read_idx
from sae_lite.data.images import ImageSource
from sae_lite.errors import SaeLiteError
from sae_lite.files import write_dir

NAME = "fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
SPLITS = tuple(FILES)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CONNECT_TIMEOUT_S = 3.0


def fashion_mnist(where: str | os.PathLike = NAME, split: str = "train") -> ImageSource:
    """The images (uint8 [n, 28, 28]), labels (int64 [n]) and class names of one split.

    ``where``: ``"fashion-mnist"`` (found as the module docstring says) or a folder holding the
    four files. ``split``: ``"train"`` (60,000 images) or ``"test"`` (10,000).
    """
    if split not in SPLITS:
        raise SaeLiteError(f"Fashion-MNIST has the splits {', '.join(SPLITS)}, not {split!r}")
    try:
        folder = locate() if str(where) == NAME else _checked(Path(where).expanduser().resolve())
        images, labels = _read(folder, split)
    except SaeLiteError as error:
        raise SaeLiteError(f"Fashion-MNIST: {error}. {how_to_get()}") from None
    meta = {"kind": NAME, "path": str(folder), "split": split, "name": f"{NAME}-{split}",
            "files": list(FILES[split])}
    return ImageSource(None, labels, list(CLASSES), meta, pixels=images, fit="whole")


def holds_idx(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a directory holding any of the four Fashion-MNIST files."""
    folder = Path(folder).expanduser()
    return folder.is_dir() and any((folder / name).exists() for pair in FILES.values() for name in pair)


def how_to_get() -> str:
    """The three ways to get the data, in one sentence."""
    names = ", ".join(name for pair in FILES.values() for name in pair)
    return (f"Get the four files ({names}) one of three ways: `apt-get install dataset-fashion-mnist` "
            f"(Debian/Ubuntu, into {DEBIAN_DIR}); or pass any folder holding them as --images DIR; or run "
            f"`--images {NAME}` once with network access, so that torchvision downloads them into {cache_dir()}")


def cache_dir() -> Path:
    """Where a download goes: ``$SAE_LITE_DOWNLOADS/fashion-mnist`` (default ``~/.cache/sae-lite/downloads``)."""
    return Path(os.environ.get("SAE_LITE_DOWNLOADS") or Path.home() / ".cache" / "sae-lite" / "downloads") / NAME


def locate() -> Path:
    """The folder of the four checked files: Debian's, else the cache, else a fresh download."""
    for folder in (DEBIAN_DIR, cache_dir()):
        if holds_idx(folder):
            return _checked(folder)
    return _checked(download(cache_dir()))


def download(folder: Path) -> Path:
    """Fetch the four files with torchvision into ``folder`` (complete, or not created); fails fast offline."""
    from sae_lite.data._compat import import_torchvision

    datasets = import_torchvision().datasets
    host = datasets.FashionMNIST.mirrors[0].split("/")[2]
    if not _reachable(host):
        raise SaeLiteError(f"no files in {DEBIAN_DIR} or {folder}, and torchvision cannot download them: "
                           f"{host} cannot be reached (offline)")
    def fetch(tmp: Path) -> None:  # the four files, left at the top of the folder
        try:
            datasets.FashionMNIST(tmp, train=True, download=True)
        except Exception as error:  # network and checksum errors alike: nothing is kept
            raise SaeLiteError(f"torchvision's download into {folder} failed "
                               f"({type(error).__name__}: {str(error)[:200]})") from None
        for name in (name for pair in FILES.values() for name in pair):
            shutil.move(tmp / "FashionMNIST" / "raw" / name, tmp / name)
        shutil.rmtree(tmp / "FashionMNIST")

    write_dir(folder, fetch)
    return folder


def _reachable(host: str, port: int = 80) -> bool:
    """True when a TCP connection to ``host`` opens within `CONNECT_TIMEOUT_S` (no retries)."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def _checked(folder: Path) -> Path:
    """``folder`` if it holds all four files with valid headers whose sizes agree; raises otherwise."""
    if not folder.is_dir():
        raise SaeLiteError(f"{folder} does not exist or is not a directory")
    missing = [name for pair in FILES.values() for name in pair if not (folder / name).is_file()]
    if missing:
        raise SaeLiteError(f"{folder} lacks {', '.join(missing)}")
    for images_file, labels_file in FILES.values():
        _agree(folder, (images_file, labels_file),
               (idx_shape(folder / images_file, ndim=3), idx_shape(folder / labels_file, ndim=1)))
    return folder


def _read(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's images uint8 [n, H, W] and labels int64 [n], read whole and checked."""
    images_file, labels_file = FILES[split]
    images, labels = read_idx(folder / images_file, ndim=3), read_idx(folder / labels_file, ndim=1)
    _agree(folder, FILES[split], (images.shape, labels.shape))
    if labels.max(initial=0) >= len(CLASSES):
        raise SaeLiteError(f"{folder / labels_file} holds label {labels.max()}, but Fashion-MNIST has "
                           f"{len(CLASSES)} classes (0-{len(CLASSES) - 1}); the file is not Fashion-MNIST's")
    return images, labels.astype(np.int64)


def _agree(folder: Path, names: tuple[str, str], shapes: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    """Raise unless the images file and the labels file of one split hold the same number n > 0 of rows."""
    (n_images, *_), (n_labels,) = shapes
    if n_images != n_labels or n_images == 0:
        raise SaeLiteError(f"in {folder}, {names[0]} holds {n_images} images but {names[1]} holds {n_labels} "
                           "labels; the files do not belong together")
