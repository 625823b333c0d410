import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from sae_lite.cli import main
from sae_lite.data import write_store
from sae_lite.errors import SaeLiteError
from sae_lite.study import methods, paper, pipeline, weights
from sae_lite.study.paper import Cell
from sae_lite.study.profiles import PROFILE_SETTINGS

TINY = replace(PROFILE_SETTINGS["quick"], steps=40, seeds=(0, 1), n_planted=1024)
TINY_CELLS = (Cell("planted", "planted", (4,), n_latents=64),)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The quick profile shrunk to 40 steps, two seeds and one planted cell, with its own cache."""
    root = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAE_LITE_CACHE", str(root / "cache"))
        patch.setitem(PROFILE_SETTINGS, "quick", TINY)
        patch.setattr(paper, "SMALL_CELLS", TINY_CELLS)
        yield root


@pytest.fixture(scope="module")
def first(tiny):
    """The summary of the first `reproduce` of the tiny grid (into tiny/results), shared by the tests."""
    from sae_lite.study.reproduce import reproduce

    return reproduce(paper.grid("quick"), tiny / "results").summary


def reproduce(capsys, *argv):
    code = main(["reproduce", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_reproduce_writes_results_then_resumes(tiny, first, capsys, monkeypatch):
    out = tiny / "results"
    runs = len(methods.PAPER_METHODS) * 2
    # each weight search (seed 0) trains from the largest weight down to the pick, which the grid shares
    tried = {p: sum(w >= first["weights"]["planted"][p] for w in weights.sweep_weights(TINY)) for p in methods.PENALTY_WEIGHTS}
    assert (first["runs"], first["trained"]) == (runs, runs + sum(tried.values()) - len(tried))

    rows = read_csv(out / "results.csv")
    assert len(rows) == runs
    assert {(row["method"], row["seed"]) for row in rows} == {(m, s) for m in methods.PAPER_METHODS for s in "01"}
    columns = rows[0].keys()
    assert list(columns)[:3] == ["data", "backbone", "method"] and list(columns)[-1] == "path"
    for column in ("r2", "fvu", "ms_mean", "purity_mean", "dead", "r2_half_k", "r2_double_k",
                   "recovery_mmcs", "r2_x0.25", "r2_x4", "probe_m1", "probe_m4"):
        assert column in columns and all(np.isfinite(float(row[column])) for row in rows), column
    assert json.loads((out / "grid.json").read_text())["profile"]["steps"] == 40
    for penalty in ("offsupport", "ratio"):   # each penalty at the weight the rule picks on the cell's sweep
        picked = weights.rule_weight(weights.sweep_grid("planted", penalty, 4, TINY, n_latents=64))
        assert first["weights"]["planted"][penalty] == picked
        assert {float(row["weight"]) for row in rows if row["penalty"] == penalty} == {picked}

    claims = json.loads((out / "claims.json").read_text())
    assert {c["claim"] for c in claims} == {"interpretability", "inference_k", "probing", "mask"}
    assert all(c["data"] == "planted" and c["seeds"] == 2 and c["verdict"] in ("holds", "does not hold", "mixed")
               for c in claims)
    assert {f"{c['claim']} on planted" for c in claims} == set(first["claims"])
    report = (out / "claims.md").read_text()
    assert report.count("Verdict: **") == 4 and "ms_mean" in report and "probe_m1" in report

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")
    monkeypatch.setattr(pipeline, "train_run", no_training)
    code, stdout, _ = reproduce(capsys, "--profile", "quick", "--out", out)
    assert code == 0 and json.loads(stdout)["trained"] == 0
    figures = sorted(path.name for path in (out / "figures").iterdir())  # the command draws them (book.figures)
    assert figures == ["planted_k4_per_method.png", "planted_k4_probe_vs_m.png", "planted_k4_r2_vs_k.png"]
    assert all((out / "figures" / name).read_bytes()[:4] == b"\x89PNG" for name in figures)
    assert read_csv(out / "results.csv") == rows


def test_cards_carry_every_field_and_the_seed_stability(tiny, first):
    out = tiny / "results"
    rows = [row for row in read_csv(out / "results.csv") if row["method"] == "ratio"]
    cards = [json.loads((tiny / row["path"] / "card.json").read_text()) for row in rows]
    for field in ("source_model", "embedding", "dataset", "split", "preprocessing", "dictionary_size", "k",
                  "selection_rule", "regularizer", "weight", "mask_rule", "auxk", "reconstruction",
                  "monosemanticity", "class_purity", "dead_latents", "k_sensitivity", "seed", "seed_stability"):
        assert field in cards[0], field
    assert (cards[0]["dictionary_size"], cards[0]["k"], cards[0]["weight"]) == (64, 4, first["weights"]["planted"]["ratio"])
    stability = cards[0]["seed_stability"]
    assert stability == cards[1]["seed_stability"] and stability["seeds"] == "0, 1"
    r2 = [float(row["r2"]) for row in rows]
    assert stability["r2_std"] == pytest.approx(np.std(r2, ddof=1), rel=1e-6)
    assert 0 < stability["dictionary_mmcs"] <= 1
    text = (out / "cards" / "planted_ratio_k4_seed1.md").read_text()
    assert "seed stability" in text and "dictionary_mmcs" in text and "interpretable" not in text.lower()


def test_an_out_dir_of_another_configuration_is_refused(tiny, first, capsys, monkeypatch):
    out = tiny / "results"
    monkeypatch.setitem(PROFILE_SETTINGS, "quick", replace(TINY, steps=50))
    code, _, err = reproduce(capsys, "--profile", "quick", "--out", out)
    assert code == 2 and "different grid configuration" in err and err.count("\n") == 1
    foreign = tiny / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = reproduce(capsys, "--profile", "quick", "--out", foreign)
    assert code == 2 and "not a reproduce directory" in err and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def refuse_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained although the input was bad")
    monkeypatch.setattr(pipeline, "train_run", no_training)


def test_paper_refuses_missing_stores_before_training(tmp_path, capsys, monkeypatch):
    refuse_training(monkeypatch)
    code, _, err = reproduce(capsys, "--profile", "paper", "--out", tmp_path / "out")
    assert code == 2 and "needs --data" in err
    code, _, err = reproduce(capsys, "--profile", "paper", "--data", tmp_path / "stores", "--out", tmp_path / "out")
    assert code == 2 and "imagenet-1k/clip-vit-l-14" in err and "open-images-v7/vit-l-16" in err and "embed" in err
    assert not (tmp_path / "out").exists()


def test_paper_refuses_a_store_of_another_backbone(tmp_path, capsys, monkeypatch):
    refuse_training(monkeypatch)
    x = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    for dataset in paper.PAPER_DATASETS:
        for backbone in paper.PAPER_BACKBONES:
            found = "siglip2" if (dataset, backbone) == ("imagenet-1k", "vit-l-16") else backbone
            write_store(tmp_path / "stores" / dataset / backbone, x, meta={"backbone": found})
    code, _, err = reproduce(capsys, "--profile", "paper", "--data", tmp_path / "stores", "--out", tmp_path / "out")
    assert code == 2 and "siglip2" in err and "vit-l-16" in err
    assert not (tmp_path / "out").exists()


def test_paper_grid_from_a_complete_store_layout(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 32)).astype(np.float32)
    for dataset in paper.PAPER_DATASETS:
        for backbone in paper.PAPER_BACKBONES:
            write_store(tmp_path / dataset / backbone, x, meta={"backbone": backbone})
    grid = paper.grid("paper", tmp_path)
    assert [cell.label for cell in grid.cells][:2] == ["imagenet-1k/clip-vit-l-14", "imagenet-1k/siglip2"]
    assert {cell.ks for cell in grid.cells} == {(32, 64, 128)} and grid.profile.seeds == (0, 1, 2)
    assert {cell.n_latents for cell in grid.cells} == {paper.PAPER_EXPANSION * 32}
    assert len(grid.jobs()) == 270  # 6 stores x 3 k x the paper's 5 methods x 3 seeds
    assert grid.methods == ("baseline", "offsupport", "ratio", "offsupport-nomask", "ratio-nomask")
    assert paper.grid("default").methods == paper.grid("quick").methods == grid.methods


def test_data_is_for_the_paper_profile_only(tmp_path, capsys):
    code, _, err = reproduce(capsys, "--profile", "quick", "--data", tmp_path, "--out", tmp_path / "out")
    assert code == 2 and "--data is for the paper profile" in err


def test_a_card_names_the_backbone_and_preprocessing_of_a_store():
    from sae_lite.core.config import TrainConfig
    from sae_lite.core.sae import SAE
    from sae_lite.evaluation import card

    meta = {"backbone": "clip-vit-l-14", "library": "open_clip", "arch": "ViT-L-14", "weights": "pretrained",
            "tag": "openai", "embedding": "projected image embedding", "precision": "bf16",
            "preprocess": "open_clip eval transform of tag 'openai'", "source": {"path": "/data/imagenet/val"}}
    data = {"name": "/stores/imagenet-1k/clip-vit-l-14", "dataset": "val-clip-vit-l-14", "meta": meta,
            "n_train": 80, "n_test": 20}
    fields = card.card_fields(SAE(8, 32, 4), TrainConfig(k=4, n_latents=32), data, {"r2": 0.5})
    assert fields["source_model"] == "clip-vit-l-14 (open_clip, ViT-L-14; pretrained weights openai)"
    assert fields["embedding"] == "projected image embedding" and "/data/imagenet/val" in fields["dataset"]
    assert fields["preprocessing"].startswith("open_clip eval transform") and "bf16" in fields["preprocessing"]
    plain = card.card_fields(SAE(8, 32, 4), TrainConfig(k=4, n_latents=32), {"name": "planted"}, {})
    assert plain["source_model"].startswith("none") and plain["dataset"] == "planted"
    assert plain["preprocessing"].startswith("none: synthetic")


def test_the_paper_cost_estimate_counts_every_run():
    from sae_lite.core.config import TrainConfig
    from sae_lite.study import cost

    assert cost.step_flops(d=10, n_latents=20, batch_size=4) == 12 * 4 * 10 * 20
    profile, batch = PROFILE_SETTINGS["paper"], TrainConfig().batch_size
    runs = 2 * 3 * 5 * 3  # data sets x k x the paper's 5 methods x seeds, per backbone
    expected = sum(runs * profile.steps * cost.step_flops(d, paper.PAPER_EXPANSION * d, batch)
                   for d in (768, 1152, 1024))
    assert cost.paper_train_flops() == pytest.approx(expected)
    assert cost.measure_step_rate(d=16, n_latents=64, steps=3, device="cpu") > 0
    assert cost.paper_hours(1e12) == pytest.approx(expected / 1e12 / 3600)
    with pytest.raises(SaeLiteError, match="flops_per_second"):
        cost.paper_hours(0)
    assert not any(hasattr(paper, name) for name in ("step_flops", "measure_step_rate", "paper_train_flops",
                                                     "paper_hours"))  # the grid holds no cost model


def test_results_dir_is_named_by_the_grid(tiny):
    from sae_lite.study.reproduce import results_dir

    quick = paper.grid("quick")
    assert results_dir(quick) == results_dir(paper.grid("quick"))
    assert results_dir(quick).name.startswith("quick-") and results_dir(quick).parent.name == "reproduce"
    assert results_dir(paper.Grid(TINY, TINY_CELLS, methods=("baseline",))) != results_dir(quick)


def test_seed_stability_std_skips_non_finite_values_without_a_warning():
    import warnings

    import torch

    from sae_lite.evaluation.card import seed_stability
    dictionaries = [torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(s)), dim=1)
                    for s in (0, 1, 2)]
    metrics = [{"r2": 0.8, "ms_mean": float("nan")}, {"r2": 0.9, "ms_mean": 0.2}, {"r2": 1.0, "ms_mean": float("nan")}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fields = seed_stability([0, 1, 2], metrics, dictionaries)
    assert fields["r2_std"] == pytest.approx(0.1)
    assert math.isnan(fields["ms_mean_std"])


def test_without_matplotlib_reproduce_stops_in_one_line_before_training(tmp_path, capsys, monkeypatch):
    """A core install (no ``viz`` extra) is told what to install before the grid trains, not after."""
    import importlib.util

    from sae_lite import cli

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "matplotlib"
                        else find_spec(name, *rest))
    refuse_training(monkeypatch)
    monkeypatch.setattr(cli, "reproduce", lambda *args, **kwargs: pytest.fail("reproduce started without matplotlib"))
    code, out, err = reproduce(capsys, "--profile", "quick", "--out", tmp_path / "out")
    assert (code, out) == (2, "")
    assert err == ('error: reproduce draws its figures with matplotlib, which is not installed; '
                   'pip install "sae-lite[viz]"\n')
    assert not (tmp_path / "out").exists()
