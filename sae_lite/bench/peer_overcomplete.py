"""The peer's training step for `sae_lite.bench`: overcomplete's ``TopKSAE`` (PyPI, 0.3.0).

Run as a plain script by the benchmark environment's Python (``scripts/bench_env.sh``), which holds
overcomplete and an older matplotlib; it imports nothing from sae_lite. Prints one JSON line with the
step times in seconds: ``{"peer": "overcomplete 0.3.0 TopKSAE", "times": [...]}``.
"""

from __future__ import annotations

import json
import sys

import torch
from peer_timing import parse, size_parser, time_steps  # the sibling file: these run as plain scripts


def _import_overcomplete():
    """Import overcomplete; with a CPU torch next to a CUDA torchvision, declare the two op schemas
    torchvision's import needs first (nothing here calls them)."""
    try:
        import torchvision  # noqa: F401
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            library.define(op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _import_overcomplete.library = library  # a Library unregisters its ops when collected
    import overcomplete
    from overcomplete.sae import TopKSAE

    return overcomplete.__version__, TopKSAE


def main() -> None:
    args = parse(size_parser(__doc__.splitlines()[0]))
    version, TopKSAE = _import_overcomplete()
    device = torch.device(args.device)
    torch.manual_seed(0)
    sae = TopKSAE(args.d, nb_concepts=args.n, top_k=args.k, device=args.device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=5e-4)  # as overcomplete's examples train it
    x = torch.randn(args.batch, args.d, device=device)

    def step() -> None:
        _, _, x_hat = sae(x)
        loss = (x - x_hat).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times = time_steps(step, device, args.warmup, args.repeats)
    print(json.dumps({"peer": f"overcomplete {version} TopKSAE", "times": times}))


if __name__ == "__main__":
    main()
