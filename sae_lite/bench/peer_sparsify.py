"""A benchmark peer: EleutherAI sparsify's ``SparseCoder`` training step (PyPI ``eai-sparsify``, 1.3.3).

Run as a plain script by its own environment's Python (``.venv-bench-sparsify``, made by ``scripts/bench_env.sh``);
it imports nothing from sae_lite.
Prints one JSON line: ``{"peer": ..., "version": ..., "seconds_per_step": <median>, "times": [...],
"notes": ...}`` (``peer`` and ``times`` are what ``sae_lite.bench.bench.peer`` reads).

One step is what ``sparsify.Trainer.fit`` does per batch for an SAE (not a transcoder) with
``loss_fn="fvu"``, ``grad_acc_steps = micro_acc_steps = 1`` on one process (sparsify/trainer.py):

1. ``sae.set_decoder_norm_to_unit_norm()`` (the trainer's forward hook does it before every forward);
2. ``out = sae(x, y=x, dead_mask=..., total_variance=(x - x.mean(0)).pow(2).sum())``;
3. ``did_fire[out.latent_indices.flatten()] = True`` and ``float(out.fvu)`` (its logging sync);
4. ``loss = out.fvu + auxk_alpha * out.auxk_loss + out.multi_topk_fvu / 8``; ``loss.backward()``;
5. ``sae.remove_gradient_parallel_to_decoder_directions()``; ``optimizer.step()``; ``zero_grad()``;
   ``scheduler.step()`` (Adam only); the dead-latent counters updated from ``did_fire``.

Optimizer: ``--optimizer adam`` (default here, to compare like with like: torch.optim.Adam with
sparsify's lr 2e-4 / sqrt(N / 2**14) and its linear-warm-up schedule) or ``signum`` (sparsify's own
default: ``ScheduleFreeWrapper(SignSGD, momentum=0.95)``, lr 5e-3 / sqrt(N / 2**14)).
AuxK: off by default, as in sparsify (``auxk_alpha = 0.0`` -> ``dead_mask = None``); ``--auxk-alpha A``
with ``--dead-fraction F`` passes a fixed dead mask (the fraction F of latents, drawn as sae_lite.bench
draws its own) so the AuxK branch runs every step.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys

import torch
from peer_timing import parse, size_parser, time_steps  # the sibling file: these run as plain scripts


def _import_sparsify():
    """Import sparsify with its import-time print ("Triton not installed, ...") sent to stderr, so that
    stdout carries only the JSON line. Returns (version, SparseCoder, SparseCoderConfig, decoder name)."""
    with contextlib.redirect_stdout(sys.stderr):
        import sparsify
        from sparsify import SparseCoder, SparseCoderConfig
        from sparsify import utils as sparsify_utils
    return sparsify.__version__, SparseCoder, SparseCoderConfig, sparsify_utils.decoder_impl.__name__


def main() -> None:
    parser = size_parser(__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=("adam", "signum"), default="adam")
    parser.add_argument("--auxk-alpha", type=float, default=0.0, help="sparsify's default: 0 (AuxK off)")
    parser.add_argument("--dead-fraction", type=float, default=0.25, help="dead latents when --auxk-alpha > 0")
    parser.add_argument("--highest-precision", action="store_true",
                        help="skip sparsify's torch.set_float32_matmul_precision('high')")
    args = parse(parser)
    if torch.device(args.device).type == "cpu":
        # sparsify picks its Triton decoder whenever `import triton` works; its kernels run on GPUs only.
        os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")
    version, SparseCoder, SparseCoderConfig, decoder = _import_sparsify()
    if not args.highest_precision:
        torch.set_float32_matmul_precision("high")  # as Trainer.fit does
    device = torch.device(args.device)

    torch.manual_seed(0)
    cfg = SparseCoderConfig(num_latents=args.n, k=args.k)  # activation="topk", normalize_decoder=True
    sae = SparseCoder(args.d, cfg, device=device, dtype=torch.float32)
    x = torch.randn(args.batch, args.d, generator=torch.Generator().manual_seed(0)).to(device)
    sae.b_dec.data = x.mean(0)  # the trainer's step-0 initialisation of b_dec

    scale = (sae.num_latents / 2**14) ** 0.5
    scheduler = None
    if args.optimizer == "adam":
        # Trainer tries bitsandbytes' Adam8bit first; it is not installed here, so torch.optim.Adam.
        from transformers import get_linear_schedule_with_warmup

        optimizer = torch.optim.Adam([dict(params=sae.parameters(), lr=2e-4 / scale)])
        scheduler = get_linear_schedule_with_warmup(optimizer, 1000, 10**6)  # lr_warmup_steps=1000
        optimizers = [optimizer]
    else:
        from schedulefree import ScheduleFreeWrapper
        from sparsify.sign_sgd import SignSGD

        optimizer = ScheduleFreeWrapper(SignSGD([dict(params=sae.parameters(), lr=5e-3 / scale)]), momentum=0.95)
        optimizer.train()
        optimizers = [optimizer]

    dead_mask = None
    if args.auxk_alpha > 0:
        dead_mask = (torch.rand(args.n, generator=torch.Generator().manual_seed(1)) < args.dead_fraction).to(device)
    did_fire = torch.zeros(args.n, dtype=torch.bool, device=device)
    num_tokens_since_fired = torch.zeros(args.n, dtype=torch.long, device=device)

    def step() -> None:
        sae.set_decoder_norm_to_unit_norm()
        total_variance = (x - x.mean(0)).pow(2).sum()
        out = sae(x=x, y=x, dead_mask=dead_mask, total_variance=total_variance)
        did_fire[out.latent_indices.flatten()] = True
        float(out.fvu.detach())  # the trainer's logging accumulation (a sync on GPUs)
        loss = out.fvu + args.auxk_alpha * out.auxk_loss + out.multi_topk_fvu / 8
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        for opt in optimizers:
            opt.step()
            opt.zero_grad()
        if scheduler is not None:
            scheduler.step()
        with torch.no_grad():
            num_tokens_since_fired.add_(x.shape[0])
            num_tokens_since_fired[did_fire] = 0
            did_fire.zero_()

    times = time_steps(step, device, args.warmup, args.repeats)

    notes = (f"SparseCoder topk, fused_encoder (sparse index_add backward), decoder={decoder}, "
             f"optimizer={args.optimizer}, auxk_alpha={args.auxk_alpha}"
             + (f" (dead_fraction={args.dead_fraction})" if dead_mask is not None else " (AuxK off)")
             + f", matmul_precision={torch.get_float32_matmul_precision()}, threads={torch.get_num_threads()}, "
             f"torch {torch.__version__}")
    print(json.dumps({"peer": f"sparsify {version} SparseCoder", "version": version,
                      "seconds_per_step": statistics.median(times), "times": times, "notes": notes}))


if __name__ == "__main__":
    main()
