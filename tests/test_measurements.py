"""The measurements the claims and figures rest on, each against a value computed another way.

Dead latents, the k-sweep, the truncated probe, monosemanticity and class purity are compared with
plain loops or NumPy references on data where a wrong implementation gives another number: latents
that never fire next to latents that fire only with a negative code, inference budgets k' != k,
test codes that change the probe's accuracy when they are not truncated, activations that never
reach 0, and signed codes (AbsTopK).
"""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sae_lite.core.sae import SAE
from sae_lite.data.datasets import Dataset
from sae_lite.evaluation import metrics, probes


def naive_dead(codes) -> list[int]:
    codes = np.asarray(codes)
    return [j for j in range(codes.shape[1]) if all(codes[i, j] == 0 for i in range(codes.shape[0]))]


def reference_codes(sae: SAE, x: np.ndarray, k: int) -> np.ndarray:
    """Per-input Top-k (AbsTopK: largest |pre|, sign kept) in NumPy, from the SAE's weights."""
    W_enc, b_enc, b_pre = (p.detach().double().numpy() for p in (sae.W_enc, sae.b_enc, sae.b_pre))
    pre = (x - b_pre) @ W_enc.T + b_enc
    signed = sae.activation == "abstopk"
    acts = np.abs(pre) if signed else np.maximum(pre, 0)
    codes = np.zeros_like(pre)
    for i in range(len(x)):
        keep = np.argsort(-acts[i], kind="stable")[:k]
        codes[i, keep] = pre[i, keep] if signed else acts[i, keep]
    return codes


def reference_r2_vw(sae: SAE, x: np.ndarray, k: int) -> float:
    x_hat = reference_codes(sae, x, k) @ sae.W_dec.detach().double().numpy() + sae.b_pre.detach().double().numpy()
    return 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()


def brute_force_ms(acts, ref) -> np.ndarray:
    """MS_j as the activation-weighted mean cosine over pairs of distinct inputs (the quadratic form)."""
    acts, ref = np.asarray(acts, float), np.asarray(ref, float)
    p = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
    out = []
    for j in range(acts.shape[1]):
        a = acts[:, j]
        a = (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else np.zeros_like(a)
        num = den = 0.0
        for n in range(len(a)):
            for m in range(len(a)):
                if n != m:
                    num += a[n] * a[m] * p[n] @ p[m]
                    den += a[n] * a[m]
        out.append(num / den if den > 1e-12 else np.nan)
    return np.array(out)


def naive_purity(codes, labels, weighted=False) -> np.ndarray:
    codes, out = np.asarray(codes, float), []
    for j in range(codes.shape[1]):
        mass: dict[int, float] = {}
        for value, label in zip(codes[:, j], labels):
            if value != 0:
                mass[int(label)] = mass.get(int(label), 0.0) + (abs(value) if weighted else 1.0)
        out.append(max(mass.values()) / sum(mass.values()) if mass else np.nan)
    return np.array(out)


def tiny_sae(activation: str = "topk", k: int = 4, seed: int = 0) -> tuple[SAE, np.ndarray]:
    """An SAE (d=8, N=32) with random biases, and 60 inputs far from its pre-bias."""
    sae = SAE(8, 32, k, activation, seed=seed).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_pre.copy_(torch.randn(8, generator=gen))
        sae.b_enc.copy_(0.3 * torch.randn(32, generator=gen))
        if activation == "batchtopk":
            sae.rule.threshold.fill_(0.2)
    x = np.random.default_rng(seed).standard_normal((60, 8)) * 2
    return sae, x


# ---- dead latents ----------------------------------------------------------------------------

def test_dead_latents_are_the_ones_that_never_fire_and_a_negative_code_counts_as_firing():
    codes = torch.zeros(5, 6)
    codes[0, 0] = 1.0
    codes[[1, 3], 2] = torch.tensor([0.5, 2.0])
    codes[4, 4] = -0.7              # AbsTopK: fires with a negative code
    codes[2, 5] = 1e-9              # fires, barely
    dead = metrics.dead_latents(codes)
    assert dead.tolist() == [False, True, False, True, False, False]
    assert torch.nonzero(dead).flatten().tolist() == naive_dead(codes) == [1, 3]


@pytest.mark.parametrize("activation", ["topk", "abstopk"])
def test_evaluate_counts_the_latents_that_never_fire(activation):
    sae, x = tiny_sae(activation, k=2)
    with torch.no_grad():
        sae.b_enc[[3, 7, 20]] = -100.0 if activation == "topk" else 0.0
        if activation == "abstopk":     # |pre| = 0 for every input: never among the top k
            sae.W_enc[[3, 7, 20]] = 0.0
    scores = metrics.evaluate(sae, Dataset(x.astype(np.float32)))
    dead = naive_dead(reference_codes(sae, x, 2))
    assert {3, 7, 20} <= set(dead) and len(dead) < 32 - 10     # most latents fire
    assert scores["dead"] == len(dead) and scores["dead_fraction"] == pytest.approx(len(dead) / 32)


# ---- the k-sweep -----------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["topk", "abstopk", "batchtopk", "soft"])
def test_k_sweep_runs_each_inference_k_against_a_numpy_reference(activation):
    """At k' the codes have exactly k' non-zeros per input (Top-k' per input, for every rule) and
    the R^2 is that of the reference reconstruction at k'; the sweep's values differ with k'."""
    sae, x = tiny_sae(activation, k=4)
    if activation != "abstopk":
        with torch.no_grad():
            sae.b_enc.fill_(20.0)                               # every ReLU(pre) > 0: L0 = k' exactly
    ks = [1, 2, 8, 16]
    sweep = metrics.k_sweep(sae, x, ks)
    for k in ks:
        codes = metrics.encode_all(sae, x, k)[0]
        assert (codes != 0).sum(1).eq(k).all()
        np.testing.assert_allclose(codes.double().numpy(), reference_codes(sae, x, k), rtol=1e-4, atol=1e-4)
        assert sweep[k] == pytest.approx(reference_r2_vw(sae, x, k), rel=1e-5, abs=1e-5)
    assert len({round(v, 6) for v in sweep.values()}) == len(ks)


def test_evaluate_reports_r2_at_half_and_double_k():
    sae, x = tiny_sae("topk", k=4)
    scores = metrics.evaluate(sae, Dataset(x.astype(np.float32)))
    assert scores["r2_half_k"] == pytest.approx(reference_r2_vw(sae, x, 2), rel=1e-5, abs=1e-5)
    assert scores["r2_double_k"] == pytest.approx(reference_r2_vw(sae, x, 8), rel=1e-5, abs=1e-5)
    assert scores["r2_vw"] == pytest.approx(reference_r2_vw(sae, x, 4), rel=1e-5, abs=1e-5)
    assert scores["l0"] == pytest.approx(np.mean((reference_codes(sae, x, 4) != 0).sum(1)))


def test_evaluate_reads_half_and_double_k_from_the_k_sweep(monkeypatch):
    """The k-sweep is measured in one place: evaluate's r2_half_k and r2_double_k are `k_sweep`'s values."""
    sae, x = tiny_sae("topk", k=4)
    x = x.astype(np.float32)
    scores = metrics.evaluate(sae, Dataset(x))
    sweep = metrics.k_sweep(sae, x, [2, 8])
    assert (scores["r2_half_k"], scores["r2_double_k"]) == (sweep[2], sweep[8])
    asked = []

    def marked(sae, x, ks):
        asked.append(list(ks))
        return {int(k): 1000.0 + k for k in ks}
    monkeypatch.setattr(metrics, "k_sweep", marked)
    scores = metrics.evaluate(sae, Dataset(x))
    assert asked == [[2, 8]] and (scores["r2_half_k"], scores["r2_double_k"]) == (1002.0, 1008.0)
    wide = tiny_sae("topk", k=16)[0]  # 2k = N: no double-k budget below N
    assert "r2_double_k" not in metrics.budget_robustness(wide, x) and asked[-1] == [8]


# ---- the truncated probe -----------------------------------------------------------------------

def direct_probe(train_x, y_train, test_x, y_test, m: int, truncate_test: bool = True) -> dict[str, float]:
    """Keep the m largest |code| of each row with a loop, drop the columns no training row keeps, fit
    scikit-learn's probe (the setting `linear_probe` documents) and score it."""
    def top(codes):
        out = np.zeros_like(codes)
        for i, row in enumerate(codes):
            keep = np.argsort(-np.abs(row), kind="stable")[:m]
            out[i, keep] = row[keep]
        return out
    train_t = top(train_x)
    used = (train_t != 0).any(0)
    test_t = top(test_x) if truncate_test else test_x
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=0))
    probe.fit(train_t[:, used], y_train)
    return {"train": probe.score(train_t[:, used], y_train), "test": probe.score(test_t[:, used], y_test)}


def signed_class_codes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of 3 classes on 12 latents: class c fires latent c most strongly (sometimes with a negative
    sign), and every input carries weaker latents that hint at the wrong class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    codes = 0.3 * np.abs(rng.standard_normal((n, 12)))
    codes[np.arange(n), (y + 1) % 3] += 1.0                       # a misleading runner-up
    codes[np.arange(n), y] += 1.5 * rng.choice([-1.0, 1.0], n, p=[0.3, 0.7])
    return codes, y


def test_truncated_probe_equals_a_direct_computation_and_truncates_the_test_codes_too():
    train_x, y_train = signed_class_codes(150, 0)
    test_x, y_test = signed_class_codes(90, 1)
    got = probes.truncated_probe(train_x, y_train, test_x, y_test, [1, 2, 12])
    for m in (1, 2, 12):
        want = direct_probe(train_x, y_train, test_x, y_test, m)
        assert got[m]["train"] == pytest.approx(want["train"]) and got[m]["test"] == pytest.approx(want["test"])
    untruncated = direct_probe(train_x, y_train, test_x, y_test, 2, truncate_test=False)
    assert abs(untruncated["test"] - got[2]["test"]) > 0.2       # the data shows a probe that forgot to truncate


# ---- monosemanticity and class purity ------------------------------------------------------------

def test_monosemanticity_of_activations_that_never_reach_zero_is_min_max_normalised():
    """Activations 1, 2, 3 normalise to 0, 1/2, 1; the one pair with weight (inputs 2 and 3) is orthogonal:
    MS = 0. Without subtracting the minimum it would be 2/11."""
    acts = torch.tensor([[1.0], [2.0], [3.0]])
    ref = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert metrics.monosemanticity(acts, ref).item() == pytest.approx(0.0, abs=1e-7)
    rng = np.random.default_rng(3)
    acts = 2.0 + rng.random((25, 5))                                 # every latent always active
    ref = rng.standard_normal((25, 4))
    np.testing.assert_allclose(metrics.monosemanticity(acts, ref).numpy(), brute_force_ms(acts, ref), rtol=1e-5)


def test_evaluate_scores_signed_codes_by_their_magnitude():
    """AbsTopK codes are signed; MS reads |code| and purity counts a negative code as firing."""
    sae, x = tiny_sae("abstopk", k=3, seed=2)
    labels = np.random.default_rng(2).integers(0, 3, len(x))
    ref = np.random.default_rng(4).standard_normal((len(x), 5))
    scores = metrics.evaluate(sae, Dataset(x.astype(np.float32), labels=labels, ref=ref.astype(np.float32)))
    codes = reference_codes(sae, x, 3)
    assert (codes < 0).any() and (codes > 0).any()
    assert scores["ms_mean"] == pytest.approx(np.nanmean(brute_force_ms(np.abs(codes), ref)), rel=1e-4)
    assert scores["purity_mean"] == pytest.approx(np.nanmean(naive_purity(codes, labels)), rel=1e-5)
    assert scores["weighted_purity_mean"] == pytest.approx(np.nanmean(naive_purity(codes, labels, True)), rel=1e-4)


def test_class_purity_of_signed_codes_by_hand_and_by_a_loop():
    codes = torch.tensor([[-1.0, 0.0], [2.0, 0.0], [-3.0, 1.0], [0.0, -1.0]])
    labels = np.array([0, 0, 1, 1])
    # latent 0 fires on inputs 0, 1, 2 (classes 0, 0, 1): 2/3; by mass |-1| + 2 vs |-3|: 1/2
    assert metrics.class_purity(codes, labels).tolist() == pytest.approx([2 / 3, 1.0])
    assert metrics.class_purity(codes, labels, weighted=True).tolist() == pytest.approx([0.5, 1.0])
    rng = np.random.default_rng(5)
    codes = rng.standard_normal((40, 9)) * (rng.random((40, 9)) < 0.3)
    codes[:, 4] = 0.0
    labels = rng.integers(0, 4, 40)
    for weighted in (False, True):
        np.testing.assert_allclose(metrics.class_purity(codes, labels, weighted).numpy(),
                                   naive_purity(codes, labels, weighted), rtol=1e-6, equal_nan=True)
