import numpy as np
from safetensors.torch import load_file, save_file

from sae_lite.book import diagnostics
from sae_lite.core.config import TrainConfig
from sae_lite.data.spec import data_spec
from sae_lite.study.results import cached_run


def test_top_latent_share_spots_a_latent_that_tops_every_input(tmp_path, monkeypatch):
    monkeypatch.setenv("SAE_LITE_CACHE", str(tmp_path))
    run = cached_run(TrainConfig(k=4, n_latents=32, steps=20, batch_size=64), data_spec("digits"))
    [plain] = diagnostics.top_latent_share([{"path": str(run.path), "method": "baseline"}])
    assert plain["method"] == "baseline" and 0 < plain["top1_share"] < 0.9 and plain["top1_distinct"] > 1
    weights = load_file(run.path / "sae.safetensors")
    weights["b_enc"][0] = 1e4                              # latent 0 now dominates every input
    save_file(weights, run.path / "sae.safetensors")
    [dense] = diagnostics.top_latent_share([{"path": str(run.path)}])
    assert dense["top1_share"] == 1.0 and dense["top1_distinct"] == 1


def test_rank_gap_is_the_kth_minus_the_next_activation_after_relu():
    import torch

    from sae_lite.book.diagnostics import rank_gap
    from sae_lite.core.sae import SAE

    sae = SAE(3, 4, 2, seed=0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(4, 3))          # pre = (x0, x1, x2, 0): b_pre and b_enc are 0
    x = np.array([[5.0, 3.0, 1.0], [-1.0, 2.0, 0.5]], np.float32)
    # sorted ReLU(pre): (5, 3, 1, 0) -> 3 - 1 = 2; (2, 0.5, 0, 0) -> 0.5 - 0 = 0.5
    np.testing.assert_allclose(rank_gap(sae, x, 2), [2.0, 0.5])
    np.testing.assert_allclose(rank_gap(sae, x, 1), [2.0, 1.5])


def test_penalty_gradients_are_the_package_s_penalties_on_each_unit():
    """Off-support L1: 1 on each unselected unit of A, 0 on selected units and outside A. Ratio: the
    closed form (1 - (|a|_1/|a|_2)(a_j/|a|_2)) / |a|_2 on the units of A, so the largest are pushed up."""
    import torch

    from sae_lite.book.diagnostics import penalty_gradient
    from sae_lite.core.sae import SAE

    sae = SAE(8, 32, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    off = penalty_gradient(sae, x, "offsupport")
    expected = [0.0 if selected or not active else 1.0 for selected, active in zip(off["selected"], off["in_batch"])]
    np.testing.assert_allclose(off["gradient"], expected, atol=1e-6)
    assert off["selected"][:3] == [True, True, True] and not any(off["selected"][3:])
    ratio = penalty_gradient(sae, x, "ratio")
    a = np.array(ratio["activation"]) * np.array(ratio["in_batch"])
    with torch.no_grad():
        acts = sae.encode(torch.as_tensor(x)).acts[0].numpy()
        in_a = np.zeros(32, bool)
        in_a[np.flatnonzero(sae.encode(torch.as_tensor(x)).support.any(0).numpy())] = True
    full = acts * in_a
    l1, l2 = full.sum(), np.sqrt((full ** 2).sum())
    want = np.where(np.array(ratio["in_batch"]), (1 - (l1 / l2) * (a / l2)) / l2, 0.0)
    np.testing.assert_allclose(ratio["gradient"], want, rtol=1e-4, atol=1e-6)
    assert ratio["gradient"][0] < 0 < max(ratio["gradient"])


def test_rank_profile_is_each_input_s_sorted_activations_over_its_largest():
    import torch

    from sae_lite.book.diagnostics import rank_profile
    from sae_lite.core.sae import SAE

    sae = SAE(3, 4, 1, seed=0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(4, 3))
    x = np.array([[4.0, 2.0, 1.0], [2.0, 0.0, 2.0]], np.float32)   # sorted ReLU(pre): (4, 2, 1, 0), (2, 2, 0, 0)
    np.testing.assert_allclose(rank_profile(sae, x, ranks=3), [1.0, (0.5 + 1.0) / 2, (0.25 + 0.0) / 2])
