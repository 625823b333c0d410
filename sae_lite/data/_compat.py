"""Import torchvision (and so open_clip and timm) next to a CPU-only torch.

PyPI's torchvision wheel is a CUDA build. With a CPU-only torch its compiled ops (``torchvision._C``)
fail to load, which torchvision tolerates, except that it then registers fake kernels for
``torchvision::nms`` and ``torchvision::qnms`` unconditionally and dies with
``RuntimeError: operator torchvision::nms does not exist``. Nothing we use calls those ops, so
declaring their two schemas (without a kernel) is enough for the import to succeed.

`import_torchvision` does that only when the plain import fails with exactly this error, so on a
matching torch/torchvision pair it is a plain ``import torchvision``. Calling ``torchvision.ops.nms``
afterwards still fails (there is no kernel); the image models and transforms work.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_OPS = ("nms", "qnms")
_library: torch.library.Library | None = None  # held here: a Library unregisters its ops when collected


def import_torchvision() -> ModuleType:
    """``import torchvision``, declaring its two missing op schemas first when (and only when) needed.

    Idempotent. Call it before importing open_clip or timm.
    """
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error) or "does not exist" not in str(error):
            raise
        _forget_partial_import()
        _declare_missing_ops()
        import torchvision
    return torchvision


def _declare_missing_ops() -> None:
    global _library
    if _library is None:
        _library = torch.library.Library("torchvision", "FRAGMENT")
    for op in _OPS:
        if not hasattr(torch.ops.torchvision, op):
            _library.define(op + _SCHEMA)


def _forget_partial_import() -> None:
    """Drop the torchvision modules a failed import left behind, so the retry starts clean."""
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
