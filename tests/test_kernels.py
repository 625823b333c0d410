"""The sparse backend equals the dense reference: same loss, gradients and weights (float tolerance)."""

from dataclasses import replace

import pytest
import torch

from sae_lite import SaeLiteError
from sae_lite.core import kernels, penalties
from sae_lite.core.config import TrainConfig
from sae_lite.core.sae import SAE
from sae_lite.core.train import check, loss_function, make_optimizer, train, train_step

D, N, K, B = 24, 96, 6, 64
CASES = {
    "baseline": dict(auxk=False),
    "offsupport": dict(auxk=False, penalty="offsupport", weight=0.1),
    "offsupport-unmasked": dict(auxk=False, penalty="offsupport", weight=0.1, masked=False),
    "ratio": dict(auxk=False, penalty="ratio", weight=0.1),
    "ratio-unmasked": dict(auxk=False, penalty="ratio", weight=0.1, masked=False),
    "auxk": dict(auxk=True, auxk_alpha=0.5, k_aux=8),
    "all": dict(auxk=True, k_aux=40, penalty="ratio", weight=0.1),
    # two thirds of the latents dead; k_aux a large share of them, then above their number
    "auxk-many-dead": dict(auxk=True, auxk_alpha=0.5, k_aux=40),
    "auxk-above-dead": dict(auxk=True, auxk_alpha=0.5, k_aux=80),
    "all-many-dead": dict(auxk=True, k_aux=80, penalty="offsupport", weight=0.1),
}
AUXK_PATHS = {"sparse": float("inf"), "dense": 0.0}  # kernels.AUXK_DENSE_FROM: never / always dense


def _setup(case: str, seed: int = 0):
    config = TrainConfig(k=K, n_latents=N, lr=1e-2, **CASES[case])
    gen = torch.Generator().manual_seed(seed)
    # clustered inputs, so that some latents win no input of a batch and the batch-active set A < N
    x = (torch.randn(B, 3, generator=gen) @ torch.randn(3, D, generator=gen) + 0.1 * torch.randn(B, D, generator=gen))
    sae = SAE(D, N, K, seed=seed)
    sae.init_b_pre(x, "mean")
    dead = torch.arange(N) % 3 == 0
    if "many-dead" in case or "above-dead" in case:
        dead = ~dead  # 64 of 96
    return config, x.double(), sae.double(), dead


def _grads(sae: SAE, config: TrainConfig, x, dead) -> tuple[dict, dict]:
    sae.zero_grad(set_to_none=True)
    terms = loss_function(config)(sae, x, config, dead)
    terms.loss.backward()
    return terms, {name: p.grad.clone() for name, p in sae.named_parameters()}


@pytest.mark.parametrize("chunk", [1 << 17, 500])  # the penalty's block in one piece, or 5 rows at a time
@pytest.mark.parametrize("auxk_path", AUXK_PATHS)
@pytest.mark.parametrize("case", CASES)
def test_sparse_loss_and_gradients_equal_dense(case, auxk_path, chunk, monkeypatch):
    if auxk_path == "dense" and not CASES[case]["auxk"]:
        pytest.skip("no AuxK")
    monkeypatch.setattr(kernels, "AUXK_DENSE_FROM", AUXK_PATHS[auxk_path])
    monkeypatch.setattr(kernels, "CHUNK", chunk)
    config, x, sae, dead = _setup(case)
    dense, dense_grads = _grads(sae, config, x, dead)
    sparse, sparse_grads = _grads(sae, replace(config, backend="sparse"), x, dead)
    for key in ("loss", "fvu", "penalty", "auxk", "l0"):
        torch.testing.assert_close(getattr(sparse, key), getattr(dense, key), rtol=1e-10, atol=1e-12, msg=key)
    assert torch.equal(sparse.fired, dense.fired)
    for name, grad in dense_grads.items():
        torch.testing.assert_close(sparse_grads[name], grad, rtol=1e-9, atol=1e-12, msg=name)
    if case != "baseline":
        assert dense.penalty > 0 or dense.auxk > 0  # the case exercises its term


@pytest.mark.parametrize("auxk_path", AUXK_PATHS)
@pytest.mark.parametrize("case", CASES)
def test_sparse_weights_equal_dense_after_steps(case, auxk_path, monkeypatch):
    if auxk_path == "dense" and not CASES[case]["auxk"]:
        pytest.skip("no AuxK")
    monkeypatch.setattr(kernels, "AUXK_DENSE_FROM", AUXK_PATHS[auxk_path])
    config, x, sae, dead = _setup(case, seed=1)
    trained = {}
    for backend in ("dense", "sparse"):
        model = SAE(D, N, K).double()
        model.load_state_dict(sae.state_dict())
        optimizer = make_optimizer(model, config)
        for _ in range(5):
            train_step(model, optimizer, x, replace(config, backend=backend), dead, config.lr)
        trained[backend] = model
    for (name, p), q in zip(trained["dense"].named_parameters(), trained["sparse"].parameters()):
        torch.testing.assert_close(q, p, rtol=1e-8, atol=1e-10, msg=name)
        assert not torch.equal(p, sae.get_parameter(name))  # the steps moved it


@pytest.mark.parametrize("name", ["offsupport", "ratio"])
def test_penalty_block_is_restricted_to_batch_active_units(name):
    """The sparse backend's masked penalty is the penalty of the batch-active columns alone (written here
    with autograd on just those columns): same value, same encoder gradient, none on the other rows;
    unmasked, the gradient reaches other rows too."""
    config, x, sae, dead = _setup("ratio")
    config = replace(config, penalty=name, weight=1.0, backend="sparse")
    pre = sae.pre_activations(x).detach()
    support = torch.zeros_like(pre, dtype=torch.bool).scatter_(1, kernels.top_k(pre, K)[1], True)
    active = support.any(0)
    assert 0 < int(active.sum()) < N  # so the masked path runs on a strict subset of columns

    W_enc = sae.W_enc.detach().clone().requires_grad_()
    acts = torch.relu((x - sae.b_pre.detach()) @ W_enc.T + sae.b_enc.detach())[:, active]
    reference = penalties.get(name)(acts, support[:, active], masked=False)
    reference.backward()

    def penalty_grad(masked: bool):
        terms, grads = _grads(sae, replace(config, masked=masked), x, dead)
        _, without = _grads(sae, replace(config, penalty="none", weight=0.0, masked=masked), x, dead)
        return terms.penalty, grads["W_enc"] - without["W_enc"]

    value, grad = penalty_grad(masked=True)
    torch.testing.assert_close(value, reference.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, W_enc.grad, rtol=1e-8, atol=1e-10)
    assert torch.all(grad[~active] == 0) and grad[active].abs().sum() > 0
    _, unmasked = penalty_grad(masked=False)
    assert unmasked[~active].abs().sum(1).gt(0).any()


def test_top_k_matches_the_selection_rule_with_ties_at_zero():
    pre = torch.tensor([[3.0, -1.0, 2.0, -2.0, 0.5], [-1.0, -2.0, 0.7, -3.0, -0.5]])
    values, index = kernels.top_k(pre, 3)
    reference = torch.relu(pre).topk(3, dim=1, sorted=False).indices.sort(dim=1).values
    assert torch.equal(index, reference) and torch.equal(values, torch.relu(pre).gather(1, index))


def test_sparse_training_matches_dense_training(small_planted):
    config = TrainConfig(k=8, n_latents=128, steps=30, batch_size=128, log_every=10, penalty="offsupport",
                         weight=0.01, dead_after=256)
    dense, dense_history = train(config, small_planted, progress=False)
    sparse, sparse_history = train(replace(config, backend="sparse"), small_planted, progress=False)
    for p, q in zip(dense.parameters(), sparse.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    assert dense_history["dead"] == sparse_history["dead"]
    for key in ("loss", "fvu", "penalty", "auxk"):
        torch.testing.assert_close(torch.tensor(sparse_history[key]), torch.tensor(dense_history[key]), rtol=1e-4, atol=1e-6)


def test_backend_is_validated(monkeypatch):
    with pytest.raises(SaeLiteError, match="backend must be"):
        TrainConfig(backend="fast")
    config = TrainConfig(rule="abstopk", backend="sparse")   # the backend is asked when training starts
    with pytest.raises(SaeLiteError, match="use --backend dense"):
        check(config)


@pytest.mark.parametrize("name", ["offsupport", "ratio"])
def test_closed_form_penalty_gradients_match_autograd(name):
    gen = torch.Generator().manual_seed(2)
    pre = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    pre[2] = -1.0  # a row with no positive activation: the ratio's guarded 0/0
    support = pre.topk(3, dim=1).indices.sort(dim=1).values
    value, grad = kernels.PENALTY_GRADS[name](pre.relu(), support)
    leaf = pre.clone().requires_grad_()
    mask = torch.zeros_like(pre, dtype=torch.bool).scatter_(1, support, True)
    reference = penalties.get(name)(leaf.relu(), mask, masked=False)
    reference.backward()
    torch.testing.assert_close(value, reference.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, leaf.grad, rtol=1e-12, atol=1e-14)


def test_sparse_backend_refuses_a_penalty_it_lacks(monkeypatch):
    monkeypatch.setitem(penalties.PENALTIES, "l0", penalties.no_penalty)
    with pytest.raises(SaeLiteError, match="implements the penalties"):
        check(TrainConfig(penalty="l0", weight=0.1, backend="sparse"))
