"""Files written whole or not at all, and read only when whole: the package's one way to write, and
its one way to read a JSON or .npy file that may be damaged.

Everything goes first to a temporary sibling of its destination, which is then renamed over it
(``os.replace``, atomic on one file system), so a reader never sees half a file and an interrupted
write leaves only the old version (or nothing) behind.

A file damaged anyway (a full disk, an interrupted copy, an edit by hand) is reported by `damaged`:
one `SaeLiteError` line naming the file, what is wrong with it and what to do.

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
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from sae_lite.errors import SaeLiteError


def damaged(path: str | os.PathLike, problem: str, fix: str) -> SaeLiteError:
    """The error for a damaged file: ``PATH: PROBLEM; FIX`` on one line."""
    return SaeLiteError(" ".join(f"{path}: {problem}; {fix}".split()))


def read_json(path: str | os.PathLike, fix: str, kind: type = dict) -> dict | list:
    """The JSON value of ``path`` (of type ``kind``), or a `damaged` error saying ``fix``: when the file
    is missing, empty, not UTF-8 JSON, or holds another type."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise damaged(path, "is missing", fix) from None
    except (OSError, UnicodeDecodeError) as error:
        raise damaged(path, f"cannot be read ({error})", fix) from None
    if not text.strip():
        raise damaged(path, "is empty", fix)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise damaged(path, f"is not valid JSON ({error})", fix) from None
    if not isinstance(value, kind):
        raise damaged(path, f"holds a JSON {type(value).__name__}, not a {kind.__name__}", fix)
    return value


def load_npy(path: str | os.PathLike, fix: str, mmap: bool = False) -> np.ndarray:
    """The array in the .npy file ``path`` (a read-only memory map with ``mmap``), or a `damaged` error
    saying ``fix``: when the file is missing, empty, has no .npy header, holds Python objects, or is
    shorter or longer than its header says. Only the header is read to check it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            if size == 0:
                raise damaged(path, "is empty", fix)
            version = np.lib.format.read_magic(file)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(file)
            offset = file.tell()
    except FileNotFoundError:
        raise damaged(path, "is missing", fix) from None
    except (OSError, ValueError, SyntaxError, TypeError) as error:
        raise damaged(path, f"is not a .npy file ({' '.join(str(error).split())})", fix) from None
    if dtype.hasobject:
        raise damaged(path, f"holds Python objects ({dtype}), not numbers", fix)
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise damaged(path, f"has {size} bytes but its header ({dtype} {shape}) needs {expected}: "
                            f"{'truncated' if size < expected else 'trailing bytes'}", fix)
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def load_tensors(path: str | os.PathLike, fix: str, expected: Mapping[str, torch.Tensor],
                 optional: tuple[str, ...] = (), source: str = "the configuration") -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``, checked to have the names, shapes and dtypes of
    ``expected`` (e.g. a freshly built model's ``state_dict()``; names starting with a prefix in
    ``optional`` may be absent), or a `damaged` error saying ``fix``; ``source`` names where the
    expected shapes come from."""
    path = Path(path)
    if not path.is_file():
        raise damaged(path, "is missing", fix)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise damaged(path, f"is not a readable safetensors file ({error})", fix) from None
    unknown = sorted(tensors.keys() - expected.keys())
    absent = sorted(name for name in expected.keys() - tensors.keys() if not name.startswith(optional))
    if unknown or absent:
        raise damaged(path, f"holds other tensors than {source} needs (differs in: {', '.join(unknown + absent)})", fix)
    for name, value in tensors.items():
        if value.shape != expected[name].shape or value.dtype != expected[name].dtype:
            raise damaged(path, f"holds {name} as {value.dtype} {tuple(value.shape)}, but {source} needs "
                                f"{expected[name].dtype} {tuple(expected[name].shape)}", fix)
    return tensors


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
