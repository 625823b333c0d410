"""The chunked reader: every row once per epoch, deterministic, the store's values, flat memory."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from sae_lite import SaeLiteError
from sae_lite.core.config import TrainConfig
from sae_lite.core.train import Batches, train
from sae_lite.data import load_store, stream, write_store


@pytest.fixture()
def store(tmp_path):
    x = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    return x, load_store(write_store(tmp_path / "store", x)).x


def test_read_rows_reads_the_store_by_file_reads(store):
    x, mapped = store
    assert stream._is_whole_file(mapped) and not stream._is_whole_file(mapped[10:])
    np.testing.assert_array_equal(stream.read_rows(mapped, 123, 456), x[123:456])
    np.testing.assert_array_equal(stream.read_rows(mapped[10:], 0, 5), x[10:15])  # a view is sliced
    np.testing.assert_array_equal(stream.take_rows(mapped, np.array([5, 0, 999, 5])), x[[5, 0, 999, 5]])
    np.testing.assert_array_equal(stream.take_rows(x, np.array([3, 1])), x[[3, 1]])


def test_every_row_once_per_epoch_and_deterministic(store):
    x, mapped = store
    batches = stream.ChunkedBatches(mapped, batch_size=100, seed=3, chunk=256)
    for epoch in range(2):
        steps = range(epoch * 10, (epoch + 1) * 10)
        rows = np.concatenate([batches.rows(step) for step in steps])
        assert sorted(rows) == list(range(1000))  # a permutation: each row exactly once
        for step in steps:
            np.testing.assert_array_equal(batches(step), x[batches.rows(step)])
    again = stream.ChunkedBatches(mapped, batch_size=100, seed=3, chunk=256)
    assert all(np.array_equal(again.rows(step), batches.rows(step)) for step in (0, 7, 13))
    assert not np.array_equal(batches.rows(0), batches.rows(10))  # epochs differ
    other = stream.ChunkedBatches(mapped, batch_size=100, seed=4, chunk=256)
    assert not np.array_equal(other.rows(0), batches.rows(0))
    batches.close()


def test_only_the_chunks_near_the_current_batch_stay_resident(store):
    _, mapped = store
    batches = stream.ChunkedBatches(mapped, batch_size=100, seed=0, chunk=128)
    for step in range(25):
        batches(step)
        assert len(batches._chunks) <= 3
        spread = np.unique(batches.rows(step) // 128)
        assert len(spread) <= 2  # a batch draws from one or two consecutive chunks of the order


def test_chunk_must_hold_a_batch(store):
    with pytest.raises(SaeLiteError, match="must hold a batch"):
        stream.ChunkedBatches(store[1], batch_size=100, seed=0, chunk=50)


def test_shards_of_a_streamed_batch_make_the_global_batch(store):
    x, mapped = store
    whole = Batches(mapped, 100, 0, torch.device("cpu"))(5)
    parts = [Batches(mapped, 100, 0, torch.device("cpu"), shard=(rank, 2))(5) for rank in range(2)]
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)


def test_training_on_a_store_is_deterministic(tmp_path, small_planted):
    dataset = load_store(write_store(tmp_path / "planted", small_planted.x))
    config = TrainConfig(k=4, n_latents=64, steps=20, batch_size=128, log_every=10)
    first, second = train(config, dataset, progress=False), train(config, dataset, progress=False)
    for p, q in zip(first.sae.parameters(), second.sae.parameters()):
        assert torch.equal(p, q)
    assert first.history == second.history


def test_the_training_split_of_a_store_stays_on_disk(store):
    x, mapped = store
    dataset = load_store(Path(mapped.filename).parent)
    train_set, test_set = dataset.split(0.2, seed=1)
    assert isinstance(train_set.x, stream.StoreRows) and isinstance(test_set.x, np.ndarray)
    rows = train_set.x.rows
    assert (len(rows), test_set.n) == (800, 200)
    np.testing.assert_array_equal(test_set.x, np.delete(x, rows, axis=0))  # the two parts are complementary
    np.testing.assert_array_equal(train_set.x[5:300], x[rows[5:300]])  # one covering read
    np.testing.assert_array_equal(train_set.x[[0, 7, 799]], x[rows[[0, 7, 799]]])
    np.testing.assert_array_equal(np.asarray(train_set.x), x[rows])
    batches = stream.ChunkedBatches(train_set.x, batch_size=100, seed=0, chunk=128)
    seen = np.concatenate([batches.rows(step) for step in range(8)])
    assert sorted(seen) == list(range(800))
    for step in (0, 3, 7):
        np.testing.assert_array_equal(batches(step), x[rows[batches.rows(step)]])
    batches.close()
    with pytest.raises(SaeLiteError, match="strictly increasing"):
        stream.StoreRows(mapped, np.array([3, 1]))


def test_training_on_a_store_split_streams_and_is_deterministic(tmp_path, small_planted):
    train_set, _ = load_store(write_store(tmp_path / "planted", small_planted.x)).split()
    config = TrainConfig(k=4, n_latents=64, steps=20, batch_size=128, log_every=10)
    assert Batches(train_set.x, 128, 0, torch.device("cpu")).streamed
    threads = threading.active_count()
    first, second = train(config, train_set, progress=False), train(config, train_set, progress=False)
    assert first.history == second.history and first.history["fvu"][-1] < 1
    assert threading.active_count() == threads  # the read-ahead threads are stopped
