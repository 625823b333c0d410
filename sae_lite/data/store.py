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

import os
from pathlib import Path

import numpy as np

from sae_lite.data.datasets import Dataset, check_finite
from sae_lite.errors import SaeLiteError
from sae_lite.files import damaged, load_npy, read_json, write_dir, write_json

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
        write_json(tmp / "meta.json", meta, default=str)   # strict JSON: a NaN becomes null

    return write_dir(path, write, overwrite=True)


def load_store(path: str | os.PathLike, check: bool = True) -> Dataset:
    """Open an embedding store; ``x`` stays on disk as a read-only memory map.

    With ``check``, every row is scanned for NaN/Inf (in chunks). Raises SaeLiteError, one line naming
    the file, when the directory is not a store or a file of it is damaged: missing, empty, truncated,
    not JSON / .npy, of the wrong shape or dtype, or disagreeing with meta.json or the embeddings.
    Only the arrays' headers are read to check them.
    """
    path = Path(path)
    meta_file, x_file, labels_file = path / "meta.json", path / "embeddings.npy", path / "labels.npy"
    if not meta_file.exists() and not x_file.exists():
        raise SaeLiteError(f"{path} is not an embedding store (needs meta.json and embeddings.npy); "
                           "create one with `python -m sae_lite embed` or sae_lite.data.write_store")
    meta = read_json(meta_file, RECREATE)
    n, d = meta.get("n"), meta.get("d")
    if not (isinstance(n, int) and isinstance(d, int) and n >= 1 and d >= 1):
        raise damaged(meta_file, f"gives n={n!r} and d={d!r}, not two positive whole numbers", RECREATE)
    if meta.get("label_kind") not in (None, "single", "multi"):
        raise damaged(meta_file, f"gives label_kind={meta.get('label_kind')!r}, not null, 'single' or 'multi'", RECREATE)
    x = load_npy(x_file, RECREATE, mmap=True)
    if x.dtype != np.float32 or x.shape != (n, d):
        raise damaged(x_file, f"holds {x.dtype} {x.shape} but meta.json says float32 ({n}, {d})", RECREATE)
    labels = _load_labels(labels_file, meta.get("label_kind"), n)
    images = _load_images(path / "images.npy", n)
    reference = _load_reference(path / "reference.npy", n)
    if check:
        check_finite(x, str(x_file))
        if reference is not None:
            check_finite(reference, str(path / "reference.npy"))
    return Dataset(x=x, labels=labels, name=meta.get("name", path.name), meta=meta, images=images, ref=reference)


def _load_reference(reference_file: Path, n: int) -> np.ndarray | None:
    """A store's reference.npy as a read-only memory map (None when absent), checked against its n rows."""
    if not reference_file.exists():
        return None
    reference = load_npy(reference_file, RECREATE, mmap=True)
    if reference.ndim != 2 or reference.dtype != np.float32 or len(reference) != n:
        raise damaged(reference_file, f"holds {reference.dtype} {reference.shape} but a store of n={n} needs "
                                      f"float32 [{n}, D]", RECREATE)
    return reference


#: What to do about a damaged store.
RECREATE = "the store is damaged: re-create it (`python -m sae_lite embed ... --overwrite`, or sae_lite.data.write_store)"


def _load_labels(labels_file: Path, kind: str | None, n: int) -> np.ndarray | None:
    """A store's labels.npy (None when absent), checked against meta.json's label_kind and its n rows."""
    if kind is None:
        if labels_file.exists():
            raise damaged(labels_file, "exists but meta.json gives no label_kind (single or multi)", RECREATE)
        return None
    labels = load_npy(labels_file, RECREATE)
    shape = "[n]" if kind == "single" else "[n, C]"
    if labels.shape[:1] != (n,) or labels.ndim != (1 if kind == "single" else 2):
        raise damaged(labels_file, f"has shape {labels.shape} but meta.json says {kind} labels {shape} with n={n}", RECREATE)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise damaged(labels_file, f"holds {labels.dtype}, not integer or bool labels", RECREATE)
    return labels


def _load_images(images_file: Path, n: int) -> np.ndarray | None:
    """A store's images.npy as a read-only memory map (None when absent), checked against its n rows."""
    if not images_file.exists():
        return None
    images = load_npy(images_file, RECREATE, mmap=True)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != n or images.shape[3:] not in ((), (3,)):
        raise damaged(images_file, f"holds {images.dtype} {images.shape} but a store of n={n} needs uint8 "
                                   f"[{n}, H, W] or [{n}, H, W, 3]", RECREATE)
    return images


def _label_kind(labels: np.ndarray | None) -> str | None:
    if labels is None:
        return None
    return "multi" if np.asarray(labels).ndim == 2 else "single"
