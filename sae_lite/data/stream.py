"""Streaming an embedding store that may not fit in memory: shuffled chunks, read ahead.

An epoch visits the chunks of ``chunk`` consecutive rows in a seeded random order and, inside each
chunk, the rows in a seeded random order; batch ``step`` is the next ``batch_size`` rows of that
epoch order. So only the chunks of the current and the next batch are resident (at most three of
`CHUNK_BYTES` each), whatever the store's size, and any step can be recomputed (resume is exact).
The price is a weaker shuffle than a global permutation: a batch draws from one or two chunks.

Chunks are read with plain file reads into private buffers, not through the memory map, so the
store's pages never count as this process's resident memory; a thread reads the next chunk
while the current batches train.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from sae_lite.errors import SaeLiteError

CHUNK_BYTES = 128 << 20  # one resident chunk: 128 MiB (32768 rows of d = 1024 float32)


def chunk_rows(d: int, batch_size: int) -> int:
    """Rows per chunk: `CHUNK_BYTES` of float32 rows of dimension ``d``, and at least one batch."""
    return max(batch_size, CHUNK_BYTES // (4 * d))


def read_rows(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``x`` [n, d] as a float32 array in memory.

    A whole-file memory map (what `sae_lite.data.load_store` opens) is read with file reads, so the
    pages read do not stay mapped into this process; anything else is sliced.
    """
    if isinstance(x, StoreRows):
        return x[start:stop]
    if not _is_whole_file(x):
        return np.array(x[start:stop], dtype=np.float32)
    row_bytes = x.shape[1] * 4
    out = np.empty((stop - start, x.shape[1]), dtype=np.float32)
    view, done = memoryview(out).cast("B"), 0
    with open(x.filename, "rb", buffering=0) as file:
        file.seek(x.offset + start * row_bytes)
        while done < len(view):
            got = file.readinto(view[done:])
            if not got:
                raise SaeLiteError(f"{x.filename} ended early (row {start + done // row_bytes}); the store is damaged")
            done += got
    return out


class StoreRows:
    """The rows ``rows`` (sorted) of a store's memory map ``store`` [n, d], read on demand: the
    training split of a store that need not fit in memory (`sae_lite.data.Dataset.split`).

    Looks like a read-only [len(rows), d] float32 array: indexing returns the rows read (a copy).
    """

    ndim, dtype = 2, np.dtype(np.float32)

    def __init__(self, store: np.memmap, rows: np.ndarray) -> None:
        self.store, self.rows = store, np.asarray(rows, dtype=np.int64)
        if len(self.rows) and (np.diff(self.rows) <= 0).any():
            raise SaeLiteError("StoreRows needs strictly increasing row numbers; sort them first")
        self.shape = (len(self.rows), store.shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        rows = self.rows[index]
        if isinstance(index, slice) and len(rows):  # consecutive positions: one covering read
            return read_rows(self.store, int(rows[0]), int(rows[-1]) + 1)[rows - rows[0]]
        return take_rows(self.store, rows)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:].astype(dtype or np.float32, copy=False)


def take_rows(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` [m] of ``x`` [n, d] as a float32 array in memory; a store's are read with
    file reads, as in `read_rows` (indexing the memory map would map the pages around every row)."""
    if isinstance(x, StoreRows):
        return take_rows(x.store, x.rows[index])
    if not _is_whole_file(x):
        return np.array(x[index], dtype=np.float32)
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    out = np.empty((len(index), x.shape[1]), dtype=np.float32)
    row_bytes = x.shape[1] * 4
    with open(x.filename, "rb", buffering=0) as file:
        for i, row in enumerate(index.tolist()):
            if os.preadv(file.fileno(), [memoryview(out[i]).cast("B")], x.offset + row * row_bytes) != row_bytes:
                raise SaeLiteError(f"{x.filename} ended early (row {row}); the store is damaged")
    return out


def _is_whole_file(x: np.ndarray) -> bool:
    """True for a C-contiguous float32 memmap that covers its file from ``offset`` to the end."""
    filename = getattr(x, "filename", None)
    return (isinstance(x, np.memmap) and filename is not None and x.dtype == np.float32 and x.ndim == 2
            and x.flags.c_contiguous and os.path.getsize(filename) == x.offset + x.nbytes)


def chunk_order(n: int, chunk: int, seed: int, epoch: int) -> np.ndarray:
    """The rows of epoch ``epoch`` [n] int64: chunks in a seeded order, rows shuffled inside each."""
    rng = np.random.default_rng([seed, epoch, 1])
    starts = rng.permutation(np.arange(0, n, chunk))
    return np.concatenate([start + rng.permutation(min(chunk, n - start)) for start in starts])


class ChunkedBatches:
    """Batch ``step`` [batch_size, d] of a store ``x`` [n, d], read chunk by chunk.

    Args:
        x: the inputs, usually the memory map of `sae_lite.data.load_store`.
        batch_size: rows per batch (the global batch; `sae_lite.core.train.Batches` takes a shard of it).
        seed: seeds the chunk and row orders.
        chunk: rows per chunk (default: `chunk_rows`); at least ``batch_size``.
    """

    def __init__(self, x: np.ndarray, batch_size: int, seed: int, chunk: int | None = None) -> None:
        self.x, self.seed = x, seed
        self.n, self.d = x.shape
        self.batch_size = min(batch_size, self.n)
        self.chunk = chunk or chunk_rows(self.d, self.batch_size)
        if self.chunk < self.batch_size:
            raise SaeLiteError(f"a chunk ({self.chunk} rows) must hold a batch ({self.batch_size}); raise the chunk size")
        self.per_epoch = max(1, self.n // self.batch_size)
        self._orders: dict[int, np.ndarray] = {}
        self._chunks: dict[int, Future] = {}
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sae-lite-read")

    def rows(self, step: int) -> np.ndarray:
        """The store rows of batch ``step`` [batch_size] int64, in batch order."""
        epoch, offset = divmod(step, self.per_epoch)
        if epoch not in self._orders:
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = chunk_order(self.n, self.chunk, self.seed, epoch)
        return self._orders[epoch][offset * self.batch_size:(offset + 1) * self.batch_size]

    def __call__(self, step: int) -> np.ndarray:
        rows = self.rows(step)
        ids = rows // self.chunk
        wanted = np.unique(ids).tolist()
        keep = set(wanted) | set(np.unique(self.rows(step + 1) // self.chunk).tolist())
        for chunk_id in keep - set(self._chunks):  # the next batch's chunks are read ahead
            start = chunk_id * self.chunk
            self._chunks[chunk_id] = self._reader.submit(read_rows, self.x, start, min(start + self.chunk, self.n))
        self._chunks = {chunk_id: future for chunk_id, future in self._chunks.items() if chunk_id in keep}
        out = np.empty((len(rows), self.d), dtype=np.float32)
        for chunk_id in wanted:
            mask = ids == chunk_id
            out[mask] = self._chunks[chunk_id].result()[rows[mask] - chunk_id * self.chunk]
        return out

    def close(self) -> None:
        """Stop the read-ahead thread and drop the resident chunks."""
        self._reader.shutdown(wait=True, cancel_futures=True)
        self._chunks = {}
