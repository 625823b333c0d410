"""The peer's training step for `sae_lite.bench`: overcomplete's ``TopKSAE`` (PyPI, 0.3.0).

Run as a plain script by the benchmark environment's Python (``scripts/bench_env.sh``), which holds
overcomplete and an older matplotlib; it imports nothing from sae_lite. Prints one JSON line with the
step times in seconds: ``{"peer": "overcomplete 0.3.0 TopKSAE", "times": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("d", "n", "k", "batch", "repeats", "warmup"):
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
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

    times = []
    for i in range(args.warmup + args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    print(json.dumps({"peer": f"overcomplete {version} TopKSAE", "times": times}))


if __name__ == "__main__":
    main()
