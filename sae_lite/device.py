"""The one place a device name becomes a torch device (training and embedding alike), and the CPU cores
this process may use."""

from __future__ import annotations

import os

import torch

from sae_lite.errors import SaeLiteError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; any other name must be a device this torch has."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise SaeLiteError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SaeLiteError(f"device {name!r} asked for but this torch sees no CUDA GPU; use --device cpu or auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SaeLiteError(f"device {name!r} asked for but Apple MPS is not available; use --device cpu or auto")
    return device


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
