"""Files written whole or not at all: the package's one way to write, for every file and directory.

Everything goes first to a temporary sibling of its destination, which is then renamed over it
(``os.replace``, atomic on one file system), so a reader never sees half a file and an interrupted
write leaves only the old version (or nothing) behind.
"""

from __future__ import annotations

import json
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


def write_json(path: str | os.PathLike, value, indent: int | None = 2) -> Path:
    """``value`` as JSON (floats for numpy scalars), atomically."""
    return write_atomic(path, json.dumps(value, indent=indent, default=float) + "\n")


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
