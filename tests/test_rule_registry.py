"""A selection rule is an architecture of its own: one module, one registry line, and the SAE, the
trainer, the run directory and the command line take it without another edit."""

import json
from dataclasses import dataclass, field

import pytest
import torch
from torch import Tensor

from sae_lite import SaeLiteError, TrainConfig, train
from sae_lite.cli import main
from sae_lite.core import rules
from sae_lite.core.rules.base import Rule, RuleConfig, Selection, as_weights
from sae_lite.core.rules.soft_ours import SoftOursConfig
from sae_lite.core.rules.softsae import SoftSAEConfig
from sae_lite.evaluation import runs

FAST = ["--data", "planted", "--steps", "30", "--latents", "64", "--k", "4", "--batch-size", "128"]


@dataclass(frozen=True)
class ThresholdReLUConfig(RuleConfig):
    """A rule defined here alone: keep every ReLU(pre) above ``theta`` (at most the budget's worth of
    nothing else: no top-k), with a loss term that pulls the mean L0 towards k."""

    name = "threshold-relu"
    summary = "thresholded ReLU: every ReLU(pre) above theta"

    theta: float = field(default=0.1, metadata={"help": "the threshold of the ReLU"})
    l0_weight: float = field(default=0.0, metadata={"help": "weight of (mean soft L0 - k)^2 in the loss"})

    def check(self, k: int, n_latents: int) -> None:
        if not self.theta >= 0:
            raise SaeLiteError(f"theta must be >= 0, got {self.theta}")

    def build(self, d: int, n_latents: int, k: int, encoder: Tensor) -> Rule:
        return ThresholdReLU(self, d, n_latents, k)


class ThresholdReLU(Rule):
    def __init__(self, config, d, n_latents, k):
        super().__init__(config, d, n_latents, k)
        self.steps_seen = 0

    def select(self, pre: Tensor, k: int | None = None, x: Tensor | None = None) -> Selection:
        acts = torch.relu(pre)
        support = acts > self.config.theta
        return Selection(acts, support, acts * as_weights(support, acts))

    def on_step(self, step: int, total: int) -> None:
        self.steps_seen += 1

    def extra_loss(self, out) -> Tensor | float:
        return self.config.l0_weight * (torch.sigmoid(out.acts - self.config.theta).sum(1).mean() - self.k) ** 2


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(rules.RULES, ThresholdReLUConfig.name, ThresholdReLUConfig)


def test_a_rule_defined_in_one_file_trains_through_train(registered, small_planted):
    config = TrainConfig(k=4, n_latents=64, steps=25, batch_size=128, log_every=5,
                         rule=ThresholdReLUConfig(theta=0.05, l0_weight=0.01))
    sae, history = train(config, small_planted, progress=False)
    assert sae.rule.steps_seen == 25                               # the trainer asked its schedule every step
    assert config.activation == "threshold-relu" and sae.activation == "threshold-relu"
    assert history["loss"][0] != history["fvu"][0] + config.auxk_alpha * history["auxk"][0]  # its loss term counts
    with torch.no_grad():
        out = sae(torch.as_tensor(small_planted.x[:64]))
    assert torch.equal(out.support, out.acts > 0.05)


def test_a_registered_rule_trains_from_the_command_line_and_reloads(registered, tmp_path, capsys):
    assert main(["train", *FAST, "--activation", "threshold-relu", "--theta", "0.2", "--out", str(tmp_path / "run")]) == 0
    run = runs.load_run(tmp_path / "run")
    assert run.config.rule == ThresholdReLUConfig(theta=0.2) and run.sae.rule.config == ThresholdReLUConfig(theta=0.2)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["rule"] == saved["sae"]["rule"] == {"name": "threshold-relu", "theta": 0.2, "l0_weight": 0.0}
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    assert "threshold-relu options:" in shown and "--theta" in shown.split("threshold-relu options:")[1]


def test_an_option_of_another_rule_is_refused_in_one_line(registered, tmp_path, capsys):
    assert main(["train", *FAST, "--activation", "topk", "--theta", "0.2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --theta is an option of threshold-relu, not of --activation topk; drop it or choose "
                   "--activation threshold-relu")
    assert not (tmp_path / "run").exists()
    assert main(["train", *FAST, "--activation", "batchtopk", "--k-max", "8", "--out", str(tmp_path / "run")]) == 2
    assert "--k-max is an option of soft, soft-ours" in capsys.readouterr().err
    assert main(["train", *FAST, "--activation", "soft", "--soft-temperature", "0.1", "--out", str(tmp_path / "run")]) == 2
    assert "--soft-temperature is an option of soft-ours, not of --activation soft" in capsys.readouterr().err


def test_a_rule_option_with_its_own_flag_reaches_its_field(tmp_path):
    argv = ["train", *FAST, "--activation", "soft-ours", "--soft-temperature", "0.2", "--soft-target-weight", "0.3"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert runs.load_run(tmp_path / "run").config.rule == SoftOursConfig(temperature=0.2, target_weight=0.3)


def test_soft_takes_its_own_options_from_the_command_line(tmp_path, capsys):
    argv = ["train", "--data", "planted", "--steps", "10", "--latents", "256", "--k", "8", "--batch-size", "64",
            "--activation", "soft", "--k-max", "128", "--alpha-final", "0.01", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert runs.load_run(tmp_path / "run").config.rule == SoftSAEConfig(k_max=128, alpha_final=0.01)


def test_train_help_lists_each_rule_s_options_under_its_name(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    sections = {name: " ".join(shown.split(f"\n{name} options:")[1].split(" options:\n")[0].split())
                for name in rules.names()}
    assert "--threshold-beta" in sections["batchtopk"] and "--k-max" not in sections["batchtopk"]
    assert {"--k-max", "--alpha-final", "--k-loss-weight"} <= set(sections["soft"].split())
    assert {"--k-max", "--soft-temperature"} <= set(sections["soft-ours"].split())
    assert "min(2d, N - 1)" in sections["soft"] and "min(2k, N - 1)" in sections["soft-ours"]  # each its own help


def test_registering_a_second_rule_under_a_taken_name_is_refused():
    @dataclass(frozen=True)
    class Impostor(RuleConfig):
        name = "topk"
        summary = "not Top-k"

    with pytest.raises(SaeLiteError, match="registered already"):
        rules.register(Impostor)
    assert rules.get("topk") is not Impostor


def test_no_module_outside_the_rules_compares_a_rule_s_name():
    """The SAE, the trainer, the loss and the rest ask the rule, never its name."""
    import re
    from pathlib import Path

    import sae_lite

    package = Path(sae_lite.__file__).parent
    names = "|".join(re.escape(name) for name in rules.names())
    pattern = re.compile(rf"""(==|!=|\bin)\s*\(?["'](?:{names})["']|["'](?:{names})["']\s*(==|!=)|activation\s*(==|!=)""")
    found = [f"{path.relative_to(package)}:{number}" for path in package.rglob("*.py")
             if "rules" not in path.relative_to(package).parts
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
    assert pattern.search('if config.activation == "soft":') and pattern.search("name == 'abstopk'")  # the check can fail


def test_a_run_directory_without_its_rule_gets_one_line(tmp_path, capsys):
    """A config.json that records no rule (as before rules were configs) is refused, not read as Top-k."""
    assert main(["train", *FAST, "--activation", "soft", "--out", str(tmp_path / "run")]) == 0
    config = tmp_path / "run" / "config.json"
    saved = json.loads(config.read_text())
    for section in ("train", "sae"):
        saved[section].pop("rule")
    config.write_text(json.dumps({**saved, "train": {**saved["train"], "activation": "soft"}}))
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no selection rule is recorded" in err
    with pytest.raises(SaeLiteError, match="no selection rule"):
        TrainConfig.from_dict(saved["train"])
