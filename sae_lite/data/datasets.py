"""Datasets: the `Dataset` type, planted features and scikit-learn digits.

Every source ends as a `Dataset`: a float32 matrix ``x`` [n, d] with optional labels, a reference
embedding ``ref`` [n, D] (used by the monosemanticity score), optional thumbnails of the embedded
images and, for planted data, the ground truth. Embedding stores are read by `sae_lite.data.store`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sae_lite.data.stream import StoreRows, read_rows
from sae_lite.errors import SaeLiteError


@dataclass(frozen=True)
class Dataset:
    """Inputs to an SAE, and what we know about them.

    Attributes:
        x: float32 [n, d], the inputs (an ``np.memmap`` for a large store).
        labels: int64 [n] class ids, bool [n, C] multi-label, or None.
        ref: float32 [n, D] reference embedding for monosemanticity, or None (then ``x`` is used).
        atoms: float32 [M, d] planted ground-truth atoms, or None.
        codes: float32 [n, M] planted ground-truth coefficients, or None.
        n_active: int64 [n] number of planted atoms active in each input, or None.
        name: a short name for tables and method cards.
        meta: provenance (backbone, source, ...), JSON-serialisable.
        images: uint8 [n, H, W] or [n, H, W, 3], the image behind each input (a store's
            images.npy), or None.
    """

    x: np.ndarray
    labels: np.ndarray | None = None
    ref: np.ndarray | None = None
    atoms: np.ndarray | None = None
    codes: np.ndarray | None = None
    n_active: np.ndarray | None = None
    name: str = "data"
    meta: dict | None = None
    images: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.x.shape[0] == 0:
            raise SaeLiteError(f"x must be a non-empty [n, d] matrix, got shape {self.x.shape}; "
                               "reshape your inputs to one row per sample")
        n = self.x.shape[0]
        for field in ("labels", "ref", "codes", "n_active", "images"):
            value = getattr(self, field)
            if value is not None and len(value) != n:
                raise SaeLiteError(f"{field} has {len(value)} rows but x has {n}; give one {field} row per input")
        images = self.images
        if images is not None and (images.dtype != np.uint8 or images.ndim not in (3, 4)
                                   or (images.ndim == 4 and images.shape[3] != 3)):
            raise SaeLiteError(f"images must be uint8 [n, H, W] or [n, H, W, 3], got {images.dtype} {images.shape}; "
                               "pass 8-bit pixels, one image per row of x")
        if not isinstance(self.x, (np.memmap, StoreRows)):  # a store is scanned by load_store(check=True)
            check_finite(self.x, "x")

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def d(self) -> int:
        return self.x.shape[1]

    @property
    def reference(self) -> np.ndarray:
        """The reference embedding for the monosemanticity score: ``ref`` if given, else ``x``."""
        return self.x if self.ref is None else self.ref

    def subset(self, index: np.ndarray, on_disk: bool = False) -> Dataset:
        """The inputs at ``index`` (a copy, in memory), with every per-input field alongside.

        With ``on_disk`` (and ``index`` sorted), a store's embeddings stay on disk and are read when
        used (`sae_lite.data.stream.StoreRows`): training then streams them.
        """
        take = lambda a: None if a is None else np.asarray(a[index])  # noqa: E731
        if on_disk and isinstance(self.x, np.memmap):
            x = StoreRows(self.x, index)
        else:
            x = np.asarray(self.x[index], dtype=np.float32)
        return replace(self, x=x, labels=take(self.labels), ref=take(self.ref), codes=take(self.codes),
                       n_active=take(self.n_active), images=take(self.images))

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A deterministic train/test split: the same (n, fraction, seed) always gives the same split.

        A store's training part stays on disk (training streams it); its test part is read into memory.
        """
        if not 0 < test_fraction < 1:
            raise SaeLiteError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        order = np.random.default_rng(seed).permutation(self.n)
        n_test = max(1, int(round(self.n * test_fraction)))
        return self.subset(np.sort(order[n_test:]), on_disk=True), self.subset(np.sort(order[:n_test]))


def check_finite(x: np.ndarray, name: str, chunk: int = 1 << 16) -> None:
    """Raise if ``x`` holds NaN or Inf; reads a memory map in chunks (file reads), never all at once."""
    for start in range(0, x.shape[0], chunk):
        block = read_rows(x, start, min(start + chunk, x.shape[0])) if isinstance(x, np.memmap) else x[start:start + chunk]
        if not np.isfinite(block).all():
            row = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise SaeLiteError(f"{name} holds NaN or Inf (first at row {row}); clean or drop those rows first")


# --------------------------------------------------------------------------------------------
# Planted features: synthetic data with known ground truth.
# --------------------------------------------------------------------------------------------

def planted(n: int = 8192, d: int = 64, n_atoms: int = 192, n_classes: int = 8, class_atoms: int = 4,
            class_prob: float = 0.85, rate_range: tuple[float, float] = (0.5, 8.0),
            magnitude: tuple[float, float] = (0.5, 1.5), signed_fraction: float = 0.0,
            noise: float = 0.02, seed: int = 0) -> Dataset:
    """Inputs built from ``n_atoms`` > ``d`` unit atoms in superposition, with known codes.

    Each input belongs to one of ``n_classes`` classes. Its class's ``class_atoms`` characteristic
    atoms fire each with probability ``class_prob``; on top, a *variable* number of background
    atoms fire: a Poisson count whose rate is drawn per input uniformly from ``rate_range``, so the
    number of active atoms ranges from 1 to ~20. Magnitudes are uniform in ``magnitude``; a
    fraction ``signed_fraction`` of the atoms are bidirectional (their coefficient gets a random
    sign: "left <-> right"). Gaussian noise of std ``noise`` is added to every coordinate.

    Returns a Dataset with x [n, d], labels [n], ref = codes [n, n_atoms] (the ground-truth codes are
    the reference embedding), atoms [n_atoms, d] and n_active [n].
    """
    if n_atoms <= d:
        raise SaeLiteError(f"n_atoms ({n_atoms}) must exceed d ({d}) for superposition; raise n_atoms")
    if n_classes * class_atoms > n_atoms:
        raise SaeLiteError("n_classes * class_atoms exceeds n_atoms; use fewer classes or more atoms")
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((n_atoms, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    signed = rng.random(n_atoms) < signed_fraction
    class_of = rng.integers(n_classes, size=n)
    own = np.arange(n_classes * class_atoms).reshape(n_classes, class_atoms)
    background = np.arange(n_classes * class_atoms, n_atoms)

    active = np.zeros((n, n_atoms), dtype=bool)
    active[np.arange(n)[:, None], own[class_of]] = rng.random((n, class_atoms)) < class_prob
    counts = np.minimum(rng.poisson(rng.uniform(*rate_range, size=n)), len(background))
    for i in np.flatnonzero(counts):
        active[i, rng.choice(background, size=counts[i], replace=False)] = True
    empty = ~active.any(1)  # every input carries at least one atom
    active[empty, own[class_of[empty], 0]] = True

    coef = rng.uniform(*magnitude, size=(n, n_atoms))
    coef = np.where(signed & (rng.random((n, n_atoms)) < 0.5), -coef, coef)
    codes = np.where(active, coef, 0.0)
    x = codes @ atoms + noise * rng.standard_normal((n, d))
    return Dataset(x=x.astype(np.float32), labels=class_of.astype(np.int64), ref=codes.astype(np.float32),
                   atoms=atoms.astype(np.float32), codes=codes.astype(np.float32),
                   n_active=active.sum(1).astype(np.int64),
                   name="planted-signed" if signed_fraction > 0 else "planted",
                   meta={"source": "planted", "seed": seed, "n_atoms": n_atoms, "d": d, "reference": "planted codes",
                         "signed_atoms": int(signed.sum())})


def digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), each pixel standardised.

    Pixels that are constant over the data set stay 0. The reference embedding is the raw pixels
    (0-16); ``images`` are the same pixels as uint8 [n, 8, 8] (0-255), to be drawn.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = bunch.data.astype(np.float32)
    std = raw.std(0)
    x = (raw - raw.mean(0)) / np.where(std > 0, std, 1.0)
    images = np.round(raw * (255 / 16)).astype(np.uint8).reshape(-1, 8, 8)
    return Dataset(x=x.astype(np.float32), labels=bunch.target.astype(np.int64), ref=raw, name="digits",
                   meta={"source": "sklearn.datasets.load_digits", "classes": [str(c) for c in range(10)],
                         "reference": "raw pixels"},
                   images=images)
