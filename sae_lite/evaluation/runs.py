"""The run directory: a trained SAE and how it was made, with no pickle anywhere.

    RUN/
      sae.safetensors   the weights
      config.json       {"train": TrainConfig, "sae": architecture, "data": data spec, "version"}
      metrics.json      every scalar metric on the test split
      history.json      the training history (loss terms, L0, dead count per logged step)
      card.md           the method card (`sae_lite.evaluation.card`)
      evaluation.json   the k-sweep and the probes of `sae_lite.study.pipeline.evaluate_run`, with what
                        they were computed on (`save_evaluation`; read only by `load_evaluation`)

A run directory is written whole or not at all: into a temporary sibling, then renamed. It is read
only when whole: `load_run` checks every file before it returns (a damaged one raises SaeLiteError).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import save_file

from sae_lite.core.config import TrainConfig
from sae_lite.core.sae import SAE
from sae_lite.data.spec import DataSpec
from sae_lite.errors import SaeLiteError
from sae_lite.files import damaged, load_tensors, nan_for_null, read_json, write_dir, write_json
from sae_lite.version import __version__


class Run(NamedTuple):
    sae: SAE
    config: TrainConfig
    data: dict         # config.json's data record: the spec's JSON (`DataSpec.to_dict`), "dataset", "d", "n_train", ...
    metrics: dict
    path: Path

    @property
    def spec(self) -> DataSpec:
        """The data spec the run was trained on."""
        return DataSpec.from_dict(self.data)


def save_run(path: str | os.PathLike, sae: SAE, config: TrainConfig, data: dict, metrics: dict,
             history: dict | None = None, card: Callable[[Path], None] | None = None,
             overwrite: bool = False) -> Path:
    """Write a run directory (see the module docstring); ``card(tmp_dir)`` may add the method card."""
    def write(tmp: Path) -> None:
        save_file({key: value.detach().cpu().contiguous() for key, value in sae.state_dict().items()},
                  tmp / "sae.safetensors")
        write_json(tmp / "config.json", {"train": config.to_dict(), "sae": sae.config(), "data": data,
                                         "sae_lite_version": __version__})
        write_json(tmp / "metrics.json", metrics)
        if history is not None:
            write_json(tmp / "history.json", history)
        if card is not None:
            card(tmp)

    return write_dir(path, write, overwrite)


def load_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Load a run directory written by `save_run`.

    Raises SaeLiteError, one line naming the file, when the directory is not a run or a file of it is
    damaged: missing, empty, truncated, not JSON / safetensors, or weights that disagree with the
    architecture config.json describes. history.json is checked when present.
    """
    path = Path(path)
    if not path.is_dir() or not any((path / name).exists() for name in ("sae.safetensors", "config.json")):
        raise SaeLiteError(f"{path} is not a run directory (needs sae.safetensors and config.json); "
                           "create one with `python -m sae_lite train`")
    config_file = path / "config.json"
    meta = read_json(config_file, RETRAIN)
    if not isinstance(meta.get("train"), dict) or not isinstance(meta.get("sae"), dict):
        raise damaged(config_file, "lacks its 'train' or 'sae' section", RETRAIN)
    try:
        config = TrainConfig.from_dict(meta["train"])
        sae = SAE.from_config(meta["sae"])  # d, n_latents, k and the rule's settings (`SAE.config`)
    except (KeyError, TypeError, ValueError) as error:
        raise damaged(config_file, f"describes no valid run ({error})", RETRAIN) from None
    sae.load_state_dict(load_tensors(path / "sae.safetensors", RETRAIN, sae.state_dict(), source="config.json"))
    metrics = nan_for_null(read_json(path / "metrics.json", RETRAIN))  # null: NaN
    if (path / "history.json").exists():
        load_history(path)
    return Run(sae.to(device).eval(), config, meta.get("data", {}), metrics, path)


#: What to do about a damaged run directory.
RETRAIN = "the run directory is damaged: delete it and train again (`python -m sae_lite train ... --out RUN --overwrite`)"


def load_history(path: str | os.PathLike) -> dict[str, list]:
    """The training history of the run directory ``path`` (history.json): a list per logged quantity."""
    file = Path(path) / "history.json"
    history = read_json(file, RETRAIN)
    steps = history.get("step")
    if not isinstance(steps, list) or not all(isinstance(v, list) and len(v) == len(steps) for v in history.values()):
        raise damaged(file, "does not hold one list of equal length per logged quantity", RETRAIN)
    return history


#: A run directory's evaluation at other inference budgets k' and with truncated probes.
EVALUATION = "evaluation.json"
#: What to do about a damaged evaluation.json.
REEVALUATE = "evaluate the run again (`python -m sae_lite evaluate RUN`) to rewrite it"


def save_evaluation(path: str | os.PathLike, evaluation: dict) -> Path:
    """Write ``evaluation`` (`sae_lite.study.pipeline.evaluate_run`'s result) as the evaluation.json of
    the run directory ``path``."""
    return write_json(Path(path) / EVALUATION, evaluation)


def load_evaluation(path: str | os.PathLike) -> dict | None:
    """The evaluation.json of the run directory ``path``, None when there is none; a metric that could
    not be computed (null) in ``r2_by_k`` reads as NaN.

    Raises SaeLiteError, one line naming the file, when it is damaged: empty, cut short or not JSON,
    without its r2_by_k table, or with a ``computed_on`` that is not a record of a data spec and lists.
    """
    file = Path(path) / EVALUATION
    if not file.exists():
        return None
    evaluation = read_json(file, REEVALUATE)
    if not isinstance(evaluation.get("r2_by_k"), dict):
        raise damaged(file, "lacks its r2_by_k table", REEVALUATE)
    basis = evaluation.get("computed_on", {})
    if not isinstance(basis, dict) or not all(isinstance(basis.get(key, []), list) for key in ("ks", "ms")):
        raise damaged(file, "holds a computed_on that is not a record of its data, k' and m", REEVALUATE)
    if "data" in basis:
        try:
            DataSpec.from_dict(basis["data"])
        except SaeLiteError as error:
            raise damaged(file, f"records no valid data spec ({error})", REEVALUATE) from None
    return {**evaluation, "r2_by_k": nan_for_null(evaluation["r2_by_k"])}


def evaluated_on(evaluation: dict) -> DataSpec | None:
    """The data spec a loaded ``evaluation`` was computed on; None when it does not record one."""
    basis = evaluation.get("computed_on", {})
    return DataSpec.from_dict(basis["data"]) if "data" in basis else None


def covers(evaluation: dict | None, data: DataSpec, ks: list[int], ms: list[int]) -> bool:
    """True when ``evaluation`` (from `load_evaluation`) was computed on ``data`` and holds the k' ``ks``
    and the probes ``ms`` (or says the data has no classes to probe): it may be reused."""
    if evaluation is None or evaluated_on(evaluation) != data:
        return False
    basis = evaluation["computed_on"]
    return set(ks) <= set(basis.get("ks", [])) and (set(ms) <= set(basis.get("ms", [])) or "probe_skipped" in evaluation)


def other_data_note(path: str | os.PathLike, evaluation: dict | None, data: DataSpec) -> str | None:
    """One line when ``evaluation``, the run directory ``path``'s, was computed on data other than ``data``
    (``evaluate RUN --data OTHER``) or does not record its data; else None."""
    other = None if evaluation is None else evaluated_on(evaluation)
    if evaluation is None or other == data:
        return None
    where = "data it does not record" if other is None else f"other data ({other.name})"
    return f"{Path(path) / EVALUATION} was computed on {where}; evaluating again on {data.name}"
