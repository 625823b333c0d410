"""The command line: ``python -m sae_lite train | evaluate | ...``.

The options of ``train`` are generated from the fields of `TrainConfig` (one source of truth).
A user error (`SaeLiteError`) prints one line, ``error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from sae_lite.errors import SaeLiteError
from sae_lite.train import TrainConfig


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 8,16,32, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers such as 8,16,32, got {text!r}")
    return values


def _field_type(field) -> type:
    """The scalar type behind a dataclass annotation such as 'int | None'."""
    name = str(field.type).split("|")[0].strip()
    return {"int": int, "float": float, "str": str, "bool": bool}[name]


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field; a True-by-default flag becomes ``--no-<flag>``."""
    for field in fields(TrainConfig):
        flag = field.metadata.get("flag", field.name).replace("_", "-")
        kind = _field_type(field)
        if kind is bool:
            parser.add_argument(f"--no-{flag}", dest=field.name, action="store_false", help=f"do not {field.metadata['help']}")
        else:
            parser.add_argument(f"--{flag}", dest=field.name, type=kind, default=field.default,
                                help=f"{field.metadata['help']} (default: {field.default})")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{field.name: getattr(args, field.name) for field in fields(TrainConfig)})


def cmd_train(args: argparse.Namespace) -> int:
    from sae_lite import distributed, experiments

    config = config_from_args(args)  # validates before any work
    distributed.context().check(config)  # under torchrun: a config it can train
    run = experiments.train_run(config, args.data, args.out, overwrite=args.overwrite,
                                test_fraction=args.test_fraction, split_seed=args.split_seed)
    if distributed.is_main():
        print(json.dumps({"out": str(run.path), **run.metrics}, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sae_lite import experiments

    result = experiments.evaluate_run(args.run, ks=args.k, ms=args.probe, data=args.data)
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sae_lite", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an SAE and write a run directory")
    train.add_argument("--data", default="planted", help="planted, planted-signed, digits or an embedding store directory")
    train.add_argument("--out", required=True, type=Path, help="the run directory to create")
    train.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    train.add_argument("--test-fraction", type=float, default=0.2, help="share of the data held out for metrics")
    train.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split")
    add_config_options(train)
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="R^2 under other inference k and truncated linear probes")
    evaluate.add_argument("run", type=Path, help="a run directory written by `train`")
    evaluate.add_argument("--k", type=_int_list, default=None, help="inference budgets, e.g. 8,16,32,64 (default: k/4,k/2,k,2k,4k)")
    evaluate.add_argument("--probe", type=_int_list, default=[1, 2, 4, 8], help="probe budgets m (default: 1,2,4,8)")
    evaluate.add_argument("--data", default=None, help="evaluate on other data (default: the run's own)")
    evaluate.set_defaults(func=cmd_evaluate)

    for module in _extensions():
        module.add_cli(sub)
    return parser


def _extensions() -> list[types.ModuleType]:
    """Modules that register further subcommands (embed, reproduce, bench) when present."""
    import importlib

    found = []
    for name in ("sae_lite.embed", "sae_lite.experiments", "sae_lite.bench"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        if hasattr(module, "add_cli"):
            found.append(module)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SaeLiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
