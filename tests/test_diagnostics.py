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
