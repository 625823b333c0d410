"""Image sources: which images to embed, and the labels that travel with them.

    image_folder("imagenet/train")                       # ROOT/<class>/<image>: labels int64 [n]
    open_images("oi/validation", "oi/labels.csv")        # ROOT/<ImageID>.jpg: labels bool [n, C]
    ImageSource(None, labels, classes, meta, pixels=x)   # images in memory: uint8 [n, H, W(, 3)]
    select(source, 6000, seed=0)                         # a seeded, class-balanced subset

Listing a source of files reads no image. Images are decoded later, one by one, by
`source.dataset(preprocess)` (a torch Dataset; `ImageFiles` or `ImageArray`): a file that cannot
be read or decoded is reported, not raised, so that one corrupt JPEG does not stop an extraction.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from sae_lite.data.backbones import FITS
from sae_lite.errors import SaeLiteError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})


@dataclass(frozen=True)
class ImageSource:
    """Images to embed and what we know about them: files on disk, or pixels in memory.

    Attributes:
        paths: the n image files, in extraction order; None when the images are ``pixels``.
        labels: int64 [n] class ids, bool [n, C] multi-label, or None.
        classes: one name per class id / label column, or None.
        meta: how the source was read (kind, path, ...), JSON-serialisable.
        pixels: uint8 [n, H, W] (grey) or [n, H, W, 3] (RGB) images held in memory, or None.
        fit: how a backbone fits an image to its input: ``"crop"`` (its tag's resize and centre
            crop, for photos) or ``"whole"`` (the whole image resized to the input size, for images
            whose frame is the object, such as Fashion-MNIST's).
    """

    paths: list[Path] | None
    labels: np.ndarray | None
    classes: list[str] | None
    meta: dict
    pixels: np.ndarray | None = None
    fit: str = "crop"

    def __post_init__(self) -> None:
        if (self.paths is None) == (self.pixels is None):
            raise SaeLiteError("an ImageSource holds either paths or pixels, not both or neither")
        if self.pixels is not None and (self.pixels.dtype != np.uint8 or self.pixels.ndim not in (3, 4)
                                        or (self.pixels.ndim == 4 and self.pixels.shape[3] != 3)):
            raise SaeLiteError(f"pixels must be uint8 [n, H, W] or [n, H, W, 3], got {self.pixels.dtype} "
                               f"{self.pixels.shape}")
        if self.labels is not None and len(self.labels) != len(self):
            raise SaeLiteError(f"{len(self.labels)} labels for {len(self)} images; give one label row per image")
        if self.fit not in FITS:
            raise SaeLiteError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self.pixels)

    def dataset(self, preprocess: Callable) -> torch.utils.data.Dataset:
        """The images as a torch Dataset of `collate`-able items, preprocessed by ``preprocess``."""
        return ImageFiles(self.paths, preprocess) if self.paths is not None else ImageArray(self.pixels, preprocess)

    def describe(self, i: int) -> str:
        """Image ``i`` in words, for reports: its path, or its row in memory."""
        return str(self.paths[i]) if self.paths is not None else f"image {i} of {self.meta.get('kind', 'the array')}"

    def fingerprint(self) -> str:
        """A SHA-1 that changes with the images and their order: of the paths, or of the pixels."""
        digest = hashlib.sha1()
        if self.paths is not None:
            digest.update("\n".join(map(str, self.paths)).encode())
        else:
            digest.update(repr((self.pixels.dtype.str, self.pixels.shape)).encode())
            digest.update(np.ascontiguousarray(self.pixels).data)
        return digest.hexdigest()

    def take(self, index: np.ndarray) -> ImageSource:
        """The images at ``index`` (int [m]), with their labels; ``meta`` is kept as it is."""
        index = np.asarray(index, dtype=np.int64)
        return replace(self, paths=None if self.paths is None else [self.paths[i] for i in index],
                       pixels=None if self.pixels is None else self.pixels[index],
                       labels=None if self.labels is None else self.labels[index])


def select(source: ImageSource, limit: int | None, seed: int = 0) -> ImageSource:
    """A seeded subset of ``limit`` images, in the source's order (all of them when ``limit`` is None).

    With single labels (int [n]) the subset is class-balanced: classes get ``limit // C`` images
    each and the ``limit % C`` left over go to classes in a seeded order (a class with too few
    images gives all it has, the others make up for it). Otherwise it is a seeded random subset.
    The choice is recorded in ``meta["subset"]``.
    """
    n = len(source)
    if limit is None:
        return source
    if not 1 <= limit <= n:
        raise SaeLiteError(f"the limit must lie between 1 and the {n} images of the source, got {limit}")
    rng = np.random.default_rng(seed)
    balanced = source.labels is not None and source.labels.ndim == 1
    if balanced:  # each image's rank within its class, in a random order; the classes take turns
        classes, pos = np.unique(source.labels, return_inverse=True)
        order, rank = rng.permutation(n), np.empty(n, dtype=np.int64)
        for c in range(len(classes)):
            members = order[pos[order] == c]
            rank[members] = np.arange(len(members))
        key = rank * len(classes) + rng.permutation(len(classes))[pos]
        index = np.sort(np.argsort(key, kind="stable")[:limit])
    else:
        index = np.sort(rng.permutation(n)[:limit])
    subset = {"limit": limit, "seed": seed, "of": n, "kind": "class-balanced" if balanced else "random"}
    return replace(source.take(index), meta={**source.meta, "subset": subset})


def image_folder(root: str | os.PathLike) -> ImageSource:
    """``ROOT/<class>/<image>`` (the ImageNet layout), or a flat folder of images (no labels).

    The label of an image is the index of its class folder among all class folders, sorted by name
    (so a subset of ImageNet keeps the usual class ids); images are found recursively, hidden
    files and folders are ignored.
    """
    root = _existing_dir(root)
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class = [_list_images(d) for d in class_dirs]
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not any(per_class):
        if not loose:
            raise SaeLiteError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}; "
                               "expected ROOT/<class>/<image> or a folder of images")
        return ImageSource(sorted(loose), None, None, {"kind": "folder", "path": str(root)})
    if loose:
        raise SaeLiteError(f"{root} holds both class folders and {len(loose)} loose images (e.g. {loose[0].name}); "
                           "move the loose images into a class folder or elsewhere")
    labels = np.concatenate([np.full(len(files), c, dtype=np.int64) for c, files in enumerate(per_class)])
    return ImageSource([p for files in per_class for p in files], labels, [d.name for d in class_dirs],
                       {"kind": "class-folders", "path": str(root)})


def open_images(root: str | os.PathLike, labels_csv: str | os.PathLike,
                descriptions_csv: str | os.PathLike | None = None) -> ImageSource:
    """Open Images V7: ``ROOT/<ImageID>.jpg`` with the human-verified image-level labels.

    ``labels_csv`` has the columns ``ImageID,Source,LabelName,Confidence``; rows with Confidence 1
    are the positives. Labels are bool [n, C] over the C label ids positive on at least one image
    here (sorted); their names come from ``descriptions_csv`` (``LabelName,DisplayName``) when given.
    """
    root = _existing_dir(root)
    paths = _list_images(root)
    if not paths:
        raise SaeLiteError(f"no images in {root}; Open Images expects ROOT/<ImageID>.jpg")
    row_of = {p.stem: i for i, p in enumerate(paths)}
    pairs = _positive_labels(Path(labels_csv), row_of)
    if not pairs:
        raise SaeLiteError(f"none of the {len(paths)} images in {root} has a verified positive label in "
                           f"{labels_csv}; pass the image-level label CSV of the split these images come from")
    label_ids = sorted({label for _, label in pairs})
    column = {label: j for j, label in enumerate(label_ids)}
    labels = np.zeros((len(paths), len(label_ids)), dtype=bool)
    labels[[row for row, _ in pairs], [column[label] for _, label in pairs]] = True
    names = _display_names(Path(descriptions_csv)) if descriptions_csv else {}
    meta = {"kind": "openimages", "path": str(root), "labels_csv": str(Path(labels_csv).resolve()),
            "descriptions_csv": str(Path(descriptions_csv).resolve()) if descriptions_csv else None,
            "label_ids": label_ids, "images_without_labels": int((~labels.any(1)).sum())}
    return ImageSource(paths, labels, [names.get(label, label) for label in label_ids], meta)


def _existing_dir(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise SaeLiteError(f"image folder {root} does not exist or is not a directory")
    return root


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _positive_labels(labels_csv: Path, row_of: Mapping[str, int]) -> list[tuple[int, str]]:
    """(image row, label id) for each Confidence-1 row of an image in ``row_of``."""
    if not labels_csv.is_file():
        raise SaeLiteError(f"Open Images label file {labels_csv} does not exist")
    with labels_csv.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"ImageID", "LabelName", "Confidence"} - set(reader.fieldnames or ())
        if missing:
            raise SaeLiteError(f"{labels_csv} lacks the columns {sorted(missing)}; expected the Open Images "
                               "image-level labels (ImageID,Source,LabelName,Confidence)")
        return [(row_of[r["ImageID"]], r["LabelName"]) for r in reader
                if r["ImageID"] in row_of and _confidence(r, labels_csv) == 1.0]


def _confidence(row: dict, labels_csv: Path) -> float:
    try:
        return float(row["Confidence"])
    except (TypeError, ValueError):
        raise SaeLiteError(f"{labels_csv}: Confidence {row['Confidence']!r} of image {row['ImageID']} is not "
                           "a number; pass the unmodified Open Images label CSV") from None


def _display_names(descriptions_csv: Path) -> dict[str, str]:
    if not descriptions_csv.is_file():
        raise SaeLiteError(f"Open Images class descriptions {descriptions_csv} do not exist")
    with descriptions_csv.open(newline="") as f:
        return {row[0]: row[1] for row in csv.reader(f) if len(row) >= 2 and row[:2] != ["LabelName", "DisplayName"]}


class ImageFiles(torch.utils.data.Dataset):
    """Item i: (i, the preprocessed image float32 [3, H, W], None), or (i, None, why it is unreadable)."""

    def __init__(self, paths: list[Path], preprocess: Callable) -> None:
        self.paths, self.preprocess = paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as image:
                return i, self.preprocess(image.convert("RGB")), None
        except Exception as error:  # one bad file among a million must not stop the run
            return i, None, f"{type(error).__name__}: {error}"


class ImageArray(torch.utils.data.Dataset):
    """Item i: (i, image i of ``pixels`` (uint8 [n, H, W(, 3)]) as an RGB PIL image, preprocessed, None)."""

    def __init__(self, pixels: np.ndarray, preprocess: Callable) -> None:
        self.pixels, self.preprocess = pixels, preprocess

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, None]:
        from PIL import Image

        return i, self.preprocess(Image.fromarray(self.pixels[i]).convert("RGB")), None


def collate(items: list) -> tuple[torch.Tensor, torch.Tensor | None, list[tuple[int, str]]]:
    """A batch of `ImageFiles` or `ImageArray` items: (indices [b] of the readable images, their pixels [b, 3, H, W]
    or None when there are none, [(index, why)] of the unreadable ones)."""
    good = [(i, x) for i, x, _ in items if x is not None]
    bad = [(i, why) for i, x, why in items if x is None]
    batch = torch.stack([x for _, x in good]) if good else None
    return torch.tensor([i for i, _ in good], dtype=torch.int64), batch, bad
