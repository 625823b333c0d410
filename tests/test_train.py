from dataclasses import replace

import numpy as np
import pytest
import torch

from sae_lite import SaeLiteError
from sae_lite.core.config import TrainConfig
from sae_lite.core.train import batch_indices, epoch_order, learning_rate, train
from sae_lite.data import planted
from sae_lite.device import resolve_device
from sae_lite.evaluation import metrics
from sae_lite.evaluation.runs import load_run, save_run

SMALL = TrainConfig(k=8, n_latents=128, steps=120, batch_size=128, log_every=20, seed=0)


def test_training_lowers_the_loss(small_planted):
    _, history = train(SMALL, small_planted, progress=False)
    assert history["fvu"][-1] < 0.6 * history["fvu"][0]
    assert history["step"][-1] == SMALL.steps and all(l0 <= SMALL.k for l0 in history["l0"])


def test_baseline_reaches_r2_085_on_the_planted_default():
    train_set, test_set = planted().split()
    sae, _ = train(TrainConfig(k=16, n_latents=512, steps=3000), train_set, progress=False)
    assert metrics.r2(test_set.x, metrics.encode_all(sae, test_set.x)[1]) >= 0.85


@pytest.mark.parametrize("penalty", ["offsupport", "ratio"])
def test_penalised_training_is_finite(small_planted, penalty):
    for masked in (True, False):
        _, history = train(replace(SMALL, penalty=penalty, weight=0.01, masked=masked, steps=40), small_planted,
                           progress=False)
        assert all(torch.isfinite(torch.tensor(history[key])).all() for key in history)


def test_same_seed_same_weights(small_planted):
    a, _ = train(replace(SMALL, steps=30), small_planted, progress=False)
    b, _ = train(replace(SMALL, steps=30), small_planted, progress=False)
    c, _ = train(replace(SMALL, steps=30, seed=1), small_planted, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.W_dec, c.W_dec)


def test_resume_equals_uninterrupted_run(small_planted, tmp_path):
    config = replace(SMALL, steps=60, penalty="ratio", weight=0.01, dead_after=500)
    full, full_history = train(config, small_planted, progress=False)
    train(config, small_planted, checkpoint=tmp_path / "ckpt", stop_at=25, progress=False)
    resumed, history = train(config, small_planted, checkpoint=tmp_path / "ckpt", resume=True, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(full.parameters(), resumed.parameters()))
    assert history == full_history


def test_resume_refuses_other_config_or_missing_state(small_planted, tmp_path):
    train(replace(SMALL, steps=10), small_planted, checkpoint=tmp_path / "c", progress=False)
    with pytest.raises(SaeLiteError, match="different configuration"):
        train(replace(SMALL, steps=10, k=4), small_planted, checkpoint=tmp_path / "c", resume=True)
    with pytest.raises(SaeLiteError, match="nothing to resume"):
        train(SMALL, small_planted, checkpoint=tmp_path / "none", resume=True)


def test_run_directory_round_trip_without_pickle(small_planted, tmp_path):
    sae, history = train(replace(SMALL, steps=10), small_planted, progress=False)
    path = save_run(tmp_path / "run", sae, replace(SMALL, steps=10), {"name": "planted"}, {"r2": 0.5}, history)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "history.json", "metrics.json", "sae.safetensors"]
    run = load_run(path)
    assert all(torch.equal(p, q) for p, q in zip(sae.parameters(), run.sae.parameters()))
    assert run.config == replace(SMALL, steps=10) and run.metrics == {"r2": 0.5}
    with pytest.raises(SaeLiteError, match="already exists"):
        save_run(path, sae, SMALL, {}, {})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_batches_cover_each_epoch_once():
    seen = [batch_indices(100, 10, seed=0, step=s) for s in range(10)]
    assert sorted(int(i) for batch in seen for i in batch) == list(range(100))


def test_every_epoch_has_its_own_order_and_a_batch_is_the_same_when_recomputed():
    first, second = ([batch_indices(100, 10, seed=0, step=s) for s in steps] for steps in (range(10), range(10, 20)))
    assert sorted(int(i) for batch in second for i in batch) == list(range(100))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(batch_indices(100, 10, seed=1, step=0), first[0])
    assert np.array_equal(batch_indices(100, 10, seed=0, step=3), first[3])
    with pytest.raises(ValueError):  # the kept order of an epoch cannot be changed by a caller
        epoch_order(100, 0, 0)[0] = 1


def test_learning_rate_warmdown():
    config = TrainConfig(steps=100, lr=1.0, warmdown=0.2)
    assert learning_rate(config, 0) == 1.0 and learning_rate(config, 90) == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=0), "0 < k"), (dict(k=512), "0 < k"), (dict(n_latents=0), "n_latents"),
    (dict(penalty="ratio", weight=-1.0), "weight"), (dict(penalty="l2"), "unknown penalty"),
    (dict(weight=0.1), "without a penalty"), (dict(rule="relu"), "unknown activation"),
    (dict(lr=0.0), "lr"), (dict(batch_size=0), "batch_size"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(SaeLiteError, match=message):
        TrainConfig(**kwargs)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(SaeLiteError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(SaeLiteError, match="unknown device"):
        resolve_device("tpu")
