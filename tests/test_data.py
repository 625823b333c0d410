import json

import numpy as np
import pytest

from sae_lite import SaeLiteError
from sae_lite.data import Dataset, digits, load_store, planted, write_store
from sae_lite.data.catalog import load


def test_planted_has_ground_truth_and_varying_complexity():
    data = planted(n=1000, seed=0)
    assert data.x.dtype == np.float32 and data.x.shape == (1000, 64)
    assert np.allclose(np.linalg.norm(data.atoms, axis=1), 1, atol=1e-5)
    assert data.atoms.shape[0] > data.d  # superposition
    np.testing.assert_array_equal(data.n_active, (data.codes != 0).sum(1))
    assert data.n_active.min() >= 1 and data.n_active.max() >= 3 * data.n_active.min() + 6
    assert np.all(data.codes >= 0)
    recon = data.codes @ data.atoms
    assert np.abs(recon - data.x).std() < 0.05
    np.testing.assert_array_equal(planted(n=1000, seed=0).x, data.x)


def test_planted_signed_variant_has_negative_coefficients():
    data = planted(n=500, signed_fraction=0.3)
    assert (data.codes < 0).any() and data.meta["signed_atoms"] > 0


def test_digits_are_standardised():
    data = digits()
    assert data.x.shape == (1797, 64) and set(np.unique(data.labels)) == set(range(10))
    varying = data.x.std(0) > 0
    np.testing.assert_allclose(data.x[:, varying].std(0), 1, atol=1e-4)


def test_split_is_deterministic_and_disjoint():
    data = planted(n=500)
    train, test = data.split(0.2, seed=3)
    assert train.n + test.n == 500 and test.n == 100
    train2, _ = data.split(0.2, seed=3)
    np.testing.assert_array_equal(train.x, train2.x)
    assert train.labels.shape == (400,) and test.codes.shape[0] == 100


def test_dataset_rejects_nan_and_wrong_label_length():
    x = np.ones((4, 3), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(SaeLiteError, match="NaN or Inf"):
        Dataset(x=x)
    with pytest.raises(SaeLiteError, match="labels has 3 rows"):
        Dataset(x=np.ones((4, 3), np.float32), labels=np.zeros(3))


def test_store_round_trip_is_memory_mapped(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 5)).astype(np.float32)
    labels = np.arange(20) % 3
    write_store(tmp_path / "s", x, labels, meta={"backbone": "test"})
    data = load_store(tmp_path / "s")
    assert isinstance(data.x, np.memmap)
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.meta["backbone"] == "test" and data.meta["label_kind"] == "single"
    assert load(str(tmp_path / "s")).n == 20
    with pytest.raises(SaeLiteError, match="already exists"):
        write_store(tmp_path / "s", x)


def test_damaged_stores_are_rejected(tmp_path):
    x = np.ones((6, 2), np.float32)
    path = write_store(tmp_path / "s", x, np.zeros(6, int))
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "n": 7}))
    with pytest.raises(SaeLiteError, match="meta.json says"):
        load_store(path)
    (path / "meta.json").write_text(json.dumps(meta))
    np.save(path / "labels.npy", np.zeros(5, int))
    with pytest.raises(SaeLiteError, match=r"labels.npy: has shape \(5,\)"):
        load_store(path)
    np.save(path / "labels.npy", np.zeros(6, int))
    bad = x.copy()
    bad[3, 0] = np.inf
    np.save(path / "embeddings.npy", bad)
    with pytest.raises(SaeLiteError, match="NaN or Inf"):
        load_store(path)
    with pytest.raises(SaeLiteError, match="not an embedding store"):
        load_store(tmp_path)
    with pytest.raises(SaeLiteError, match="unknown data"):
        load("imagenet")


def test_a_store_keeps_the_images_and_subsets_carry_them(tmp_path):
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    images = np.arange(10 * 3 * 2, dtype=np.uint8).reshape(10, 3, 2)  # image i differs from image j
    data = load_store(write_store(tmp_path / "s", x, np.arange(10) % 2, images=images))
    assert (tmp_path / "s" / "images.npy").is_file() and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images, images)
    part = data.subset(np.array([8, 1]))
    np.testing.assert_array_equal(part.images, images[[8, 1]])
    train, test = data.split(test_fraction=0.3)
    for half in (train, test):  # each image stays with its embedding
        rows = [int(np.flatnonzero((x == row).all(1))[0]) for row in np.asarray(half.x)]
        np.testing.assert_array_equal(half.images, images[rows])
    assert load_store(write_store(tmp_path / "plain", x)).images is None
    rgb = np.zeros((10, 2, 2, 3), np.uint8)
    assert load_store(write_store(tmp_path / "rgb", x, images=rgb)).images.shape == (10, 2, 2, 3)


def test_bad_or_damaged_images_are_rejected(tmp_path):
    x = np.ones((4, 2), np.float32)
    with pytest.raises(SaeLiteError, match="images must be uint8"):
        write_store(tmp_path / "f", x, images=np.zeros((4, 3, 3), np.float32))
    with pytest.raises(SaeLiteError, match="images has 3 rows but x has 4"):
        write_store(tmp_path / "n", x, images=np.zeros((3, 3, 3), np.uint8))
    assert not (tmp_path / "f").exists() and not (tmp_path / "n").exists()
    path = write_store(tmp_path / "s", x, images=np.zeros((4, 3, 3), np.uint8))
    np.save(path / "images.npy", np.zeros((5, 3, 3), np.uint8))
    with pytest.raises(SaeLiteError, match=r"images.npy: holds uint8 \(5, 3, 3\) but a store of n=4"):
        load_store(path)


def test_a_store_may_hold_a_reference_embedding_used_as_the_ms_reference(tmp_path):
    from sae_lite.evaluation.metrics import reference_name

    rng = np.random.default_rng(0)
    x, ref = rng.standard_normal((30, 4)).astype(np.float32), rng.standard_normal((30, 7)).astype(np.float32)
    write_store(tmp_path / "plain", x)
    plain = load_store(tmp_path / "plain")
    assert plain.ref is None and plain.reference is plain.x and reference_name(plain).startswith("the SAE's input")
    write_store(tmp_path / "s", x, meta={"reference": "reference.npy (clip-vit-b-32)"}, reference=ref)
    store = load_store(tmp_path / "s")
    assert isinstance(store.ref, np.memmap) and np.array_equal(store.reference, ref)
    assert reference_name(store) == "reference.npy (clip-vit-b-32)"
    np.save(tmp_path / "s" / "reference.npy", ref[:20])
    with pytest.raises(SaeLiteError, match="reference.npy"):
        load_store(tmp_path / "s")
