"""A benchmark peer: SAELens's Top-k SAE training step (PyPI ``sae-lens``, 6.54.12).

Run as a plain script by its own environment's Python (``.venv-bench-saelens``, made by ``scripts/bench_env.sh``);
it imports nothing from sae_lite.
Prints one JSON line: ``{"peer": ..., "version": ..., "seconds_per_step": <median>, "times": [...],
"notes": ...}`` (``peer`` and ``times`` are what ``sae_lite.bench.bench.peer`` reads).

One step is SAELens's own ``SAETrainer.step(batch)`` (sae_lens/training/sae_trainer.py, the public
seam its ``fit`` loop calls), on a ``TopKTrainingSAE`` with the library defaults
(``TopKTrainingSAEConfig``: ``rescale_acts_by_decoder_norm=True``, ``aux_loss_coefficient=1.0``,
``use_sparse_activations=False``, ``apply_b_dec_to_input=True``, ``decoder_init_norm=0.1``) and
``SAETrainerConfig`` defaults (Adam lr 3e-4, betas (0.9, 0.999), constant schedule, no autocast, no
wandb). That step is: ``training_forward_pass`` (encode: (x - b_dec) @ W_enc + b_enc, scaled by
||W_dec||, TopK -> a dense B x N activation tensor; decode: dense (acts / ||W_dec||) @ W_dec + b_dec;
MSE summed over d, mean over B; TopK AuxK loss on the dead latents), the firing statistics,
``loss.backward()``, ``clip_grad_norm_(params, 1.0)``, ``Adam.step()``, ``zero_grad()``, lr scheduler.
There is no decoder renormalisation or gradient projection: the decoder norm is divided out in the
forward instead.

AuxK: on by default in SAELens, but it only does work once latents are dead (no firing for
``dead_feature_window`` = 1000 steps); at the start of training, as here by default, it returns 0.
``--dead-fraction F`` marks a fixed fraction F of latents dead (as sae_lite.bench draws its own) by
setting the trainer's ``n_forward_passes_since_fired`` past the window before every step (untimed), so
AuxK runs on the same dead set each step (left alone, SAELens revives those that fire).
``--sparse-activations`` times SAELens's optional COO path (``use_sparse_activations=True``:
torch.sparse.mm decoder); with torch 2.13 its backward fails
(``aten::view`` has no SparseCPU kernel, at ``feature_acts * (1 / W_dec.norm(dim=-1))`` in
``act_times_W_dec``) unless ``--no-rescale`` (``rescale_acts_by_decoder_norm=False``) is given too.
"""

from __future__ import annotations

import itertools
import json
import statistics

import torch
from peer_timing import parse, size_parser, time_steps  # the sibling file: these run as plain scripts


def main() -> None:
    parser = size_parser(__doc__.splitlines()[0])
    parser.add_argument("--dead-fraction", type=float, default=0.0, help="latents marked dead (AuxK runs if > 0)")
    parser.add_argument("--sparse-activations", action="store_true", help="SAELens's COO activation path")
    parser.add_argument("--no-rescale", action="store_true",
                        help="rescale_acts_by_decoder_norm=False (needed by --sparse-activations on torch 2.13)")
    args = parse(parser)

    import sae_lens
    from sae_lens import LoggingConfig, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    device = torch.device(args.device)
    torch.manual_seed(0)
    sae_cfg = TopKTrainingSAEConfig(d_in=args.d, d_sae=args.n, k=args.k, device=str(device),
                                    use_sparse_activations=args.sparse_activations,
                                    rescale_acts_by_decoder_norm=not args.no_rescale)
    sae = TopKTrainingSAE(sae_cfg)
    steps = args.warmup + args.repeats
    trainer_cfg = SAETrainerConfig(total_training_samples=args.batch * steps, train_batch_size_samples=args.batch,
                                   lr=3e-4, lr_end=3e-4, device=str(device), autocast=False,
                                   logger=LoggingConfig(log_to_wandb=False))
    x = torch.randn(args.batch, args.d, generator=torch.Generator().manual_seed(0)).to(device)
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=itertools.repeat(x))
    sae.to(device)  # as fit() does
    dead = None
    if args.dead_fraction > 0:
        dead = (torch.rand(args.n, generator=torch.Generator().manual_seed(1)) < args.dead_fraction).to(device)

    def step() -> None:
        trainer.step(x)
        trainer.n_training_steps += 1  # fit() advances it after logging / checkpointing (both off here)

    def keep_dead() -> None:  # untimed: the same latents dead every step, as sae_lite.bench does
        if dead is not None:
            trainer.n_forward_passes_since_fired[dead] = trainer_cfg.dead_feature_window + 10**6

    times = time_steps(step, device, args.warmup, args.repeats, before=keep_dead)

    notes = ("TopKTrainingSAE via SAETrainer.step: "
             + ("use_sparse_activations (COO B x N activations, torch.sparse.mm decoder)" if args.sparse_activations
                else "dense B x N activations, dense decoder matmul")
             + f", rescale_acts_by_decoder_norm={sae_cfg.rescale_acts_by_decoder_norm}, Adam lr 3e-4, "
             f"clip_grad_norm 1.0, AuxK coefficient {sae_cfg.aux_loss_coefficient} "
             + (f"(dead_fraction={args.dead_fraction})" if args.dead_fraction > 0 else "(no dead latents: AuxK is 0)")
             + f", threads={torch.get_num_threads()}, torch {torch.__version__}")
    print(json.dumps({"peer": f"SAELens {sae_lens.__version__} TopKTrainingSAE", "version": sae_lens.__version__,
                      "seconds_per_step": statistics.median(times), "times": times, "notes": notes}))


if __name__ == "__main__":
    main()
