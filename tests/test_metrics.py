import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

from sae_lite.evaluation import metrics, probes
from sae_lite.evaluation.metrics import class_purity, feature_recovery, monosemanticity, r2
from sae_lite.evaluation.probes import keep_top


def test_r2_matches_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 6))
    x[:, 2] = 1.0  # a constant dimension is skipped, as in scikit-learn
    x_hat = x + 0.3 * rng.standard_normal((50, 6))
    varying = [0, 1, 3, 4, 5]
    assert r2(x, x_hat) == pytest.approx(r2_score(x[:, varying], x_hat[:, varying]), abs=1e-10)


def test_fvu_and_nmse():
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    x_hat = np.array([[1.0, 2.0], [3.0, 5.0]])
    assert metrics.fvu(x, x_hat) == pytest.approx(1.0 / (1 + 4 + 1 + 4))
    assert metrics.nmse(x, x_hat) == pytest.approx(1.0 / (1 + 4 + 9 + 36))


def test_variance_weighted_r2_is_not_swamped_by_a_nearly_constant_dimension(small_planted):
    """On real embeddings a few dimensions barely vary; the uniform average of per-dimension R^2 is
    then ruled by them, the variance-weighted R^2 (1 - FVU, what evaluate reports as r2_vw) is not."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4))
    x[:, 3] = 1e-3 * rng.standard_normal(200)          # a dimension that hardly varies
    x_hat = x + 0.1 * rng.standard_normal((200, 4))     # the same small error everywhere
    assert r2(x, x_hat) < 0 < 0.95 < 1 - metrics.fvu(x, x_hat)
    assert 1 - metrics.fvu(x, x_hat) == pytest.approx(r2_score(x, x_hat, multioutput="variance_weighted"))
    from sae_lite.core.sae import SAE
    scores = metrics.evaluate(SAE(small_planted.d, 64, 4), small_planted)
    assert scores["r2_vw"] == pytest.approx(1 - scores["fvu"])


def brute_force_ms(acts, ref):
    acts, ref = np.asarray(acts, float), np.asarray(ref, float)
    p = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
    cos = p @ p.T
    out = []
    for j in range(acts.shape[1]):
        a = acts[:, j]
        span = a.max() - a.min()
        a = (a - a.min()) / span if span > 0 else np.zeros_like(a)
        pair = np.outer(a, a)
        np.fill_diagonal(pair, 0)
        out.append((pair * cos).sum() / pair.sum() if pair.sum() > 1e-12 else np.nan)
    return np.array(out)


def test_monosemanticity_matches_pairwise_form():
    rng = np.random.default_rng(1)
    acts = np.maximum(rng.standard_normal((40, 7)), 0)
    acts[:, 3] = 0.0            # never fires -> NaN
    acts[:, 4] = 0.0
    acts[5, 4] = 2.0            # fires once -> NaN (no pair)
    ref = rng.standard_normal((40, 5))
    ref[7] = 0.0                # a zero reference counts as orthogonal
    got = monosemanticity(torch.tensor(acts), torch.tensor(ref)).numpy()
    want = brute_force_ms(acts, ref)
    assert np.isnan(got[3]) and np.isnan(got[4])
    np.testing.assert_allclose(got, want, rtol=1e-5, equal_nan=True)


def test_monosemanticity_is_one_for_identical_references():
    acts = torch.rand(30, 4)
    ref = torch.ones(30, 3)
    assert torch.allclose(monosemanticity(acts, ref), torch.ones(4))


def test_class_purity_by_hand():
    acts = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [0.5, 0.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    purity = class_purity(acts, labels)
    assert purity[0].item() == pytest.approx(2 / 3)
    assert purity[1].item() == pytest.approx(1 / 2)
    assert torch.isnan(purity[2])
    weighted = class_purity(acts, labels, weighted=True)
    assert weighted[0].item() == pytest.approx(3 / 3.5)
    assert weighted[1].item() == pytest.approx(3 / 4)


def test_class_purity_rejects_wrong_label_length():
    with pytest.raises(ValueError, match="labels must be"):
        class_purity(torch.rand(5, 2), np.zeros(4, int))


def test_feature_recovery():
    atoms = torch.eye(4)
    W = torch.cat([torch.eye(4)[:3], -torch.eye(4)[3:]])
    signed = feature_recovery(W, atoms)
    assert signed["recovery_matched"] == pytest.approx(0.75)
    assert feature_recovery(W, atoms, signed=False)["recovery_matched"] == 1.0


def test_keep_top_by_magnitude():
    codes = torch.tensor([[0.1, -3.0, 2.0, 0.0]])
    assert keep_top(codes, 2).tolist() == [[0.0, -3.0, 2.0, 0.0]]
    assert keep_top(codes, 10).tolist() == codes.tolist()


def test_truncated_probe_improves_with_m():
    """The class latent is the second largest of each code, after a large uninformative one: with m = 1
    the probe sees no class (chance), with m = 2 it sees it (near perfect)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    codes = np.abs(rng.standard_normal((300, 20))) * 0.1
    codes[np.arange(300), y] += 1.0                                # the class latent
    codes[np.arange(300), 10 + rng.integers(0, 10, 300)] += 3.0    # a stronger, random one
    result = probes.truncated_probe(codes[:200], y[:200], codes[200:], y[200:], [1, 2])
    assert result[1]["test"] < 0.55 and result[2]["test"] > 0.95
    assert set(result) == {1, 2}


def test_both_ms_conventions_on_a_case_with_dead_latents():
    """Pach (sae-for-vlm metric.py): mean over latents where MS is defined, against a separate reference;
    MonoLoss (sae/loss.py, train_topk.py): mean over all latents, undefined = 0, against the input."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((40, 5))
    ref = rng.standard_normal((40, 3))
    acts = np.abs(rng.standard_normal((40, 6)))
    acts[:, 2] = 0.0                    # dead: never fires
    acts[:, 4] = 0.0
    acts[7, 4] = 1.3                    # fires on one input only: MS undefined
    per_ref, per_input = monosemanticity(acts, ref), monosemanticity(acts, inputs)
    defined = [0, 1, 3, 5]
    assert torch.isnan(per_ref[[2, 4]]).all() and not torch.isnan(per_ref[defined]).any()
    result = metrics.ms_conventions(acts, ref, inputs)
    assert result["ms_defined"] == 4
    assert result["ms_pach"] == pytest.approx(float(per_ref[defined].mean()))
    assert result["ms_monoloss"] == pytest.approx(float(per_input[defined].sum()) / 6)    # dead ones count 0
    assert result["ms_monoloss"] != pytest.approx(float(per_input[defined].mean()))     # the averages differ


def test_evaluate_reports_both_ms_conventions_and_names_the_reference(small_planted):
    from sae_lite.core.sae import SAE

    sae = SAE(small_planted.d, 64, 4).eval()
    scores = metrics.evaluate(sae, small_planted)
    assert scores["ms_reference"] == "planted codes"
    assert scores["ms_mean"] == scores["ms_pach"]
    expected = metrics.ms_conventions(metrics.encode_all(sae, small_planted.x)[0], small_planted.ref, small_planted.x)
    assert {key: scores[key] for key in expected} == pytest.approx(expected)
