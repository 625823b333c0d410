"""AbsTopK, BatchTopK and SoftSAE: the selection rules, their state, their schedules and their bad inputs."""

from dataclasses import replace

import pytest
import torch

from sae_lite import SaeLiteError
from sae_lite.cli import main as cli_main
from sae_lite.core.config import TrainConfig
from sae_lite.core.loss import loss_terms
from sae_lite.core.rules.abstopk import abstopk
from sae_lite.core.rules.base import Selection
from sae_lite.core.rules.batchtopk import BatchTopKConfig, batch_threshold, batchtopk
from sae_lite.core.rules.lapsum import cdf_row_sums, laplace_cdf, laplace_pdf, soft_threshold
from sae_lite.core.rules.soft_ours import SoftOursConfig, soft_ours
from sae_lite.core.rules.softsae import SoftSAEConfig, schedule_table, soft
from sae_lite.core.rules.topk import topk
from sae_lite.core.sae import SAE
from sae_lite.core.train import make_optimizer, train, train_step
from sae_lite.evaluation import runs


def test_abstopk_keeps_k_largest_magnitudes_with_their_sign():
    pre = torch.randn(16, 40, generator=torch.Generator().manual_seed(0))
    sel = abstopk(pre, 5)
    assert sel.support.sum(1).eq(5).all()
    assert torch.equal(sel.acts, pre.abs())
    assert torch.equal(sel.codes, pre * sel.support)            # the sign is kept, no ReLU
    assert (sel.codes < 0).any()
    kept_min = torch.where(sel.support, sel.acts, torch.inf).min(1).values
    dropped_max = torch.where(sel.support, -torch.inf, sel.acts).max(1).values
    assert (kept_min >= dropped_max).all()


def test_abstopk_sae_reconstructs_a_negative_direction_with_one_latent():
    sae = SAE(d=4, n_latents=8, k=1, rule="abstopk")
    with torch.no_grad():
        sae.b_pre.zero_(), sae.b_enc.zero_()
    x = -3 * sae.W_dec[2:3].detach()                              # one atom with a negative coefficient
    out = sae(x)
    assert out.support[0].nonzero().flatten().tolist() == [2]
    assert out.codes[0, 2] < 0
    assert torch.allclose(out.x_hat, x, atol=1e-5)


def test_batchtopk_keeps_batch_times_k_units_in_training():
    pre = torch.randn(8, 30, generator=torch.Generator().manual_seed(1)) + 3   # all positive
    sel = batchtopk(pre, 4)
    assert int(sel.support.sum()) == 8 * 4
    assert sel.support.sum(1).ne(4).any()                         # rows share the budget
    threshold = batch_threshold(sel)
    assert torch.equal(sel.support, sel.acts >= threshold)


def test_batchtopk_eval_uses_the_threshold_and_save_load_keeps_it(tmp_path, small_planted):
    config = TrainConfig(k=4, n_latents=64, steps=30, batch_size=256, rule="batchtopk", log_every=10)
    sae, history = train(config, small_planted, progress=False)
    threshold = float(sae.rule.threshold)
    assert threshold > 0
    x = torch.as_tensor(small_planted.x[:200])
    with torch.no_grad():
        out = sae(x)
        assert torch.equal(out.support, torch.relu(out.pre) > threshold)
        alone = sae(x[:1])                                        # an input's code does not depend on its batch
        assert torch.allclose(alone.codes, out.codes[:1], atol=1e-6)
        assert sae(x, k=3).support.sum(1).eq(3).all()             # an explicit k' means per-input Top-k'
    runs.save_run(tmp_path / "run", sae, config, {"name": "planted"}, {}, history)
    loaded = runs.load_run(tmp_path / "run").sae
    assert float(loaded.rule.threshold) == threshold
    with torch.no_grad():
        assert torch.equal(loaded(x).support, out.support)


def test_batchtopk_without_a_threshold_refuses_eval():
    sae = SAE(d=4, n_latents=8, k=2, rule="batchtopk").eval()
    with pytest.raises(SaeLiteError, match="threshold"):
        sae(torch.randn(3, 4))


def test_laplace_cdf_and_its_gradient_by_hand():
    z = torch.tensor([-100.0, -3.0, -0.5, -0.0, 0.0, 0.5, 3.0, 100.0], requires_grad=True)
    value = laplace_cdf(z)
    by_hand = torch.where(z < 0, 0.5 * torch.exp(z.clamp_min(-80.0)), 1 - 0.5 * torch.exp(-z.clamp_max(80.0)))
    assert torch.equal(value, by_hand)
    value.sum().backward()
    inside = [1, 2, 5, 6]  # d F / d z = f(z) for 0 < |z| < 80 (beyond, the cap; at 0, |z|'s subgradient 0)
    torch.testing.assert_close(z.grad[inside], laplace_pdf(z.detach())[inside], rtol=1e-6, atol=0)
    assert value[0] > 0 and value[3] == value[4] == 0.5  # F(-0.0) = F(0) = 1/2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_bisections_in_place_row_sums_equal_the_laplace_cdf_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(4)
    acts = torch.relu(torch.randn(5, 30, generator=g, dtype=dtype))
    t = torch.randn(5, generator=g, dtype=dtype)
    work = tuple(torch.empty_like(acts) for _ in range(3))
    for temperature in (1e-4, 0.05, 1.0):
        expected = laplace_cdf((acts - t[:, None]) / temperature).sum(1)
        assert torch.equal(cdf_row_sums(acts, t, temperature, work), expected)


def test_soft_topk_weights_sum_to_k_hat_per_row():
    pre = torch.randn(6, 50, dtype=torch.double, generator=torch.Generator().manual_seed(2))
    k_hat = torch.tensor([1.0, 2.5, 7.3, 10.0, 20.2, 48.9], dtype=torch.double)
    for temperature in (0.01, 0.1, 1.0):
        t = soft_threshold(torch.relu(pre), k_hat, temperature)
        weights = laplace_cdf((torch.relu(pre) - t[:, None]) / temperature)
        assert torch.allclose(weights.sum(1), k_hat, atol=1e-6)


def test_soft_topk_is_differentiable_in_k_hat():
    pre = torch.randn(3, 20, dtype=torch.double, generator=torch.Generator().manual_seed(3)).abs()
    k_hat = torch.tensor([3.2, 5.7, 9.1], dtype=torch.double, requires_grad=True)
    codes = lambda k: soft(pre, k, temperature=0.3).codes  # noqa: E731
    assert torch.autograd.gradcheck(codes, (k_hat,), eps=1e-6, atol=1e-5)
    codes(k_hat).sum().backward()
    assert (k_hat.grad > 0).all()                                # a larger budget lets more through


def test_soft_ours_hard_mode_keeps_floor_k_hat_and_passes_gradient_to_k_hat():
    pre = torch.randn(4, 30, generator=torch.Generator().manual_seed(4)).abs()
    k_hat = torch.tensor([1.0, 3.9, 6.5, 12.0], requires_grad=True)
    sel = soft_ours(pre, k_hat, temperature=0.1, hard=True)
    assert sel.support.sum(1).tolist() == [1, 3, 6, 12]
    assert torch.equal(sel.codes.detach(), pre * sel.support)
    sel.codes.sum().backward()
    assert k_hat.grad.abs().sum() > 0


def test_soft_hard_mode_truncates_k_hat_and_carries_no_gradient():
    """St0pien/SoftSAE soft_sae.py L95-98: k_hat.long(), per-row Top-k_hat, all under no_grad."""
    pre = torch.randn(4, 30, generator=torch.Generator().manual_seed(4)).abs().requires_grad_()
    k_hat = torch.tensor([1.0, 3.9, 6.5, 12.0], requires_grad=True)
    sel = soft(pre, k_hat, temperature=0.1, hard=True)
    assert sel.support.sum(1).tolist() == [1, 3, 6, 12]
    assert torch.equal(sel.codes, pre.detach() * sel.support)
    assert not sel.codes.requires_grad


def test_soft_codes_far_below_the_threshold_are_exactly_zero():
    """The authors' float32 LapSum weight 0.5 e^z underflows to 0 far below t; our tail, capped at
    e^-80 / 2, must not leave such a unit a code ~1e-35 a that training would count as fired."""
    pre = torch.tensor([[3.0, 2.0, 1.0, 0.5, 0.2, -1.0], [0.3, 2.5, 0.1, 2.4, 0.05, 0.0]])
    k_hat = torch.tensor([2.5, 2.5])                              # two units whole, the third at weight 1/2
    sel = soft(pre, k_hat, temperature=1e-4)
    used = torch.tensor([[True, True, True, False, False, False], [True, True, False, True, False, False]])
    assert torch.equal(sel.codes != 0, used)                      # the rest, >= 0.2 below t, exactly 0
    assert torch.allclose(sel.codes.sum(1), torch.tensor([3 + 2 + 0.5, 2.5 + 2.4 + 0.15]))
    near = soft(pre, k_hat, temperature=0.05)                     # within the cap the tails stay positive
    assert torch.equal(near.codes != 0, torch.relu(pre) > 0)


def test_soft_training_counts_as_fired_only_the_latents_its_codes_use(small_planted):
    """The dead-latent counter and AuxK read `LossTerms.fired`: in the soft phase at a small alpha,
    a latent that no input selects must count as not fired, as in St0pien/SoftSAE."""
    config = TrainConfig(k=4, n_latents=512, rule="soft")
    sae = SAE(small_planted.d, 512, 4, "soft")
    sae.rule.k_target, sae.rule.temperature = 4, 1e-4
    x = torch.as_tensor(small_planted.x[:4])                       # k_hat ~ 32 of 512 latents each
    terms = loss_terms(sae, x, config, torch.zeros(512, dtype=torch.bool))
    out = sae(x)
    selected, positive = out.support.any(0), (out.acts > 0).any(0)
    assert torch.equal(terms.fired | selected, terms.fired)        # every selected latent fired
    assert terms.fired.sum() < selected.sum() + 20 < positive.sum()  # ~120 of the ~480 positive ones
    assert float(terms.l0) < float(out.budget.max()) + 5          # codes per input ~ k_hat, not ~256


def test_soft_k_estimator_has_the_authors_shape_and_initialisation():
    """St0pien/SoftSAE soft_sae.py L74-90: Linear(d, N) from the encoder with zero bias, ReLU,
    Linear(N, 1), sigmoid; k_hat = k_max * sigmoid, clamped, read from x - b_dec."""
    sae = SAE(d=8, n_latents=40, k=4, rule="soft", seed=3)
    first, relu, second, sigmoid = sae.rule.k_estimator
    assert (first.in_features, first.out_features, second.in_features, second.out_features) == (8, 40, 40, 1)
    assert isinstance(relu, torch.nn.ReLU) and isinstance(sigmoid, torch.nn.Sigmoid)
    assert torch.equal(first.weight, sae.W_enc) and first.weight.data_ptr() != sae.W_enc.data_ptr()
    assert torch.equal(first.bias, torch.zeros(40))
    assert sae.rule.config.k_max == 16                                        # 2 d, the CLIP trainer's effective k_max
    with torch.no_grad():
        sae.b_pre.normal_()
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        by_hand = (torch.sigmoid(second(torch.relu(first(x - sae.b_pre)))).squeeze(1) * 16).clamp(1, 39)
        assert torch.allclose(sae.budget(x), by_hand)
        second.bias.fill_(50.0)                                   # sigmoid -> 1: k_hat -> k_max
        assert torch.allclose(sae.budget(x), torch.full((16,), 16.0))


def test_soft_sae_budget_in_range_and_hard_at_inference():
    sae = SAE(d=8, n_latents=40, k=4, rule=SoftSAEConfig(k_max=10))
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(5))
    out = sae(x)
    assert out.budget.shape == (16,) and (out.budget >= 1).all() and (out.budget <= 10).all()
    out.x_hat.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sae.rule.k_estimator.parameters())
    sae.eval()
    with torch.no_grad():
        out = sae(x)
    assert torch.equal(out.support.sum(1), out.budget.long())


def test_soft_ours_budget_head_learns_and_is_hard_at_inference():
    sae = SAE(d=8, n_latents=40, k=4, rule=SoftOursConfig(k_max=10))
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(5))
    out = sae(x)
    assert out.budget.shape == (16,) and (out.budget >= 1).all() and (out.budget <= 10).all()
    out.x_hat.square().sum().backward()
    assert sae.rule.budget_head.bias.grad is not None and sae.rule.budget_head.bias.grad.abs() > 0
    sae.eval()
    with torch.no_grad():
        out = sae(x)
    assert torch.equal(out.support.sum(1), out.budget.floor().long())


def test_soft_schedule_anneals_k_and_alpha_linearly_then_goes_hard():
    """St0pien/SoftSAE soft_sae.py L268-301: k_t = int(d (1 - r) + k r), alpha = (1 - s) + alpha_final s."""
    rule = SAE(64, 512, 16, SoftSAEConfig(k_anneal=0.1, alpha_anneal=0.2, alpha_final=1e-4, hard_fraction=0.15)).rule

    def at(step):
        rule.on_step(step, 1000)
        return rule.k_target, rule.temperature, rule.hard

    assert at(0) == (64, 1.0, False)                              # starts at d and alpha 1
    assert at(50)[0] == int(64 * 0.5 + 16 * 0.5) == 40
    assert at(75)[0] == int(64 * 0.25 + 16 * 0.75)
    assert at(100)[0] == at(999)[0] == 16
    assert at(100)[1] == pytest.approx(0.5 + 0.5e-4)
    assert at(200)[1] == at(999)[1] == pytest.approx(1e-4)
    assert not at(849)[2] and at(850)[2] and at(999)[2]            # the last 15 % of the steps
    flat = SAE(64, 512, 16, SoftSAEConfig(k_anneal=0, alpha_anneal=0)).rule
    flat.on_step(0, 1000)
    assert (flat.k_target, flat.temperature) == (16, pytest.approx(1e-4))


def test_soft_ours_schedule_only_turns_hard():
    rule = SAE(8, 40, 4, SoftOursConfig(hard_fraction=0.25, temperature=0.3)).rule
    for step, hard in ((0, False), (74, False), (75, True), (99, True)):
        rule.on_step(step, 100)
        assert rule.hard is hard and rule.config.temperature == 0.3


def test_soft_k_loss_is_softplus_beta_5_against_k_t_and_off_in_the_hard_phase(small_planted):
    rule = SAE(small_planted.d, 64, 4, "soft").rule
    rule.k_target = 20
    k_hat = torch.tensor([10.0, 30.0, 26.0])
    out = Selection(*(torch.zeros(3, 64),) * 3, budget=k_hat)
    expected = torch.nn.functional.softplus(torch.tensor(22.0 - 20), beta=5.0)
    assert torch.allclose(rule.extra_loss(out), expected)
    half = SAE(small_planted.d, 64, 4, SoftSAEConfig(k_loss_weight=0.5)).rule
    half.k_target = 20
    assert half.extra_loss(out) == pytest.approx(0.5 * float(expected))
    rule.hard = True
    assert rule.extra_loss(out) == 0.0


def test_soft_ours_loss_pulls_the_mean_budget_to_k_in_every_phase():
    rule = SAE(8, 40, 4, SoftOursConfig(target_weight=0.5)).rule
    out = Selection(*(torch.zeros(2, 40),) * 3, budget=torch.tensor([5.0, 9.0]))
    expected = 0.5 * torch.nn.functional.softplus(torch.tensor(7.0 - 4))
    for hard in (False, True):
        rule.hard = hard
        assert torch.allclose(rule.extra_loss(out), expected)


def test_the_hard_phase_leaves_the_k_estimator_unchanged(small_planted):
    config = TrainConfig(k=4, n_latents=64, rule="soft", lr=1e-2)
    sae = SAE(small_planted.d, 64, 4, "soft")
    optimizer = make_optimizer(sae, config)
    dead = torch.zeros(64, dtype=torch.bool)
    x = torch.as_tensor(small_planted.x[:128])
    estimator = lambda: [p.detach().clone() for p in sae.rule.k_estimator.parameters()]  # noqa: E731
    sae.rule.k_target, sae.rule.temperature = 32, 0.5
    before = estimator()
    train_step(sae, optimizer, x, config, dead, 1e-2)             # soft phase: the estimator learns
    assert any(not torch.equal(a, b) for a, b in zip(before, estimator()))
    sae.rule.hard, sae.rule.k_target = True, 1                    # a k-loss would now be large
    assert not sae(x).budget.requires_grad                        # k_hat without gradient
    before, W_dec = estimator(), sae.W_dec.detach().clone()
    terms = train_step(sae, optimizer, x, config, dead, 1e-2)     # hard phase: it does not
    assert all(torch.equal(a, b) for a, b in zip(before, estimator()))
    assert not torch.equal(W_dec, sae.W_dec)                      # while the decoder still learns
    assert all(p.grad is None for p in sae.rule.k_estimator.parameters())
    expected = terms.fvu + config.auxk_alpha * terms.auxk         # no k-loss
    assert torch.allclose(terms.loss, expected)


def test_soft_clips_the_gradient_norm_at_one_by_default(small_planted):
    config = TrainConfig(k=4, n_latents=64, rule="soft")
    assert config.grad_clip == 1.0
    assert TrainConfig(k=4, n_latents=64).grad_clip is None
    assert TrainConfig(k=4, n_latents=64, rule="soft", max_grad_norm=0).grad_clip is None
    x = torch.as_tensor(small_planted.x[:128])
    norms = {}
    for clip in (None, 0.0):
        sae = SAE(small_planted.d, 64, 4, "soft")
        sae.rule.k_target, sae.rule.temperature = 4, 1.0
        train_step(sae, make_optimizer(sae, config), x, replace(config, max_grad_norm=clip),
                   torch.zeros(64, dtype=torch.bool), 1e-3)
        norms[clip] = float(torch.nn.utils.get_total_norm([p.grad for p in sae.parameters() if p.grad is not None]))
    assert norms[0.0] > 1.0 + 1e-3 and norms[None] <= 1.0 + 1e-4


@pytest.mark.parametrize("rule", [SoftSAEConfig(k_max=8, alpha_final=0.01, hard_fraction=0.5),
                                  SoftOursConfig(k_max=8, temperature=0.1, hard_fraction=0.5)])
def test_soft_sae_trains_and_its_settings_survive_save_load(tmp_path, small_planted, rule):
    config = TrainConfig(k=4, n_latents=64, steps=20, batch_size=128, rule=rule, log_every=10)
    sae, history = train(config, small_planted, progress=False)
    assert all(torch.isfinite(torch.tensor(history["loss"])))
    runs.save_run(tmp_path / "run", sae, config, {"name": "planted"}, {}, history)
    loaded = runs.load_run(tmp_path / "run")
    assert loaded.sae.rule.config == rule and loaded.config.rule == rule
    x = torch.as_tensor(small_planted.x[:50])
    with torch.no_grad():
        assert torch.equal(loaded.sae(x).codes, sae(x).codes)


def test_a_rule_records_its_resolved_settings():
    assert SAE(8, 40, 4, "soft").config()["rule"] == {"name": "soft", **vars(SoftSAEConfig(k_max=16))}
    assert SAE(8, 40, 4, "soft-ours").config()["rule"]["k_max"] == 8   # min(2k, N - 1)
    assert SAE(8, 40, 4).config()["rule"] == {"name": "topk"}


def test_batchtopk_threshold_is_an_ema_with_beta_0999_started_late():
    """dictionary_learning trainers/batch_top_k.py L110-111, L234-258: beta 0.999, from step > 1000."""
    assert (BatchTopKConfig().threshold_beta, BatchTopKConfig().threshold_start) == (0.999, 1000)
    sae = SAE(d=8, n_latents=40, k=4, rule="batchtopk")
    assert sae.rule.first_estimate(5000) == 1001 and sae.rule.first_estimate(600) == 300
    batches = [torch.randn(16, 8, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    sae.rule.on_step(299, 600)
    sae(batches[0])
    assert float(sae.rule.threshold) == -1.0                       # not estimated before the start
    sae.rule.on_step(300, 600)
    smallest = [batch_threshold(batchtopk(sae.pre_activations(b), 4)) for b in batches]
    sae(batches[1])
    assert torch.allclose(sae.rule.threshold, smallest[1])         # the first update copies
    sae(batches[2])
    assert torch.allclose(sae.rule.threshold, 0.999 * smallest[1] + 0.001 * smallest[2])
    fast = SAE(d=8, n_latents=40, k=4, rule=BatchTopKConfig(threshold_beta=0.5, threshold_start=0))
    fast.rule.on_step(1, 600)                                     # threshold_start 0: from the second step
    fast(batches[1]), fast(batches[2])
    assert torch.allclose(fast.rule.threshold, 0.5 * smallest[1] + 0.5 * smallest[2])


SELECTIONS = {"topk": lambda pre, k: topk(pre, k), "abstopk": lambda pre, k: abstopk(pre, k),
              "batchtopk": lambda pre, k: batchtopk(pre, k),
              "soft": lambda pre, k: soft(pre, torch.full((3,), float(k)), 0.05),
              "soft-ours": lambda pre, k: soft_ours(pre, torch.full((3,), float(k)), 0.05)}


@pytest.mark.parametrize("rule", list(SELECTIONS))
def test_no_nan_on_zero_inputs_and_k_next_to_n(rule):
    n = 12
    pre = torch.zeros(3, n, requires_grad=True)
    k = n - 1
    sel = SELECTIONS[rule](pre, k)
    assert torch.isfinite(sel.codes).all()
    sel.codes.sum().backward()
    assert torch.isfinite(pre.grad).all()
    sae = SAE(d=5, n_latents=n, k=k, rule=rule)
    out = sae(torch.zeros(2, 5))
    out.x_hat.sum().backward()
    assert torch.isfinite(out.x_hat).all()
    assert all(torch.isfinite(p.grad).all() for p in sae.parameters() if p.grad is not None)


@pytest.mark.parametrize("settings, message", [
    ({"rule": "relu"}, "activation"),
    ({"k": 8, "rule": SoftSAEConfig(k_max=4)}, "k_max"),
    ({"rule": SoftOursConfig(temperature=0.0)}, "temperature"),
    ({"rule": SoftOursConfig(temperature=-1.0)}, "temperature"),
    ({"rule": SoftOursConfig(target_weight=-0.1)}, "target_weight"),
    ({"rule": SoftOursConfig(hard_fraction=1.5)}, "hard_fraction"),
    ({"rule": SoftSAEConfig(hard_fraction=1.5)}, "hard_fraction"),
    ({"rule": SoftSAEConfig(alpha_final=0.0)}, "alpha_final"),
    ({"rule": SoftSAEConfig(alpha_final=float("nan"))}, "alpha_final"),
    ({"rule": SoftSAEConfig(k_anneal=1.5)}, "k_anneal"),
    ({"rule": SoftSAEConfig(alpha_anneal=-0.1)}, "alpha_anneal"),
    ({"rule": SoftSAEConfig(k_loss_weight=-1.0)}, "k_loss_weight"),
    ({"rule": BatchTopKConfig(threshold_beta=1.5)}, "threshold_beta"),
    ({"rule": BatchTopKConfig(threshold_start=-1)}, "threshold_start"),
    ({"rule": "soft", "max_grad_norm": -1.0}, "max_grad_norm"),
])
def test_bad_settings_are_refused_before_training(settings, message):
    with pytest.raises(SaeLiteError, match=message):
        TrainConfig(**{"k": 4, "n_latents": 64, **settings})


def test_abstopk_refuses_a_penalty_defined_only_for_non_negative_activations(monkeypatch):
    from sae_lite.core import penalties

    monkeypatch.setitem(penalties.PENALTIES, "positive-only", penalties.off_support_l1)
    with pytest.raises(SaeLiteError, match="non-negative"):
        TrainConfig(k=4, n_latents=64, rule="abstopk", penalty="positive-only", weight=0.1)
    TrainConfig(k=4, n_latents=64, rule="topk", penalty="positive-only", weight=0.1)
    TrainConfig(k=4, n_latents=64, rule="abstopk", penalty="ratio", weight=0.1)


def test_cli_selects_the_rule_and_refuses_an_unknown_one(tmp_path, capsys):
    assert cli_main(["train", "--data", "planted", "--k", "4", "--latents", "32", "--steps", "5",
                     "--activation", "abstopk", "--out", str(tmp_path / "run")]) == 0
    assert runs.load_run(tmp_path / "run").sae.activation == "abstopk"
    assert cli_main(["train", "--data", "planted", "--k", "4", "--activation", "relu",
                     "--out", str(tmp_path / "bad")]) == 2
    assert "activation" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_soft_schedule_table_is_what_on_step_sets():
    config = SoftSAEConfig(k_anneal=0.3, alpha_anneal=0.2, hard_fraction=0.25)
    rule = SAE(64, 512, 16, config).rule
    table = schedule_table(rule.config, 64, 16, 40)
    for step in range(40):
        rule.on_step(step, 40)
        assert (rule.k_target, rule.temperature, rule.hard) == (
            table["k_target"][step], table["alpha"][step], table["hard"][step])
    assert schedule_table(config, 64, 16, 40, steps=[0, 39])["step"] == [0, 39]
