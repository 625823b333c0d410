"""The command line: ``python -m sae_lite train | evaluate | embed | reproduce | bench``.

Every subcommand is registered here. The options of ``train`` are generated from the fields of
`TrainConfig` (one source of truth). A user error (`SaeLiteError`) prints one line, ``error: ...``,
and exits with status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import textwrap
import typing
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import torch

from sae_lite.bench import bench
from sae_lite.book.figures import require_matplotlib, write_figures
from sae_lite.core import distributed, rules
from sae_lite.core.config import TrainConfig
from sae_lite.core.train import check
from sae_lite.data import fashion_mnist
from sae_lite.data.backbones import BACKBONES, check_resolution
from sae_lite.data.embed import embed_images, open_source
from sae_lite.device import resolve_device
from sae_lite.errors import SaeLiteError, show_warning_line
from sae_lite.files import strict_json
from sae_lite.study.paper import grid
from sae_lite.study.pipeline import evaluate_run, train_run
from sae_lite.study.profiles import PROFILES, active_profile
from sae_lite.study.reproduce import reproduce


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 8,16,32, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers such as 8,16,32, got {text!r}")
    return values


def _field_type(field) -> type:
    """The scalar type behind a dataclass annotation such as 'int | None' (a string, or the type itself)."""
    kind = field.type
    if isinstance(kind, str):
        return {"int": int, "float": float, "str": str, "bool": bool}[kind.split("|")[0].strip()]
    return kind if isinstance(kind, type) else typing.get_args(kind)[0]


def _flag(field) -> str:
    return field.metadata.get("flag", field.name).replace("_", "-")


def _add_option(parser, field, dest: str, default, help: str) -> argparse.Action:
    """One option for a dataclass field; a True-by-default flag becomes ``--no-<flag>``."""
    if _field_type(field) is bool:
        return parser.add_argument(f"--no-{_flag(field)}", dest=dest, action="store_false", default=default,
                                   help=f"do not {help}")
    return parser.add_argument(f"--{_flag(field)}", dest=dest, type=_field_type(field), default=default, help=help)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per shared `TrainConfig` field, ``--activation``, and each rule's own options in a
    group under the rule's name (an option two rules share is listed under both)."""
    for field in fields(TrainConfig):
        if field.name != "rule":
            _add_option(parser, field, field.name, field.default, field.metadata["help"])  # `Help` adds the default
    parser.add_argument("--activation", default="topk", metavar="RULE",
                        help=f"the selection rule: {', '.join(rules.names())}")
    shared: dict[str, argparse.Action] = {}
    for name, config in rules.RULES.items():
        group = parser.add_argument_group(f"{name} options", config.summary)
        for field in fields(config):
            help = field.metadata["help"] + ("" if field.default is None else f" (default: {field.default})")
            if _flag(field) in shared:  # parsed by the first rule's option; listed here with this rule's help
                group._group_actions.append(copy.copy(shared[_flag(field)]))
                group._group_actions[-1].help = help
                continue
            shared[_flag(field)] = _add_option(group, field, f"rule.{_flag(field)}", argparse.SUPPRESS, help)
            shared[_flag(field)].metavar = field.name.upper()


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` of parsed options; an option of a rule other than ``--activation``'s is refused."""
    chosen = rules.get(args.activation)
    given = {dest.removeprefix("rule."): value for dest, value in vars(args).items() if dest.startswith("rule.")}
    own = {_flag(field): field.name for field in fields(chosen)}
    foreign = sorted(set(given) - set(own))
    if foreign:
        owners = [name for name, config in rules.RULES.items() if foreign[0] in {_flag(f) for f in fields(config)}]
        raise SaeLiteError(f"--{foreign[0]} is an option of {', '.join(owners)}, not of --activation "
                           f"{args.activation}; drop it or choose --activation {owners[0]}")
    shared = {field.name: getattr(args, field.name) for field in fields(TrainConfig) if field.name != "rule"}
    return TrainConfig(**shared, rule=chosen(**{own[flag]: value for flag, value in given.items()}))


class Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless the text already states it in words or there
    is none to show (a flag, a required option, a default of None)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default in (None, argparse.SUPPRESS) or isinstance(action.default, bool)
                or action.required or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"

    def _split_lines(self, text: str, width: int) -> list[str]:
        """Wrapped at spaces only: a name like soft-ours is never split at its hyphen."""
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


ENVIRONMENT = """environment variables:
  SAE_LITE_PROFILE    quick, default or paper: how much work reproduce and the book's chapters do
                      (steps, seeds, data size); --profile overrides it (default: default)
  SAE_LITE_DATA       the data the book's chapters train on: planted, digits or an embedding store
                      directory (default: planted)
  SAE_LITE_CACHE      where trained runs, evaluations and embedding stores are cached
                      (default: .cache/sae-lite in the source checkout, else in the working directory)
  SAE_LITE_JOBS       how many runs of a grid train at once, one process each
                      (default: one per CPU core; 1 when a CUDA GPU is present)
  SAE_LITE_DOWNLOADS  where Fashion-MNIST is downloaded to when it is not installed
                      (default: ~/.cache/sae-lite/downloads)"""


# --------------------------------------------------------------------------------------------
# train, evaluate
# --------------------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # validates before any work
    check(config)                    # the backend, and under torchrun a config it can train
    if args.resume and args.checkpoint is None:
        raise SaeLiteError("--resume continues from a checkpoint: pass the --checkpoint DIR the run was started with")
    if args.checkpoint_every < 1:
        raise SaeLiteError(f"--checkpoint-every must be >= 1 step, got {args.checkpoint_every}")
    run = train_run(config, args.data, args.out, overwrite=args.overwrite, test_fraction=args.test_fraction,
                    split_seed=args.split_seed, checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                    resume=args.resume)
    if distributed.is_main():
        print(strict_json({"out": str(run.path), **run.metrics}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    print(strict_json(evaluate_run(args.run, ks=args.k, ms=args.probe, data=args.data)))
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train an SAE and write a run directory", formatter_class=Help)
    train.add_argument("--data", default="planted",
                       help="planted, planted-signed, digits, fashion-mnist or an embedding store directory")
    train.add_argument("--out", required=True, type=Path, help="the run directory to create")
    train.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    train.add_argument("--test-fraction", type=float, default=0.2, help="share of the data held out for metrics")
    train.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split")
    train.add_argument("--checkpoint", type=Path, metavar="DIR", default=None,
                       help="save the training state (weights, optimiser, step, dead-latent counters) in DIR "
                            "every --checkpoint-every steps and at the end (default: no checkpoint)")
    train.add_argument("--checkpoint-every", type=int, metavar="N", default=500, help="steps between two checkpoints")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its --checkpoint DIR, with the same options: "
                            "the result equals an uninterrupted run's")
    add_config_options(train)
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="R^2 under other inference k and truncated linear probes",
                              formatter_class=Help)
    evaluate.add_argument("run", type=Path, help="a run directory written by train")
    evaluate.add_argument("--k", type=_int_list, default=None,
                          help="inference budgets, e.g. 8,16,32,64 (default: k/4,k/2,k,2k,4k)")
    evaluate.add_argument("--probe", type=_int_list, default=[1, 2, 4, 8], help="probe budgets m (default: 1,2,4,8)")
    evaluate.add_argument("--data", default=None, help="evaluate on other data (default: the run's own)")
    evaluate.set_defaults(func=cmd_evaluate)


# --------------------------------------------------------------------------------------------
# embed
# --------------------------------------------------------------------------------------------

def cmd_embed(args: argparse.Namespace) -> int:
    """Write the store, print one summary line."""
    check_resolution(args.backbone, args.resolution)  # a bad backbone or size fails before the images are read
    source = open_source(args.images, args.split, args.limit, args.seed, args.openimages_labels, args.openimages_classes)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="skipped ")  # reported below
        out = embed_images(args.backbone, source, args.out, weights=args.weights, tag=args.tag,
                           resolution=args.resolution, batch_size=args.batch_size, device=args.device,
                           precision=args.precision, num_workers=args.num_workers, shard_size=args.shard_size,
                           overwrite=args.overwrite, progress=args.progress,
                           reference_backbone=args.reference_backbone)
    meta = json.loads((out / "meta.json").read_text())
    print(f"wrote {out}: {meta['n']} x {meta['d']} embeddings ({args.backbone}, {meta['weights']} weights, "
          f"{meta['resolution']} px); skipped {meta['skipped']} unreadable image(s)"
          + (f", e.g. {meta['skipped_files'][0]}" if meta["skipped"] else ""))
    return 0


def add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed images (a folder, Open Images or Fashion-MNIST) into an embedding store",
                       description=textwrap.fill("Run a vision backbone over ROOT/<class>/<image>, Open Images "
                                                 "or Fashion-MNIST and write an embedding store; an interrupted "
                                                 "run resumes."),
                       formatter_class=Help)
    p.add_argument("--backbone", required=True, help=f"one of: {', '.join(BACKBONES)}")
    p.add_argument("--images", required=True, metavar="DIR|fashion-mnist",
                   help="ROOT/<class>/<image>, a flat folder, the Open Images folder of <ImageID>.jpg, a folder "
                        "holding the four Fashion-MNIST .gz files, or the name fashion-mnist (found or downloaded)")
    p.add_argument("--split", choices=fashion_mnist.SPLITS, help="Fashion-MNIST split (default: train)")
    p.add_argument("--limit", type=int, metavar="N", help="embed a seeded subset of N images, class-balanced when "
                                                          "each image has one label (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit subset (default: 0)")
    p.add_argument("--openimages-labels", metavar="CSV", help="Open Images human-verified image-level labels "
                                                              "(ImageID,Source,LabelName,Confidence): multi-label")
    p.add_argument("--openimages-classes", metavar="CSV", help="Open Images class descriptions (LabelName,DisplayName)")
    p.add_argument("--weights", default="pretrained", help="pretrained (default) or random (no download)")
    p.add_argument("--tag", metavar="TAG|FILE", help="pretrained tag, or a local checkpoint file (default: the backbone's)")
    p.add_argument("--resolution", type=int, metavar="PX", help="input size in pixels, for backbones that take any "
                                                                "(efficientnet-lite0; default: the backbone's, 96 there)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", help="auto (default: bf16/fp16 on a GPU, fp32 on the CPU), "
                                                        "fp32, bf16 or fp16")
    p.add_argument("--num-workers", type=int, default=None, help="image decoding processes (default: 8 on a GPU, 0 on the CPU)")
    p.add_argument("--shard-size", type=int, default=4096, help="images per resumable shard (default: 4096)")
    p.add_argument("--reference-backbone", metavar="NAME", help="also embed the images with this backbone into the "
                                                                 "store's reference.npy, the reference of Pach et al.'s "
                                                                 "monosemanticity (their default: clip-vit-b-32)")
    p.add_argument("--out", required=True, metavar="STORE", help="the store directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace STORE (and a mismatched STORE.partial)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_embed)


# --------------------------------------------------------------------------------------------
# reproduce
# --------------------------------------------------------------------------------------------

def cmd_reproduce(args: argparse.Namespace) -> int:
    """Train or load the grid, write its tables and cards (the study), then its figures (the book)."""
    require_matplotlib()
    result = reproduce(grid(args.profile or active_profile().name, args.data), args.out)
    write_figures(args.out / "figures", result.rows)
    print(strict_json(result.summary))
    return 0


def add_reproduce(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("reproduce", help="run the paper's grid of a profile and write its tables and figures",
                            description=textwrap.fill(
                                "Train (or load from the cache) every run of the profile's grid and write "
                                "results.csv, claims.md, claims.json, the method cards and the figures into "
                                "--out. An interrupted call (Ctrl-C or a kill) resumes where it stopped when "
                                "run again with the same --out."), formatter_class=Help)
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="quick, default or paper (default: SAE_LITE_PROFILE, else default)")
    parser.add_argument("--data", default=None, help="paper profile: DIR holding <dataset>/<backbone>/ embedding stores")
    parser.add_argument("--out", required=True, type=Path, help="where results.csv, claims, cards and figures go")
    parser.set_defaults(func=cmd_reproduce)


# --------------------------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    if args.repeats < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        raise SaeLiteError(f"--repeats and --threads must be >= 1 and --warmup >= 0, got {args.repeats}, "
                           f"{args.threads} and {args.warmup}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    sizes = args.sizes or [bench.Size(*size) for size in bench.SIZES]
    pythons = {name: peer.default_python() for name, peer in bench.PEERS.items()}
    pythons.update(args.peer_pythons or [])
    bench.run(sizes, device, args.repeats, args.warmup, {} if args.no_peer else pythons, args.dense)
    return 0


def _peer_python(text: str) -> tuple[str, Path]:
    """PEER=PYTHON, or PYTHON alone for overcomplete's."""
    name, sep, path = text.partition("=")
    if not sep or "/" in name:
        return "overcomplete", Path(text)
    if name not in bench.PEERS:
        raise argparse.ArgumentTypeError(f"unknown peer {name!r}; choose one of {', '.join(bench.PEERS)}")
    return name, Path(path)


def add_bench(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="time training steps against the encoder matmul and the peers",
                            formatter_class=Help)
    parser.add_argument("--size", type=bench.parse_size, action="append", dest="sizes",
                        help="d,N,k,B (repeatable; default: " + " and ".join(",".join(map(str, s)) for s in bench.SIZES) + ")")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--dense", action="store_true", help="also time the dense reference backend (slow)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for us and the peers (default: PyTorch's; 1 on a shared, loaded machine)")
    parser.add_argument("--peer-python", type=_peer_python, action="append", dest="peer_pythons", metavar="[PEER=]PYTHON",
                        help="a peer environment's python (repeatable; PEER one of " + ", ".join(bench.PEERS)
                        + ", overcomplete when omitted; default: .venv-bench, .venv-bench-sparsify, "
                        ".venv-bench-saelens next to the repository)")
    parser.add_argument("--no-peer", action="store_true", help="skip every peer")
    parser.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sae_lite", formatter_class=Help, epilog=ENVIRONMENT,
        description=textwrap.fill("Train and evaluate Top-k sparse autoencoders, embed images into an embedding "
                                  "store, and reproduce the paper's grid. python -m sae_lite COMMAND --help lists "
                                  "a command's options."))
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_train, add_embed, add_reproduce, add_bench):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():  # a warning (e.g. a damaged cache entry healed) is one line too
            warnings.showwarning = show_warning_line
            return args.func(args)
    except SaeLiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
