"""Does a change leave training's results alone? Train fixed configurations and save, or compare, their
weights and FVU histories bit for bit.

    python scripts/same_weights.py save DIR       # on the commit before the change
    python scripts/same_weights.py compare DIR    # after it: one line per configuration; exit 1 if any differ

Every selection rule, both backends, the two penalties and AuxK (dead latents appear within the 300
steps): 9 configurations on planted data, one thread, about half a minute. To run the first half on an
older commit without checking it out: ``git worktree add /tmp/before REV`` and
``PYTHONPATH=/tmp/before python scripts/same_weights.py save DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sae_lite import TrainConfig, train
from sae_lite.data import catalog

CASES = {
    "topk-dense": dict(rule="topk"),
    "topk-sparse": dict(rule="topk", backend="sparse"),
    "topk-ratio-dense": dict(rule="topk", penalty="ratio", weight=0.01),
    "topk-ratio-sparse": dict(rule="topk", penalty="ratio", weight=0.01, backend="sparse"),
    "topk-offsupport-sparse": dict(rule="topk", penalty="offsupport", weight=0.01, backend="sparse"),
    "abstopk-ratio-dense": dict(rule="abstopk", penalty="ratio", weight=0.01),
    "batchtopk-dense": dict(rule="batchtopk"),
    "soft-dense": dict(rule="soft"),
    "soft-ours-dense": dict(rule="soft-ours"),
}
SHARED = dict(k=8, n_latents=256, steps=300, batch_size=128, log_every=25, dead_after=2000, seed=3)


def outcome(name: str, **settings) -> dict[str, torch.Tensor]:
    """The trained weights of one configuration and its FVU history."""
    train_set, _ = catalog.load("planted", n=3000).split(0.2, 0)
    sae, history = train(TrainConfig(**SHARED, **settings), train_set, progress=False)
    tensors = {key: value.detach().contiguous() for key, value in sae.state_dict().items()}
    return {**tensors, "history_fvu": torch.tensor(history["fvu"], dtype=torch.float64)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("save", "compare"), help="save the weights, or compare with the saved ones")
    parser.add_argument("dir", type=Path, help="where the weights are saved (one .safetensors per configuration)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    different = 0
    for name, settings in CASES.items():
        tensors = outcome(name, **settings)
        if args.mode == "save":
            args.dir.mkdir(parents=True, exist_ok=True)
            save_file(tensors, args.dir / f"{name}.safetensors")
            print(f"{name}: saved")
            continue
        saved = load_file(args.dir / f"{name}.safetensors")
        same = saved.keys() == tensors.keys() and all(torch.equal(saved[key], tensors[key]) for key in saved)
        gaps = {key: float((saved[key].double() - tensors[key].double()).abs().max()) for key in saved if key in tensors}
        print(f"{name}: " + ("bit-identical" if same else f"DIFFERENT, keys {sorted(saved.keys() ^ tensors.keys())}, "
                             f"largest differences {gaps}"))
        different += not same
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
