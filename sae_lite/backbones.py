"""Vision backbones by name: the model, its preprocessing and the embedding the papers use.

    loaded = load_backbone("clip-vit-l-14")                  # the default pretrained tag
    loaded = load_backbone("vit-tiny-16", weights="random")   # same architecture, random weights
    z = loaded.embed(torch.stack([loaded.preprocess(img)]))   # [1, d]

open_clip and timm are imported only when a backbone is resolved. Weights come from the Hugging
Face cache (``HF_HOME``; downloaded there when online), from a local checkpoint file given as
the tag, or nowhere (``weights="random"``). When they cannot be had, `load_backbone` raises a
SaeLiteError naming the backbone and the ways to supply them, before building anything; with
``HF_HUB_OFFLINE=1`` that takes a fraction of a second (no network retries).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from sae_lite.errors import SaeLiteError

WEIGHTS = ("pretrained", "random")


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
    """

    library: str
    arch: str
    tag: str
    dim: int
    embedding: str
    hub: tuple[str, tuple[str, ...]]


_CLIP = "projected image embedding, model.encode_image(x) (not normalised)"
_SIGLIP = "pooled image embedding (attention-pool head), model.encode_image(x) (not normalised)"
_CLS = "CLS token after the final LayerNorm, model.forward_head(model.forward_features(x), pre_logits=True)"

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
}


class LoadedBackbone(NamedTuple):
    """A backbone ready to run, in eval mode on the CPU (move ``module`` to a device yourself)."""

    module: torch.nn.Module
    preprocess: Callable  # PIL image -> float32 [3, H, W]
    embed: Callable[[torch.Tensor], torch.Tensor]  # images [B, 3, H, W] -> embeddings [B, d]
    meta: dict  # backbone, library, arch, weights, tag, checkpoint, dim, embedding


def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name``; a SaeLiteError listing the known names otherwise."""
    if name not in BACKBONES:
        raise SaeLiteError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def load_backbone(name: str, weights: str = "pretrained", tag: str | None = None) -> LoadedBackbone:
    """Build backbone ``name`` with its preprocessing.

    ``tag`` (default: the registry's) is a pretrained tag of the architecture or the path of a
    local checkpoint file (a state dict; the preprocessing is then the default tag's).
    ``weights="pretrained"`` loads the tag's weights; ``weights="random"`` builds the same
    architecture initialised with seed 0 and loads nothing.
    """
    spec = get_backbone(name)
    if weights not in WEIGHTS:
        raise SaeLiteError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    tag = tag or spec.tag
    own_file = Path(tag).is_file()
    preprocess_tag = spec.tag if own_file else _check_tag(name, spec, tag)
    checkpoint = None if weights == "random" else tag if own_file else _fetch(name, spec, tag)
    build = _build_open_clip if spec.library == "open_clip" else _build_timm
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module, preprocess, embed = build(spec, preprocess_tag, checkpoint)
    meta = {"backbone": name, "library": spec.library, "arch": spec.arch, "weights": weights, "tag": tag,
            "checkpoint": checkpoint, "dim": spec.dim,
            "embedding": spec.embedding, "preprocess": f"{spec.library} eval transform of tag {preprocess_tag!r}"}
    return LoadedBackbone(module.eval().requires_grad_(False), preprocess, embed, meta)


def _libraries():
    """open_clip and timm, imported on first use (after making torchvision importable)."""
    from sae_lite._compat import import_torchvision

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
    """The local path of the tag's weights (from the cache, or downloaded); fails fast when offline."""
    offline = _offline()
    try:
        repo, names, revision = (*spec.hub, None) if tag == spec.tag else _hub_location(spec, tag)
        return _hub_file(repo, list(names), revision, offline)
    except Exception as error:  # hub, network and file errors all mean: no weights here
        why = ("offline (HF_HUB_OFFLINE is set or the hub is unreachable) and they are not in the Hugging Face "
               "cache" if offline else f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}")
        raise SaeLiteError(
            f"no weights for backbone {name!r} ({spec.library} {spec.arch}, tag {tag!r}): {why}. Supply them "
            f"one of three ways: fetch them once with network access into the Hugging Face cache (HF_HOME) "
            f"this machine reads; or pass a local checkpoint file as --tag PATH; or use --weights random "
            f"(same architecture, random weights: for smoke tests only)") from error


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


def _build_open_clip(spec: Backbone, tag: str, checkpoint: str | None):
    """The image tower of an open_clip model (the text tower is dropped) and its eval transform."""
    open_clip, _ = _libraries()
    cfg = open_clip.get_pretrained_cfg(spec.arch, tag)
    model, _, preprocess = open_clip.create_model_and_transforms(
        spec.arch, pretrained=checkpoint, load_weights=checkpoint is not None, pretrained_text=False,
        force_quick_gelu=cfg.get("quick_gelu", False), image_mean=cfg.get("mean"), image_std=cfg.get("std"),
        image_interpolation=cfg.get("interpolation"), image_resize_mode=cfg.get("resize_mode"))
    visual = model.visual  # model.encode_image(x) == model.visual(x) when not normalised
    return visual, preprocess, visual


def _build_timm(spec: Backbone, tag: str, checkpoint: str | None):
    """A timm model without its classifier, and its eval transform."""
    _, timm = _libraries()
    overlay = None
    if checkpoint:  # load this file, whatever the tag's default source (.npz: the original big_vision format)
        overlay = {"file": checkpoint, "source": "", "custom_load": Path(checkpoint).suffix == ".npz"}
    model = timm.create_model(f"{spec.arch}.{tag}", pretrained=checkpoint is not None, num_classes=0,
                              pretrained_cfg_overlay=overlay)
    preprocess = timm.data.create_transform(**timm.data.resolve_model_data_config(model), is_training=False)
    return model, preprocess, lambda x: model.forward_head(model.forward_features(x), pre_logits=True)
