import math

import numpy as np
import pytest
import torch

from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import metrics, noise


def codes_and_labels(n: int, seed: int = 0):
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, 3, n)
    codes = np.zeros((n, 6), np.float32)
    for latent in range(6):  # latent j fires mostly on class j % 3, and sometimes on any input
        codes[:, latent] = np.where((labels == latent % 3) | (generator.random(n) < 0.2), generator.random(n), 0.0)
    ref = generator.standard_normal((n, 4)).astype(np.float32) + labels[:, None]
    return torch.as_tensor(codes), ref, labels


def test_bootstrap_standard_errors_shrink_as_one_over_root_n_and_are_seeded():
    small, large = codes_and_labels(200), codes_and_labels(3200)
    se_small, se_large = noise.bootstrap_se(*small, draws=40), noise.bootstrap_se(*large, draws=40)
    for metric in ("ms_mean", "purity_mean"):
        assert 0 < se_large[metric] < se_small[metric]
        assert se_small[metric] / se_large[metric] == pytest.approx(4.0, rel=0.5)  # sqrt(3200 / 200)
    assert noise.bootstrap_se(*small, draws=5, seed=1) == noise.bootstrap_se(*small, draws=5, seed=1)


def test_the_bootstrap_resamples_the_inputs_it_is_given():
    codes, ref, labels = codes_and_labels(400)
    se = noise.bootstrap_se(codes, ref, labels, draws=30)
    # the spread of the metric over independent test sets of the same size is of the same order
    ms = [float(torch.nanmean(metrics.monosemanticity(*codes_and_labels(400, seed)[:2]))) for seed in range(1, 31)]
    assert se["ms_mean"] == pytest.approx(np.std(ms, ddof=1), rel=0.6)


def test_accuracy_standard_error_and_bad_input():
    assert noise.accuracy_se(0.5, 10_000) == pytest.approx(0.005)
    assert noise.accuracy_se(0.9, 800) == pytest.approx(math.sqrt(0.09 / 800))
    with pytest.raises(SaeLiteError, match="n >= 1"):
        noise.accuracy_se(0.5, 0)
    codes, ref, labels = codes_and_labels(50)
    with pytest.raises(SaeLiteError, match="one row per test input"):
        noise.bootstrap_se(codes, ref[:10], labels)
    with pytest.raises(SaeLiteError, match="draws"):
        noise.bootstrap_se(codes, ref, labels, draws=1)


def test_chance_levels_sit_below_the_scores_of_codes_that_follow_the_classes():
    codes, ref, labels = codes_and_labels(2000)
    chance = noise.chance_levels(codes, ref, labels)
    measured = {"ms_mean": float(torch.nanmean(metrics.monosemanticity(codes, ref))),
                "purity_mean": float(torch.nanmean(metrics.class_purity(codes, labels)))}
    for metric in ("ms_mean", "purity_mean"):
        assert chance[metric] < measured[metric] - 0.05, metric
    # three balanced classes: a latent that fires on many inputs is about 1/3 pure by chance
    assert chance["purity_mean"] == pytest.approx(1 / 3, abs=0.05)
    assert noise.chance_levels(codes, ref, labels, seed=2) == noise.chance_levels(codes, ref, labels, seed=2)


def test_chance_levels_without_labels_give_ms_only():
    codes, ref, _ = codes_and_labels(200)
    chance = noise.chance_levels(codes, ref, None, draws=2)
    assert np.isfinite(chance["ms_mean"]) and np.isnan(chance["purity_mean"])
