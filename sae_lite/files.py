"""Files written whole or not at all: the package's one way to write, for every file and directory.

Everything goes first to a temporary sibling of its destination, which is then renamed over it
(``os.replace``, atomic on one file system), so a reader never sees half a file and an interrupted
write leaves only the old version (or nothing) behind.

JSON is strict (RFC 8259, what jq and JavaScript read): a number that is not finite (a metric that
could not be computed, NaN) is written as ``null`` (`strict_json`); readers that compute with a
value map ``null`` back to NaN (`nan_for_null`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sae_lite.errors import SaeLiteError


def write_atomic(path: str | os.PathLike, content: str | bytes | Callable[[Path], None]) -> Path:
    """Write the file ``path``: ``content`` as text or bytes, or ``content(tmp)`` writing a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            if not callable(content):
                file.write(content.encode() if isinstance(content, str) else content)
        if callable(content):
            content(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _plain(value):
    """``value`` with numpy scalars and arrays as Python numbers and lists, tuples as lists, and every
    non-finite float (NaN, +-inf) as None."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strict_json(value, indent: int | None = 2, default: Callable = float) -> str:
    """``value`` as strict JSON: NaN and infinities become ``null``, numpy scalars plain numbers; any
    other object is converted by ``default`` (float: a tensor's scalar; str: a path, for provenance)."""
    return json.dumps(_plain(value), indent=indent, allow_nan=False, default=lambda other: _plain(default(other)))


def nan_for_null(values: dict) -> dict:
    """A flat dict read from strict JSON with each ``null`` back as NaN (a metric not computed)."""
    return {key: math.nan if value is None else value for key, value in values.items()}


def write_json(path: str | os.PathLike, value, indent: int | None = 2, default: Callable = float) -> Path:
    """``value`` as strict JSON (`strict_json`), atomically."""
    return write_atomic(path, strict_json(value, indent, default) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``array`` in numpy's .npy format, atomically (under exactly this name)."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as file:
            np.save(file, array)
    return write_atomic(path, write)


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path``; raises before any work if it exists and may not be replaced."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise SaeLiteError(f"{path} already exists; choose another --out or pass --overwrite")
    return path


def write_dir(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """The directory ``path``: ``write(tmp)`` fills a fresh temporary sibling, which then replaces ``path``."""
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
