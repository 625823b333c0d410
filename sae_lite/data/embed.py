"""Images → an embedding store: a vision backbone run over an image source, in resumable shards.

    embed_images("clip-vit-l-14", image_folder("imagenet/val"), "stores/in1k-val-clip")
    python -m sae_lite embed --backbone clip-vit-l-14 --images imagenet/val --out stores/in1k-val-clip
    python -m sae_lite embed --backbone efficientnet-lite0 --images fashion-mnist --limit 6000 --out stores/fmnist

The images (files, or pixels in memory) are decoded by a torch DataLoader and embedded in batches (on the GPU in bf16/fp16
autocast when there is one, else on the CPU in fp32: the same code). Every ``shard_size`` images
the embeddings go to ``OUT.partial/shard-*.npy`` and are recorded in ``OUT.partial/progress.json``;
running the same extraction again after an interruption resumes at the first unrecorded shard.
At the end the shards become the store ``OUT`` (`sae_lite.data.write_store`: written aside and
renamed, so a directory named OUT is always complete) and ``OUT.partial`` is removed. Peak disk
use is about three times the store. Unreadable images are skipped, counted and named in the
store's meta.json (with the backbone, tag, weights, resolution, preprocessing, source, counts, date
and package version). A source held in memory (Fashion-MNIST) also leaves its images in the store
(images.npy), so that a reader can see what a latent responds to.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from sae_lite.data import fashion_mnist
from sae_lite.data.backbones import WEIGHT_SOURCES, LoadedBackbone, check_resolution, get_backbone, load_backbone
from sae_lite.data.datasets import Dataset
from sae_lite.data.images import ImageSource, collate, image_folder, open_images, select
from sae_lite.data.store import RECREATE, write_store
from sae_lite.device import resolve_device
from sae_lite.errors import SaeLiteError
from sae_lite.files import damaged, load_npy, read_json, save_npy, write_json
from sae_lite.version import __version__

PARTIAL_FORMAT = "sae-lite-partial/2"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def embed_images(backbone: str, source: ImageSource | str | os.PathLike, out: str | os.PathLike, *,
                 weights: str = "pretrained", tag: str | None = None, resolution: int | None = None,
                 batch_size: int = 64, device: str = "auto", precision: str = "auto",
                 num_workers: int | None = None, shard_size: int = 4096, overwrite: bool = False,
                 progress: bool = True, reference_backbone: str | None = None) -> Path:
    """Embed every image of ``source`` with ``backbone`` into the store ``out``; returns its path.

    ``source``: an `ImageSource` or a folder (read by `image_folder`). ``weights``/``tag``/
    ``resolution``: see `sae_lite.data.backbones.load_backbone` (the source's ``fit`` says how an
    image is fitted to the input). ``precision="auto"``: bf16 (else fp16) autocast on CUDA,
    fp32 on the CPU. ``num_workers`` (decoding processes) defaults to min(8, CPUs) on CUDA and 0
    on the CPU. Re-running an interrupted call resumes it; ``overwrite`` replaces ``out`` and an
    ``OUT.partial`` left by a different extraction. ``reference_backbone``: also embed the images with
    this backbone (same weights choice, its own default resolution) into the store's ``reference.npy``,
    the separate reference of Pach et al.'s monosemanticity (their default: CLIP ViT-B/32,
    ``clip-vit-b-32``); it is written first as the store ``OUT.reference``, then moved in.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise SaeLiteError(f"{out} already exists; choose another --out or pass --overwrite")
    if batch_size < 1 or shard_size < 1 or (num_workers is not None and num_workers < 0):
        raise SaeLiteError(f"batch size and shard size must be >= 1 and workers >= 0, "
                           f"got {batch_size}, {shard_size} and {num_workers}")
    spec = get_backbone(backbone)
    reference, reference_meta = None, {}
    if reference_backbone is not None:
        reference_store = embed_images(reference_backbone, source, out.with_name(out.name + ".reference"),
                                       weights=weights, batch_size=batch_size, device=device, precision=precision,
                                       num_workers=num_workers, shard_size=shard_size, overwrite=overwrite,
                                       progress=progress)
        reference = np.load(reference_store / "embeddings.npy")
        reference_meta = {"reference": f"reference.npy ({reference_backbone}, {weights} weights)",
                          "reference_backbone": reference_backbone, "reference_d": int(reference.shape[1])}
    if weights not in WEIGHT_SOURCES:
        raise SaeLiteError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    resolution = check_resolution(backbone, resolution)
    dev = resolve_device(device)
    precision = _choose_precision(precision, dev)
    source = source if isinstance(source, ImageSource) else image_folder(source)
    partial = out.with_name(out.name + ".partial")
    config = _config(backbone, weights, tag or spec.tag, resolution, precision, source, shard_size)
    state = _resumable(partial, config, overwrite)  # checked before any work
    loaded = load_backbone(backbone, weights, tag, resolution=resolution, fit=source.fit)
    loaded.module.to(dev)
    state = state or _start_partial(partial, config)
    n = len(source)
    shards = [range(i, min(i + shard_size, n)) for i in range(0, n, shard_size)]
    workers = num_workers if num_workers is not None else (min(8, os.cpu_count() or 1) if dev.type == "cuda" else 0)
    _extract(loaded, source, shards, state, partial, batch_size, dev, precision, workers, progress)
    skipped = [entry for s in range(len(shards)) for entry in state["shards"][str(s)]["skipped"]]
    if len(skipped) == n:
        raise SaeLiteError(f"none of the {n} images could be read (e.g. {skipped[0][0]}: {skipped[0][1]}); "
                           "check the files, then re-run with --overwrite")
    x, index = _consolidate(partial, state, len(shards))
    labels = None if source.labels is None else source.labels[index]
    images = None if source.pixels is None else source.pixels[index]
    if reference is not None and len(reference) != len(x):
        raise SaeLiteError(f"{reference_backbone} read {len(reference)} images but {backbone} read {len(x)}; the "
                           "reference must have one row per embedding: fix the unreadable files and re-run with --overwrite")
    write_store(out, x, labels, {**_store_meta(loaded, source, precision, skipped), **reference_meta},
                overwrite=overwrite, images=images, reference=reference)
    del x
    shutil.rmtree(partial)
    if reference is not None:
        shutil.rmtree(out.with_name(out.name + ".reference"))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} of {n} images that could not be read, e.g. {skipped[0][0]} "
                      f"({skipped[0][1]}); they are listed in {out / 'meta.json'}", stacklevel=2)
    return out


def check_backbone(store: Dataset | Mapping | str | os.PathLike, backbone: str, weights: str | None = None) -> None:
    """Raise SaeLiteError unless ``store`` (a Dataset, its meta, or a store directory) holds embeddings
    of ``backbone`` (and, when ``weights`` is given, with those weights: "pretrained" or "random")."""
    if isinstance(store, Dataset):
        meta, where = store.meta or {}, f"data {store.name!r}"
    elif isinstance(store, Mapping):
        meta, where = store, "the store"
    else:
        meta_file = Path(store) / "meta.json"
        meta, where = (read_json(meta_file, RECREATE) if meta_file.exists() else {}), str(store)
    found = meta.get("backbone")
    if found != backbone:
        held = f"embeddings of backbone {found!r}" if found else "no backbone embeddings"
        raise SaeLiteError(f"{where} holds {held}, but {backbone!r} was asked; embed the images with "
                           f"`python -m sae_lite embed --backbone {backbone} ...` or pass the matching store")
    if weights is not None and meta.get("weights") != weights:
        raise SaeLiteError(f"{where} holds {backbone!r} embeddings with {meta.get('weights')!r} weights, but "
                           f"{weights!r} weights were asked; re-embed with --weights {weights}")


# --------------------------------------------------------------------------------------------
# Settings.
# --------------------------------------------------------------------------------------------

def _choose_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise SaeLiteError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _config(backbone: str, weights: str, tag: str, resolution: int, precision: str, source: ImageSource,
            shard_size: int) -> dict:
    """What must match for the shards of an interrupted run to be reused (the images themselves
    are identified by a hash: of the file paths, or of the pixels held in memory)."""
    return {"format": PARTIAL_FORMAT, "backbone": backbone, "weights": weights, "tag": tag,
            "resolution": resolution, "fit": source.fit, "precision": precision, "source": source.meta,
            "n_images": len(source), "images_sha1": source.fingerprint(), "shard_size": shard_size}


# --------------------------------------------------------------------------------------------
# Extraction, in resumable shards.
# --------------------------------------------------------------------------------------------

def _resumable(partial: Path, config: dict, overwrite: bool) -> dict | None:
    """The progress of an interrupted run of the same ``config``, or None; raises if ``partial`` holds
    another extraction's shards or damaged ones (unless ``overwrite``, which discards them)."""
    progress = partial / "progress.json"
    if not progress.exists():
        return None
    fix = f"delete {partial}, or pass --overwrite to embed from the start"
    try:
        state = read_json(progress, fix)
        if state.get("config") == config:
            _check_shards(partial, state, fix)
            return state
    except SaeLiteError:
        if overwrite:
            return None
        raise
    if not overwrite:
        old = state.get("config") if isinstance(state.get("config"), dict) else {}
        differ = sorted(k for k in config.keys() | old.keys() if old.get(k) != config.get(k))
        raise SaeLiteError(f"{partial} holds shards of a different extraction (differs in: {', '.join(differ)}); "
                           "delete it, or pass --overwrite to start over")
    return None


def _check_shards(partial: Path, state: dict, fix: str) -> None:
    """Raise unless every shard progress.json records is whole: its embeddings float32 [n, d] (one d for
    all), its image indices [n] (n as recorded), both readable .npy files."""
    shards = state.get("shards")
    if not isinstance(shards, dict) or not all(isinstance(entry, dict) and isinstance(entry.get("n"), int)
                                               and isinstance(entry.get("skipped"), list) for entry in shards.values()):
        raise damaged(partial / "progress.json", "does not record its shards as {n, skipped}", fix)
    dims = set()
    for shard, entry in sorted(shards.items()):
        name = f"shard-{int(shard):05d}" if shard.isdigit() else shard
        x = load_npy(partial / f"{name}.npy", fix, mmap=True)
        index = load_npy(partial / f"{name}.index.npy", fix, mmap=True)
        if x.dtype != np.float32 or x.ndim != 2 or len(x) != entry["n"]:
            raise damaged(partial / f"{name}.npy", f"holds {x.dtype} {x.shape}, but progress.json records "
                                                    f"{entry['n']} float32 embeddings", fix)
        if not np.issubdtype(index.dtype, np.integer) or index.shape != (entry["n"],):
            raise damaged(partial / f"{name}.index.npy", f"holds {index.dtype} {index.shape}, but progress.json "
                                                          f"records {entry['n']} image indices", fix)
        dims |= {x.shape[1]} if len(x) else set()
    if len(dims) > 1:
        raise damaged(partial, f"holds shards of different widths {sorted(dims)}", fix)


def _start_partial(partial: Path, config: dict) -> dict:
    """A fresh, empty ``partial`` directory with its progress.json."""
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    state = {"config": config, "shards": {}}
    write_json(partial / "progress.json", state)
    return state


def _extract(loaded: LoadedBackbone, source: ImageSource, shards: list[range], state: dict, partial: Path,
             batch_size: int, device: torch.device, precision: str, num_workers: int, progress: bool) -> None:
    """Embed every shard not yet recorded in ``state``, saving each as soon as its last batch is done."""
    from tqdm.auto import tqdm

    todo = [(s, r) for s, r in enumerate(shards) if str(s) not in state["shards"]]
    plan = [(s, r[i:i + batch_size], i + batch_size >= len(r)) for s, r in todo for i in range(0, len(r), batch_size)]
    if not plan:
        return
    loader = torch.utils.data.DataLoader(source.dataset(loaded.preprocess), batch_sampler=[list(b) for _, b, _ in plan],
                                         collate_fn=collate, num_workers=num_workers, pin_memory=device.type == "cuda")
    done = sum(len(shards[int(s)]) for s in state["shards"])
    bar = tqdm(total=len(source), initial=done, unit="img", disable=not progress, desc=loaded.meta["backbone"])
    embeddings, index, skipped = [], [], []
    for (shard, batch, last), (ok, pixels, bad) in zip(plan, loader):
        if pixels is not None:
            embeddings.append(_forward(loaded, pixels, device, precision))
            index.append(ok.numpy())
        skipped += [(source.describe(i), why) for i, why in bad]
        bar.update(len(batch))
        if last:
            _save_shard(partial, shard, embeddings, index, skipped, state)
            embeddings, index, skipped = [], [], []
    bar.close()


def _forward(loaded: LoadedBackbone, pixels: torch.Tensor, device: torch.device, precision: str) -> np.ndarray:
    """Embeddings float32 [b, d] of images [b, 3, H, W]; autocast to half precision unless fp32."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        z = loaded.embed(pixels.to(device, non_blocking=True))
    z = z.float().cpu().numpy()
    if not np.isfinite(z).all():
        raise SaeLiteError(f"backbone {loaded.meta['backbone']!r} produced NaN/Inf in {precision}; "
                           "re-run with --precision fp32 --overwrite")
    return z


def _save_shard(partial: Path, shard: int, embeddings: list[np.ndarray], index: list[np.ndarray],
                skipped: list[tuple[str, str]], state: dict) -> None:
    """Write one finished shard, then record it in progress.json (so a recorded shard is complete)."""
    x = np.concatenate(embeddings) if embeddings else np.zeros((0, 0), dtype=np.float32)
    save_npy(partial / f"shard-{shard:05d}.npy", x.astype(np.float32))
    save_npy(partial / f"shard-{shard:05d}.index.npy", np.concatenate(index) if index else np.zeros(0, np.int64))
    state["shards"][str(shard)] = {"n": len(x), "skipped": skipped}
    write_json(partial / "progress.json", state)


def _consolidate(partial: Path, state: dict, n_shards: int) -> tuple[np.ndarray, np.ndarray]:
    """All shards as one float32 [m, d] memory map (in ``partial``) and the image indices [m] it holds."""
    counts = [state["shards"][str(s)]["n"] for s in range(n_shards)]
    d = next(np.load(partial / f"shard-{s:05d}.npy", mmap_mode="r").shape[1] for s in range(n_shards) if counts[s])
    x = np.lib.format.open_memmap(partial / "embeddings.npy", mode="w+", dtype=np.float32, shape=(sum(counts), d))
    start = 0
    for s in range(n_shards):
        if counts[s]:
            x[start:start + counts[s]] = np.load(partial / f"shard-{s:05d}.npy", mmap_mode="r")
            start += counts[s]
    x.flush()
    return x, np.concatenate([np.load(partial / f"shard-{s:05d}.index.npy") for s in range(n_shards)])


def _store_meta(loaded: LoadedBackbone, source: ImageSource, precision: str, skipped: list) -> dict:
    """The provenance that goes into the store's meta.json (write_store adds n, d and label_kind)."""
    name = source.meta.get("name") or Path(source.meta["path"]).name
    return {**loaded.meta, "name": f"{name}-{loaded.meta['backbone']}",
            "precision": precision, "source": source.meta, "classes": source.classes,
            "images": len(source), "skipped": len(skipped),
            "skipped_files": [f"{path}: {why}" for path, why in skipped[:100]],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "sae_lite_version": __version__}


def open_source(images: str, split: str | None = None, limit: int | None = None, seed: int = 0,
                openimages_labels: str | None = None, openimages_classes: str | None = None) -> ImageSource:
    """The `ImageSource` that ``embed --images`` names, then a subset of ``limit`` images: Fashion-MNIST
    (the name ``fashion-mnist``, a folder holding any of its files, or any folder with a ``split``),
    Open Images (with a labels CSV), or a folder of images."""
    is_fashion = images == fashion_mnist.NAME or fashion_mnist.holds_idx(images) or split is not None
    if openimages_classes and not openimages_labels:
        raise SaeLiteError("--openimages-classes needs --openimages-labels")
    if is_fashion:
        source = fashion_mnist.fashion_mnist(images, split or "train")
    elif openimages_labels:
        source = open_images(images, openimages_labels, openimages_classes)
    else:
        source = image_folder(images)
    return select(source, limit, seed)
