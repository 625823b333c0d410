"""The idx file format of MNIST and Fashion-MNIST, gzip-compressed, read with numpy.

    images = read_idx("train-images-idx3-ubyte.gz")   # uint8 [60000, 28, 28]
    labels = read_idx("train-labels-idx1-ubyte.gz")   # uint8 [60000]

An idx file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order. Only unsigned bytes (type code
0x08, all that MNIST-style data sets use) are read. Every way a file can be wrong (not gzip,
truncated, another magic number, fewer or more bytes than its header promises) raises a
SaeLiteError that names the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from sae_lite.errors import SaeLiteError

UBYTE = 0x08


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """The uint8 array [d1, ..., dk] of a gzip'd idx file (k = ``ndim`` when given, else the header's)."""
    path = Path(path)
    data = _decompress(path)
    dims = _header(path, data, ndim)
    start = 4 + 4 * len(dims)
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - start != expected:
        raise SaeLiteError(f"{path} holds {len(data) - start} bytes of values but its header says "
                           f"{' x '.join(map(str, dims))} = {expected}; the file is damaged, fetch it again")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def idx_shape(path: str | os.PathLike, ndim: int | None = None) -> tuple[int, ...]:
    """The dimensions in the header of a gzip'd idx file (reads its first bytes only)."""
    path = Path(path)
    return _header(path, _decompress(path, 4 + 4 * 255), ndim)


def _decompress(path: Path, size: int = -1) -> bytes:
    """The first ``size`` decompressed bytes of ``path`` (all when -1)."""
    if not path.is_file():
        raise SaeLiteError(f"idx file {path} does not exist")
    try:
        with gzip.open(path) as f:
            return f.read(size)
    except (OSError, EOFError, zlib.error) as error:  # not gzip, truncated, corrupt
        raise SaeLiteError(f"{path} cannot be read as gzip ({type(error).__name__}: {error}); "
                           "the file is damaged or truncated, fetch it again") from None


def _header(path: Path, data: bytes, ndim: int | None) -> tuple[int, ...]:
    """The dimensions after a valid magic number; raises on another type, rank or a short header."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != UBYTE or (ndim is not None and data[3] != ndim):
        want = f"0x0000{UBYTE:02x}{ndim:02x}" if ndim is not None else f"0x0000{UBYTE:02x}.."
        raise SaeLiteError(f"{path} is not an idx file of unsigned bytes (magic number 0x{data[:4].hex() or 'empty'}, "
                           f"expected {want}); pass the original gzip'd idx files")
    rank = data[3]
    if len(data) < 4 + 4 * rank:
        raise SaeLiteError(f"{path} ends inside its header ({len(data)} bytes); the file is damaged, fetch it again")
    return tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=rank, offset=4))
