"""The embedding store: embeddings on disk, with their labels, images and provenance.

A store (written by `sae_lite.data.embed` or by `write_store`) is a directory::

    embeddings.npy   float32 [n, d], read through a memory map (a store may exceed RAM)
    labels.npy       optional: int64 [n] (one class each) or bool [n, C] (multi-label)
    images.npy       optional: uint8 [n, H, W] (grey) or [n, H, W, 3] (RGB), the embedded images
                     themselves (Fashion-MNIST: [n, 28, 28]), to show what a latent responds to
    reference.npy    optional: float32 [n, D], a reference embedding of the same images by a separate
                     encoder (``embed --reference-backbone``), loaded as ``Dataset.ref``: the reference of
                     Pach et al.'s monosemanticity (ExplainableML/sae-for-vlm scripts/monosemanticity_score.sh
                     embeds with CLIP ViT-B/32); meta.json then names it (``reference``)
    meta.json        {"format": "sae-lite-store/1", "n", "d", "label_kind", "classes", ...provenance}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sae_lite.data.datasets import Dataset, check_finite
from sae_lite.errors import SaeLiteError
from sae_lite.files import write_dir

STORE_FORMAT = "sae-lite-store/1"


def write_store(path: str | os.PathLike, x: np.ndarray, labels: np.ndarray | None = None,
                meta: dict | None = None, overwrite: bool = False, images: np.ndarray | None = None,
                reference: np.ndarray | None = None) -> Path:
    """Write an embedding store atomically: a temporary directory is renamed into place at the end.

    ``x`` is float32 [n, d]; ``labels`` int [n] or bool [n, C]; ``meta`` extra provenance;
    ``images`` uint8 [n, H, W] or [n, H, W, 3], the embedded images (thumbnails) row by row;
    ``reference`` float32 [n, D], the same inputs embedded by a separate encoder (see the module docstring).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise SaeLiteError(f"{path} already exists; choose another directory or pass overwrite=True")
    x = np.asarray(x, dtype=np.float32)
    images = None if images is None else np.asarray(images)
    reference = None if reference is None else np.asarray(reference, dtype=np.float32)
    dataset = Dataset(x=x, labels=labels, images=images, ref=reference)  # validates shapes before any write
    if reference is not None:
        check_finite(reference, "reference")
    meta = dict(meta or {})
    meta.update(format=STORE_FORMAT, n=dataset.n, d=dataset.d, label_kind=_label_kind(labels))

    def write(tmp: Path) -> None:
        np.save(tmp / "embeddings.npy", x)
        if labels is not None:
            np.save(tmp / "labels.npy", np.asarray(labels))
        if images is not None:
            np.save(tmp / "images.npy", images)
        if reference is not None:
            np.save(tmp / "reference.npy", reference)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))

    return write_dir(path, write, overwrite=True)


def load_store(path: str | os.PathLike, check: bool = True) -> Dataset:
    """Open an embedding store; ``x`` stays on disk as a read-only memory map.

    With ``check``, every row is scanned for NaN/Inf (in chunks). Raises SaeLiteError when a file is
    missing or the arrays disagree with ``meta.json``.
    """
    path = Path(path)
    meta_file, x_file, labels_file = path / "meta.json", path / "embeddings.npy", path / "labels.npy"
    if not meta_file.is_file() or not x_file.is_file():
        raise SaeLiteError(f"{path} is not an embedding store (needs meta.json and embeddings.npy); "
                           "create one with `python -m sae_lite embed` or sae_lite.data.write_store")
    meta = json.loads(meta_file.read_text())
    x = np.load(x_file, mmap_mode="r")
    if x.ndim != 2 or x.dtype != np.float32 or (meta.get("n"), meta.get("d")) != x.shape:
        raise SaeLiteError(f"{x_file} has shape {x.shape} ({x.dtype}) but meta.json says "
                           f"n={meta.get('n')}, d={meta.get('d')} (float32); the store is damaged, re-create it")
    labels = np.load(labels_file) if labels_file.is_file() else None
    if labels is not None and len(labels) != x.shape[0]:
        raise SaeLiteError(f"{labels_file} has {len(labels)} rows but the store holds {x.shape[0]} embeddings; "
                           "the store is damaged, re-create it")
    if (labels is None) != (meta.get("label_kind") is None):
        raise SaeLiteError(f"{path}: meta.json label_kind={meta.get('label_kind')!r} disagrees with "
                           f"labels.npy being {'absent' if labels is None else 'present'}; re-create the store")
    images = _load_images(path / "images.npy", x.shape[0])
    reference = _load_reference(path / "reference.npy", x.shape[0])
    if check:
        check_finite(x, str(x_file))
        if reference is not None:
            check_finite(reference, str(path / "reference.npy"))
    return Dataset(x=x, labels=labels, name=meta.get("name", path.name), meta=meta, images=images, ref=reference)


def _load_reference(reference_file: Path, n: int) -> np.ndarray | None:
    """A store's reference.npy as a read-only memory map (None when absent), checked against its n rows."""
    if not reference_file.is_file():
        return None
    reference = np.load(reference_file, mmap_mode="r")
    if reference.ndim != 2 or reference.dtype != np.float32 or len(reference) != n:
        raise SaeLiteError(f"{reference_file} has shape {reference.shape} ({reference.dtype}) but the store holds "
                           f"{n} embeddings; it must be float32 [{n}, D]: re-create the store")
    return reference


def _load_images(images_file: Path, n: int) -> np.ndarray | None:
    """A store's images.npy as a read-only memory map (None when absent), checked against its n rows."""
    if not images_file.is_file():
        return None
    images = np.load(images_file, mmap_mode="r")
    if len(images) != n:
        raise SaeLiteError(f"{images_file} has {len(images)} rows but the store holds {n} embeddings; "
                           "the store is damaged, re-create it")
    return images


def _label_kind(labels: np.ndarray | None) -> str | None:
    if labels is None:
        return None
    return "multi" if np.asarray(labels).ndim == 2 else "single"
