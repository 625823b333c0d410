"""`train()` applies what the standalone pieces do, checked step by step on a tiny run.

A spy records, just before every optimiser step, the learning rate, the decoder's gradient and the
pre-bias; another records what the loss was given (the dead-latent mask) and what it returned. Each
test compares what the loop did with a value computed here another way: the schedule's formula, the
data's mean, the dead-latent rule, BatchTopK's moving average.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from sae_lite.core import train as train_module
from sae_lite.core.config import TrainConfig
from sae_lite.core.rules import batchtopk as batchtopk_module
from sae_lite.data.datasets import Dataset

D, N, K, B = 8, 48, 2, 16
TINY = TrainConfig(k=K, n_latents=N, batch_size=B, steps=20, lr=1e-2, warmdown=0.25, log_every=5, auxk=False,
                   device="cpu", b_pre_init="mean")


@pytest.fixture(scope="module")
def data() -> Dataset:
    """32 inputs in 8-d, clustered along three directions and far from the origin (mean != 0)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)) @ rng.standard_normal((3, D)) + 0.1 * rng.standard_normal((32, D)) + 3.0
    return Dataset(x.astype(np.float32))


class Spy:
    """Records every optimiser step of `train` (a step pre-hook) and every loss the loop computes."""

    def __init__(self, monkeypatch):
        self.steps: list[dict] = []
        self.losses: list[dict] = []
        make_optimizer, loss_function = train_module.make_optimizer, train_module.loss_function

        def spied_optimizer(sae, config):
            optimizer = make_optimizer(sae, config)
            optimizer.register_step_pre_hook(lambda opt, args, kwargs: self._step(sae, opt))
            return optimizer

        def spied_loss(config):
            loss = loss_function(config)

            def recorded(sae, x, config, dead):
                terms = loss(sae, x, config, dead)
                self.losses.append({"dead": dead.clone(), "auxk": float(terms.auxk.detach()), "fired": terms.fired.clone()})
                return terms
            return recorded

        monkeypatch.setattr(train_module, "make_optimizer", spied_optimizer)
        monkeypatch.setattr(train_module, "loss_function", spied_loss)

    def _step(self, sae, optimizer) -> None:
        grad = sae.W_dec.grad
        self.steps.append({"lr": optimizer.param_groups[0]["lr"],
                           "parallel": float((grad * sae.W_dec.detach()).sum(1).abs().max()),
                           "grad": float(grad.norm(dim=1).max()),
                           "norms": sae.W_dec.detach().norm(dim=1).clone(),
                           "b_pre": sae.b_pre.detach().clone(),
                           "enc_grad": sae.W_enc.grad.detach().clone()})


def test_every_step_uses_the_scheduled_learning_rate(monkeypatch, data):
    spy = Spy(monkeypatch)
    train_module.train(TINY, data, progress=False)
    # lr * min(1, steps left / warmdown steps): 15 constant steps, then 5 / 5, 4 / 5, ..., 1 / 5 of it
    want = [0.01] * 15 + [0.01 * left / 5 for left in (5, 4, 3, 2, 1)]
    assert [s["lr"] for s in spy.steps] == pytest.approx(want, rel=1e-12)
    assert [s["lr"] for s in spy.steps] == pytest.approx([train_module.learning_rate(TINY, s) for s in range(20)])


def test_the_decoder_gradient_loses_its_component_along_each_atom_before_every_step(monkeypatch, data):
    spy = Spy(monkeypatch)
    sae, _ = train_module.train(replace(TINY, penalty="ratio", weight=0.1), data, progress=False)
    assert len(spy.steps) == TINY.steps
    for step in spy.steps:
        assert step["grad"] > 0
        assert step["parallel"] <= 1e-5 * step["grad"]                      # projected out
        torch.testing.assert_close(step["norms"], torch.ones(N))            # unit atoms at every step
    torch.testing.assert_close(sae.W_dec.detach().norm(dim=1), torch.ones(N))  # renormalised after the last


@pytest.mark.parametrize("method", ["mean", "geometric_median"])
def test_b_pre_starts_at_the_data_s_mean_or_geometric_median(monkeypatch, data, method):
    from scipy.optimize import minimize

    spy = Spy(monkeypatch)
    sae, _ = train_module.train(replace(TINY, b_pre_init=method, steps=3), data, progress=False)
    x = data.x.astype(np.float64)
    if method == "mean":
        want = x.mean(0)
    else:  # the point with the least summed distance, found by a general-purpose minimiser
        want = minimize(lambda b: np.linalg.norm(x - b, axis=1).sum(), x.mean(0), method="Nelder-Mead",
                        options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 20000}).x
    np.testing.assert_allclose(spy.steps[0]["b_pre"].numpy(), want, atol=2e-3)
    assert np.abs(want).min() > 1.0                                           # far from the zero it starts at
    assert not torch.equal(sae.b_pre.detach(), spy.steps[0]["b_pre"])       # and it trains from there


def test_dead_latents_follow_the_rule_and_auxk_trains_their_encoder_rows(monkeypatch, data):
    """A latent is dead once it has not fired for ``dead_after`` inputs; AuxK gives the dead latents
    that did not fire in the batch a gradient (they get none without AuxK)."""
    config = replace(TINY, auxk=True, auxk_alpha=1.0, k_aux=4, dead_after=B)
    spy = Spy(monkeypatch)
    train_module.train(config, data, progress=False)
    since = torch.zeros(N, dtype=torch.long)
    revived = 0
    for loss, step in zip(spy.losses, spy.steps, strict=True):
        assert torch.equal(loss["dead"], since >= config.dead_after)        # the rule, counted here
        since += B
        since[loss["fired"]] = 0
        quiet = loss["dead"] & ~loss["fired"]                                # reached by AuxK only
        if loss["dead"].any():
            assert loss["auxk"] > 0
            revived += int((step["enc_grad"][quiet].abs().sum(1) > 0).sum())
        else:
            assert loss["auxk"] == 0
    assert sum(bool(loss["dead"].any()) for loss in spy.losses) >= 10 and revived > 0

    spy = Spy(monkeypatch)
    train_module.train(replace(config, auxk=False), data, progress=False)
    quiet = [(s["enc_grad"][loss["dead"] & ~loss["fired"]]) for loss, s in zip(spy.losses, spy.steps)]
    assert sum(len(q) for q in quiet) > 0 and all(torch.all(q == 0) for q in quiet)


def test_batchtopk_threshold_is_the_moving_average_of_each_batch_s_smallest_kept_activation(monkeypatch, data):
    seen: list[np.ndarray] = []
    batchtopk = batchtopk_module.batchtopk

    def recorded(pre, k, threshold=None):
        if threshold is None:                                                  # a training batch
            seen.append(pre.detach().double().numpy().copy())
        return batchtopk(pre, k, threshold)

    monkeypatch.setattr(batchtopk_module, "batchtopk", recorded)
    sae, _ = train_module.train(replace(TINY, rule="batchtopk"), data, progress=False)
    assert len(seen) == TINY.steps
    smallest = []
    for pre in seen:                                     # the B*k largest ReLU(pre) of the batch: keep the least > 0
        kept = np.sort(np.maximum(pre, 0).ravel())[::-1][:B * K]
        smallest.append(kept[kept > 0].min())
    start = sae.rule.first_estimate(TINY.steps)                                      # dictionary_learning: after
    assert 1 < start < TINY.steps                                                    # a start, then an EMA
    threshold = smallest[start]                                          # steps count from 0; the first update copies
    for value in smallest[start + 1:]:
        threshold = 0.999 * threshold + (1 - 0.999) * value     # dictionary_learning's beta
    assert float(sae.rule.threshold) == pytest.approx(threshold, rel=1e-5)
    assert abs(threshold - smallest[start]) > 1e-6 and abs(threshold - smallest[-1]) > 1e-3  # the average matters
