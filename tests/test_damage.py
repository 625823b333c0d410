"""Damaged files: every file kind the package reads, damaged every way, gets one clear line (exit 2 on the
command line, SaeLiteError from Python) and nothing is written; a damaged cache entry heals itself, and two
processes wanting the same entry do not both train it."""

import contextlib
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import sae_lite
from sae_lite.cli import main
from sae_lite.core.config import TrainConfig
from sae_lite.core.train import train
from sae_lite.data import catalog, embed, load_store, write_store
from sae_lite.data.spec import data_spec
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation.runs import load_run
from sae_lite.study import paper, pipeline, results, runner
from sae_lite.study.reproduce import claim_out

FAST = ["--steps", "20", "--latents", "16", "--k", "4", "--batch-size", "32", "--b-pre-init", "mean"]


# --------------------------------------------------------------------------------------------
# Ways to damage a file, and what must (not) happen
# --------------------------------------------------------------------------------------------

def missing(file: Path) -> None:
    file.unlink()


def empty(file: Path) -> None:
    file.write_bytes(b"")


def truncated(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def garbage(file: Path) -> None:
    file.write_bytes(b"<html>a download that stopped: not the file</html>\n")


GENERIC = {"missing": missing, "empty": empty, "truncated": truncated, "garbage": garbage}


def edit_json(**changes):
    def damage(file: Path) -> None:
        value = json.loads(file.read_text())
        for key, change in changes.items():
            value[key] = change(value[key]) if callable(change) else change
        file.write_text(json.dumps(value))
    return damage


def replace_json(value):
    return lambda file: file.write_text(json.dumps(value))


def edit_npy(change):
    return lambda file: np.save(file, change(np.load(file)))


def edit_tensors(change):
    return lambda file: save_file(change(load_file(file)), file)


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its size and modification time: nothing written leaves it equal."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(map(str, argv)))
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, file: Path, fix: str) -> None:
    """Exit 2, and on stderr exactly one line, no traceback, naming ``file`` (or a sibling it disagrees
    with, by path, and ``file`` by name) and saying ``fix``."""
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert f"{file.parent}/" in err and file.name in err and fix in err, err


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the runs and the backbone here are tiny, and the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# An embedding store (train --data STORE)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    return write_store(tmp_path_factory.mktemp("store") / "store", rng.standard_normal((64, 8)).astype(np.float32),
                       np.arange(64) % 4, images=rng.integers(0, 256, (64, 4, 4), dtype=np.uint8),
                       reference=rng.standard_normal((64, 5)).astype(np.float32))


STORE_DAMAGE = [(name, kind, damage) for name in ("meta.json", "embeddings.npy", "labels.npy")
                for kind, damage in GENERIC.items()] + [
    ("images.npy", "empty", empty), ("images.npy", "truncated", truncated), ("images.npy", "garbage", garbage),
    ("meta.json", "a JSON list", replace_json([1, 2])),
    ("meta.json", "n disagrees with the embeddings", edit_json(n=65)),
    ("meta.json", "d is not a number", edit_json(d="8")),
    ("meta.json", "says no labels while labels.npy exists", edit_json(label_kind=None)),
    ("embeddings.npy", "float64", edit_npy(lambda x: x.astype(np.float64))),
    ("embeddings.npy", "another width", edit_npy(lambda x: x[:, :7])),
    ("embeddings.npy", "Python objects", lambda file: np.save(file, np.array([{}] * 64), allow_pickle=True)),
    ("labels.npy", "a row short", edit_npy(lambda y: y[:-1])),
    ("labels.npy", "float labels", edit_npy(lambda y: y.astype(np.float32))),
    ("images.npy", "a row short", edit_npy(lambda im: im[:-1])),
    ("images.npy", "not uint8", edit_npy(lambda im: im.astype(np.float32))),
    ("reference.npy", "empty", empty), ("reference.npy", "truncated", truncated), ("reference.npy", "garbage", garbage),
    ("reference.npy", "a row short", edit_npy(lambda r: r[:-1])),
    ("reference.npy", "float64", edit_npy(lambda r: r.astype(np.float64))),
]


@pytest.mark.parametrize("name, kind, damage", STORE_DAMAGE, ids=[f"{n}-{k}" for n, k, _ in STORE_DAMAGE])
def test_a_damaged_store_gets_one_line_and_nothing_is_trained(store_dir, tmp_path, capsys, name, kind, damage):
    store = shutil.copytree(store_dir, tmp_path / "store")
    damage(store / name)
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, "train", "--data", store, "--out", tmp_path / "run", *FAST)
    assert_one_line(code, err, store / name, "re-create")
    assert snapshot(tmp_path) == before
    with pytest.raises(SaeLiteError, match=name):  # the same error from Python
        load_store(store)


def test_an_intact_store_copy_loads(store_dir, tmp_path):
    """The damage above is what fails: the same store, copied undamaged, loads (and `run_dir` trains on it)."""
    store = load_store(shutil.copytree(store_dir, tmp_path / "store"))
    assert store.x.shape == (64, 8) and store.labels.shape == (64,) and store.images.shape == (64, 4, 4)
    assert store.ref.shape == (64, 5)


def test_a_store_made_by_hand_with_only_n_and_d_in_meta_loads(tmp_path):
    """The README's minimal store: embeddings.npy and a meta.json with n and d (no label_kind)."""
    np.save(tmp_path / "embeddings.npy", np.ones((5, 3), np.float32))
    (tmp_path / "meta.json").write_text(json.dumps({"n": 5, "d": 3}))
    assert load_store(tmp_path).labels is None


# --------------------------------------------------------------------------------------------
# A run directory (evaluate RUN)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(store_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(list(map(str, ["train", "--data", store_dir, "--out", run, *FAST]))) == 0
    return run


def _wider(config: dict) -> dict:
    return {**config, "n_latents": 2 * config["n_latents"]}


RUN_DAMAGE = [(name, kind, damage) for name in ("sae.safetensors", "config.json", "metrics.json")
              for kind, damage in GENERIC.items()] + [
    ("history.json", "empty", empty), ("history.json", "truncated", truncated), ("history.json", "garbage", garbage),
    ("config.json", "a JSON list", replace_json([])),
    ("config.json", "no sae section", edit_json(sae=None)),
    ("config.json", "an impossible k", edit_json(sae=lambda sae: {**sae, "k": 0})),
    ("config.json", "n_latents disagrees with the weights", edit_json(sae=_wider)),
    ("sae.safetensors", "float64 weights", edit_tensors(lambda t: {k: v.double() for k, v in t.items()})),
    ("sae.safetensors", "a tensor missing", edit_tensors(lambda t: {k: v for k, v in t.items() if k != "b_enc"})),
    ("sae.safetensors", "a transposed decoder", edit_tensors(lambda t: {**t, "W_dec": t["W_dec"].T.contiguous()})),
    ("metrics.json", "a JSON list", replace_json([0.5])),
    ("history.json", "lists of unequal length", edit_json(loss=lambda loss: loss[:-1])),
]


@pytest.mark.parametrize("name, kind, damage", RUN_DAMAGE, ids=[f"{n}-{k}" for n, k, _ in RUN_DAMAGE])
def test_a_damaged_run_gets_one_line_and_nothing_is_written(run_dir, tmp_path, capsys, name, kind, damage):
    run = shutil.copytree(run_dir, tmp_path / "run")
    damage(run / name)
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, "evaluate", run, "--k", "2,4", "--probe", "1")
    assert_one_line(code, err, run / name, "train again")
    assert snapshot(tmp_path) == before  # no evaluation.json
    with pytest.raises(SaeLiteError, match=name):
        load_run(run)


def test_evaluating_on_a_damaged_store_gets_one_line(run_dir, store_dir, tmp_path, capsys):
    run, store = shutil.copytree(run_dir, tmp_path / "run"), shutil.copytree(store_dir, tmp_path / "store")
    truncated(store / "embeddings.npy")
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, "evaluate", run, "--k", "2,4", "--probe", "1", "--data", store)
    assert_one_line(code, err, store / "embeddings.npy", "re-create")
    assert snapshot(tmp_path) == before


def test_the_command_line_itself_exits_2_on_a_truncated_run(run_dir, tmp_path):
    """The issue's first case, in a real process: ``python -m sae_lite evaluate`` on a truncated sae.safetensors."""
    run = shutil.copytree(run_dir, tmp_path / "run")
    truncated(run / "sae.safetensors")
    done = subprocess.run([sys.executable, "-m", "sae_lite", "evaluate", str(run)], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(sae_lite.__file__).parents[1])})
    assert_one_line(done.returncode, done.stderr, run / "sae.safetensors", "train again")
    assert done.stdout == "" and not (run / "evaluation.json").exists()


def test_an_intact_run_copy_loads(run_dir, tmp_path):
    run = load_run(shutil.copytree(run_dir, tmp_path / "run"))
    assert run.sae.n_latents == 16 and run.config.steps == 20 and "r2" in run.metrics


# --------------------------------------------------------------------------------------------
# A training checkpoint (train(..., resume=True))
# --------------------------------------------------------------------------------------------

CONFIG = TrainConfig(k=4, n_latents=16, steps=20, batch_size=32, b_pre_init="mean", device="cpu")


@pytest.fixture(scope="module")
def checkpoint_dir(store_dir, tmp_path_factory) -> Path:
    checkpoint = tmp_path_factory.mktemp("ckpt") / "ckpt"
    train(CONFIG, load_store(store_dir), checkpoint=checkpoint, stop_at=10, progress=False)
    return checkpoint


CHECKPOINT_DAMAGE = [(name, kind, damage) for name in ("state.safetensors", "state.json")
                     for kind, damage in GENERIC.items()] + [
    ("state.json", "no history", edit_json(history=None)),
    ("state.json", "a step past the end", edit_json(step=10_000)),
    ("state.safetensors", "since_fired of another size", edit_tensors(lambda t: {**t, "since_fired": t["since_fired"][:3]})),
    ("state.safetensors", "float64 weights", edit_tensors(lambda t: {k: v.double() if k.startswith("sae.") else v
                                                                      for k, v in t.items()})),
    ("state.safetensors", "an unknown tensor", edit_tensors(lambda t: {**t, "extra": torch.zeros(2)})),
]


@pytest.mark.parametrize("name, kind, damage", CHECKPOINT_DAMAGE, ids=[f"{n}-{k}" for n, k, _ in CHECKPOINT_DAMAGE])
def test_a_damaged_checkpoint_is_refused_before_training(store_dir, checkpoint_dir, tmp_path, name, kind, damage):
    checkpoint = shutil.copytree(checkpoint_dir, tmp_path / "ckpt")
    damage(checkpoint / name)
    before = snapshot(tmp_path)
    with pytest.raises(SaeLiteError, match=f"{checkpoint / name}: .*delete its directory") as error:
        train(CONFIG, load_store(store_dir), checkpoint=checkpoint, resume=True, progress=False)
    assert "\n" not in str(error.value)
    assert snapshot(tmp_path) == before


def test_an_intact_checkpoint_resumes(store_dir, checkpoint_dir, tmp_path):
    checkpoint = shutil.copytree(checkpoint_dir, tmp_path / "ckpt")
    _, history = train(CONFIG, load_store(store_dir), checkpoint=checkpoint, resume=True, progress=False)
    assert history["step"][-1] == CONFIG.steps


# --------------------------------------------------------------------------------------------
# An interrupted extraction's OUT.partial folder (embed)
# --------------------------------------------------------------------------------------------

EMBED = ["--backbone", "vit-tiny-16", "--weights", "random", "--batch-size", "2", "--shard-size", "2",
         "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def partial_dir(tmp_path_factory) -> tuple[Path, Path]:
    """(the image folder, the .partial folder of its extraction interrupted after the first of 3 shards)."""
    root = tmp_path_factory.mktemp("embed")
    rng = np.random.default_rng(0)
    for i in range(6):
        (root / "images" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "images" / f"c{i % 2}" / f"{i}.png")
    forward, calls = embed._forward, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return forward(*args)

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(io.StringIO()):
        patch.setattr(embed, "_forward", interrupted)
        assert main(list(map(str, ["embed", *EMBED, "--images", root / "images", "--out", root / "store"]))) == 130
    partial = root / "store.partial"
    assert list(json.loads((partial / "progress.json").read_text())["shards"]) == ["0"]
    return root / "images", partial


PARTIAL_DAMAGE = [("progress.json", kind, GENERIC[kind]) for kind in ("empty", "truncated", "garbage")] + [
    (f"shard-00000{suffix}", kind, damage) for suffix in (".npy", ".index.npy") for kind, damage in GENERIC.items()] + [
    ("progress.json", "a JSON list", replace_json([])),
    ("progress.json", "more rows recorded than saved", edit_json(shards=lambda s: {"0": {**s["0"], "n": 3}})),
    ("shard-00000.npy", "float64", edit_npy(lambda x: x.astype(np.float64))),
    ("shard-00000.index.npy", "a row short", edit_npy(lambda i: i[:-1])),
]


@pytest.mark.parametrize("name, kind, damage", PARTIAL_DAMAGE, ids=[f"{n}-{k}" for n, k, _ in PARTIAL_DAMAGE])
def test_a_damaged_partial_extraction_gets_one_line(partial_dir, tmp_path, capsys, name, kind, damage):
    images, partial_source = partial_dir
    partial = shutil.copytree(partial_source, tmp_path / "store.partial")
    damage(partial / name)
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, "embed", *EMBED, "--images", images, "--out", tmp_path / "store")
    assert_one_line(code, err, partial / name, "--overwrite")
    assert snapshot(tmp_path) == before


def test_overwrite_starts_a_damaged_partial_extraction_over(partial_dir, tmp_path, capsys):
    images, partial_source = partial_dir
    partial = shutil.copytree(partial_source, tmp_path / "store.partial")
    garbage(partial / "progress.json")
    code, _ = run_cli(capsys, "embed", *EMBED, "--images", images, "--out", tmp_path / "store", "--overwrite")
    assert code == 0 and load_store(tmp_path / "store").n == 6 and not partial.exists()


# --------------------------------------------------------------------------------------------
# A reproduce output's grid.json
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "a JSON list"])
def test_a_damaged_grid_json_gets_one_line_before_training(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.setenv("SAE_LITE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    claim_out(out, paper.grid("quick").fingerprint())
    (GENERIC | {"a JSON list": replace_json([])})[kind](out / "grid.json")
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, "reproduce", "--profile", "quick", "--out", out)
    assert_one_line(code, err, out / "grid.json", "choose another --out")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name, damage", [("embeddings.npy", truncated), ("meta.json", garbage)])
def test_reproduce_of_the_paper_grid_checks_every_store_first(tmp_path, capsys, monkeypatch, name, damage):
    monkeypatch.setenv("SAE_LITE_CACHE", str(tmp_path / "cache"))
    x = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    for dataset in paper.PAPER_DATASETS:
        for backbone in paper.PAPER_BACKBONES:
            write_store(tmp_path / "stores" / dataset / backbone, x, meta={"backbone": backbone})
    bad = tmp_path / "stores" / paper.PAPER_DATASETS[-1] / paper.PAPER_BACKBONES[-1] / name
    damage(bad)
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, "reproduce", "--profile", "paper", "--data", tmp_path / "stores", "--out", tmp_path / "out")
    assert_one_line(code, err, bad, "re-create")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# The results cache heals, and is shared safely
# --------------------------------------------------------------------------------------------

SPEC = data_spec("digits")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SAE_LITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cached_quietly():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = results.cached_run(CONFIG, SPEC, progress=False)
    return run, [str(w.message) for w in caught]


@pytest.mark.parametrize("name, damage", [("sae.safetensors", truncated), ("metrics.json", garbage),
                                          ("card.md", missing), ("config.json", missing), ("history.json", empty)])
def test_a_damaged_cache_entry_is_moved_aside_with_one_warning_and_trained_again(cache, name, damage):
    first, caught = _cached_quietly()
    assert caught == []
    damage(first.path / name)
    healed, caught = _cached_quietly()
    assert len(caught) == 1 and "damaged cache entry" in caught[0] and name in caught[0]
    aside = list(first.path.parent.glob(f"{first.path.name}.damaged-*"))
    assert len(aside) == 1 and str(aside[0]) in caught[0]
    assert healed.path == first.path and healed.metrics == first.metrics
    again, caught = _cached_quietly()  # healed for good: loaded, no warning
    assert caught == [] and again.metrics == first.metrics


def test_a_damaged_cached_evaluation_is_computed_again_with_one_warning(cache):
    run, _ = _cached_quietly()
    first = runner._cached_evaluation(run.path, [2, 4], [1], run.spec)
    garbage(run.path / "evaluation.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = runner._cached_evaluation(run.path, [2, 4], [1], run.spec)
    assert len(caught) == 1 and "evaluation.json" in str(caught[0].message)
    assert again == first == json.loads((run.path / "evaluation.json").read_text())


def test_a_damaged_cached_store_is_moved_aside_and_embedded_again(cache, monkeypatch):
    """The embedded Fashion-MNIST store of the cache heals like a run (the embedding stubbed: a tiny store)."""
    made = []

    def fake_embed(backbone, source, path, **options):
        made.append(path)
        return write_store(path, np.ones((8, 4), np.float32), overwrite=True)

    monkeypatch.setattr(catalog.fashion_mnist, "fashion_mnist", lambda *args: None)
    monkeypatch.setattr(catalog, "select", lambda source, images, seed: source)
    monkeypatch.setattr(catalog, "embed_images", fake_embed)
    path = catalog.fashion_mnist_store(images=8, resolution=32)
    truncated(path / "embeddings.npy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert catalog.fashion_mnist_store(images=8, resolution=32) == path
    assert len(caught) == 1 and "embeddings.npy" in str(caught[0].message) and made == [path, path]
    assert len(list(path.parent.glob(f"{path.name}.damaged-*"))) == 1 and load_store(path).n == 8
    assert catalog.fashion_mnist_store(images=8, resolution=32) == path and len(made) == 2  # whole now: reused
    monkeypatch.setattr(catalog.fashion_mnist, "fashion_mnist", lambda *args: 1 / 0)  # as without the data set
    path.with_name(path.name + ".lock").unlink()
    shutil.rmtree(path)
    with pytest.raises(ZeroDivisionError):
        catalog.fashion_mnist_store(images=8, resolution=32)
    assert not path.with_name(path.name + ".lock").exists()  # nothing written before the data set is found


def test_what_a_killed_writer_left_is_removed(cache):
    """A process killed mid-write (SIGKILL) leaves write_dir's temporary siblings .<entry>.*: the next
    process holding the entry removes them (nobody else can be writing it then)."""
    run, _ = _cached_quietly()
    left = [run.path.with_name(f".{run.path.name}.{suffix}") for suffix in ("k1ll3d", "old")]
    for directory in left:
        directory.mkdir()
        (directory / "sae.safetensors").write_bytes(b"half")
    again, caught = _cached_quietly()
    assert caught == [] and again.metrics == run.metrics and not any(d.exists() for d in left)


def test_the_command_line_shows_a_warning_as_one_line(run_dir, capsys, monkeypatch):
    def healing(*args, **kwargs):
        warnings.warn("damaged cache entry: X/metrics.json: is empty; moved it to Y and computing it again", stacklevel=2)
        return {}

    monkeypatch.setattr("sae_lite.cli.evaluate_run", healing)
    code, err = run_cli(capsys, "evaluate", run_dir)
    assert code == 0 and err == "warning: damaged cache entry: X/metrics.json: is empty; moved it to Y and computing it again\n"


def _want_entry(cache: str, barrier, queue) -> None:
    """In a fresh process: wait for the other one, then ask for the cached run; report (metrics, trained?)."""
    os.environ["SAE_LITE_CACHE"] = cache
    trained, train_run = [], pipeline.train_run

    def counting(*args, **kwargs):
        trained.append(True)
        return train_run(*args, **kwargs)

    pipeline.train_run = counting
    torch.set_num_threads(1)
    barrier.wait()
    metrics = results.cached_run(CONFIG, SPEC, progress=False).metrics
    queue.put((metrics, bool(trained)))


def test_two_processes_wanting_one_entry_train_it_once(cache):
    """Two fresh processes (spawned, as the book's workers) want the same uncached run at the same moment:
    one trains it, the other waits for the lock and loads it. (The slowest test here: two interpreters
    import torch.)"""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_want_entry, args=(str(cache), barrier, queue)) for _ in range(2)]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert sorted(trained for _, trained in reports) == [False, True]  # one trained, the other waited and loaded
    assert reports[0][0] == reports[1][0]
    entries = [path.name for path in (cache / "runs").iterdir()]
    assert len([name for name in entries if not name.endswith(".lock")]) == 1, entries
    assert load_run(cache / "runs" / next(n for n in entries if not n.endswith(".lock"))).metrics == reports[0][0]
