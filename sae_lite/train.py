"""Training: one frozen `TrainConfig` and a free function `train(config, dataset)`.

The loss of one batch is

    loss = FVU_batch(x, x_hat) + weight * penalty(acts, support, masked) + auxk_alpha * AuxK
           [+ soft_target_weight * softplus(mean_b k_hat_b - k)   for SoftSAE]

with FVU_batch = sum ||x - x_hat||^2 / sum ||x - mean_batch(x)||^2 (scale-free, so a penalty
weight transfers across data sets of different norms). After each backward pass the decoder
gradient loses its component along each atom; after each step the atoms are renormalised.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from sae_lite import distributed, penalties, sparsity, stream
from sae_lite.data import Dataset
from sae_lite.errors import SaeLiteError
from sae_lite.sae import SAE


def _doc(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; the CLI's options are generated from these fields."""

    k: int = _doc(16, "latents kept per input during training (the budget)")
    n_latents: int = _doc(512, "dictionary size N", flag="latents")
    activation: str = _doc("topk", "selection rule: one of sae_lite.sparsity.SELECTIONS")
    penalty: str = _doc("none", "sparsity penalty before selection: none, offsupport or ratio")
    weight: float = _doc(0.0, "weight of the penalty in the loss (>= 0)")
    masked: bool = _doc(True, "restrict the penalty to batch-active units (False: the ablation)", flag="mask")
    auxk: bool = _doc(True, "add the AuxK loss that revives dead latents (Gao et al. 2024)")
    auxk_alpha: float = _doc(1 / 32, "weight of the AuxK loss")
    k_aux: int | None = _doc(None, "dead latents AuxK may use per input (default: d // 2)")
    dead_after: int = _doc(10_000, "a latent is dead once it has not fired for this many training inputs")
    lr: float = _doc(5e-3, "Adam learning rate")
    warmdown: float = _doc(0.2, "fraction of the steps, at the end, over which the lr decays linearly to 0")
    batch_size: int = _doc(256, "inputs per step")
    steps: int = _doc(3000, "optimisation steps")
    seed: int = _doc(0, "seeds the initialisation and the order of the batches")
    device: str = _doc("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    backend: str = _doc("dense", "dense (the readable reference) or sparse (sae_lite.kernels: same loss, work in k)")
    b_pre_init: str = _doc("geometric_median", "how b_pre is set from data: geometric_median or mean")
    log_every: int = _doc(50, "steps between two rows of the training history")
    k_max: int | None = _doc(None, "soft: the largest per-input budget k_hat (default min(2k, n_latents - 1))")
    soft_temperature: float = _doc(0.05, "soft: scale of the Laplace CDF in the soft top-k (> 0)")
    soft_target_weight: float = _doc(0.1, "soft: weight of softplus(mean k_hat - k) in the loss")
    hard_fraction: float = _doc(0.2, "soft: fraction of the steps, at the end, trained with hard top-floor(k_hat)")

    def __post_init__(self) -> None:
        if self.n_latents < 1:
            raise SaeLiteError(f"n_latents must be >= 1, got {self.n_latents}")
        sparsity.check_k(self.k, self.n_latents)
        sparsity.get(self.activation)
        penalties.get(self.penalty)
        if sparsity.is_signed(self.activation) and not penalties.accepts_signed(self.penalty):
            raise SaeLiteError(f"penalty {self.penalty!r} is defined only for non-negative activations and cannot "
                               f"train activation {self.activation!r}; use one of {', '.join(sorted(penalties.SIGNED_OK))}")
        sparsity.check_soft(self.k, self.soft_k_max, self.soft_temperature, self.n_latents)
        for name in ("soft_target_weight", "hard_fraction"):
            if not 0 <= getattr(self, name) < math.inf:
                raise SaeLiteError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.hard_fraction > 1:
            raise SaeLiteError(f"hard_fraction must lie in [0, 1], got {self.hard_fraction}")
        if not self.weight >= 0 or not math.isfinite(self.weight):
            raise SaeLiteError(f"weight must be a finite number >= 0, got {self.weight}")
        if self.penalty == "none" and self.weight > 0:
            raise SaeLiteError(f"weight={self.weight} given without a penalty; pass --penalty offsupport or ratio")
        for name in ("lr", "batch_size", "steps", "dead_after", "log_every"):
            if not getattr(self, name) > 0:
                raise SaeLiteError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.warmdown <= 1:
            raise SaeLiteError(f"warmdown must lie in [0, 1], got {self.warmdown}")
        if self.k_aux is not None and self.k_aux < 1:
            raise SaeLiteError(f"k_aux must be >= 1, got {self.k_aux}")
        if self.backend not in ("dense", "sparse"):
            raise SaeLiteError(f"backend must be 'dense' or 'sparse', got {self.backend!r}")
        if self.backend == "sparse":
            from sae_lite import kernels

            kernels.check(self)
        if self.b_pre_init not in ("geometric_median", "mean"):
            raise SaeLiteError(f"b_pre_init must be 'geometric_median' or 'mean', got {self.b_pre_init!r}")

    @property
    def soft_k_max(self) -> int:
        """SoftSAE's k_max, its default filled in."""
        return min(2 * self.k, self.n_latents - 1) if self.k_max is None else self.k_max

    def sae_options(self) -> dict:
        """The selection rule's own settings, passed to `SAE` (none for most rules)."""
        if self.activation != "soft":
            return {}
        return {"k_max": self.soft_k_max, "temperature": self.soft_temperature}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from `asdict` output, ignoring keys this version does not know."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


class TrainResult(NamedTuple):
    sae: SAE
    history: dict[str, list[float]]  # step, loss, fvu, penalty, auxk, l0, dead: one entry per logged step


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise SaeLiteError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SaeLiteError(f"device {name!r} asked for but CUDA is not available; use --device cpu or auto")
    return device


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The indices of batch ``step``: epochs are seeded permutations, so any step can be recomputed.

    This is what makes a resumed run identical to an uninterrupted one.
    """
    per_epoch = max(1, n // batch_size)
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return np.sort(order[offset * batch_size:(offset + 1) * batch_size])


class Batches:
    """Fetches batch ``step`` of a dataset onto ``device``; an in-memory dataset is moved there once,
    a memory-mapped store is streamed in shuffled chunks (`sae_lite.stream`).

    ``shard`` = (rank, world): under torchrun each process takes its slice of every global batch.
    """

    def __init__(self, x: np.ndarray, batch_size: int, seed: int, device: torch.device,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.n, self.batch_size, self.seed, self.device = x.shape[0], min(batch_size, x.shape[0]), seed, device
        self.streamed = isinstance(x, (np.memmap, stream.StoreRows))
        self.on_device = None if self.streamed else torch.as_tensor(np.asarray(x, np.float32), device=device)
        self.x = stream.ChunkedBatches(x, batch_size, seed) if self.streamed else x
        rank, world = shard
        self.part = slice(rank * self.batch_size // world, (rank + 1) * self.batch_size // world)

    def close(self) -> None:
        """Stop a stream's read-ahead thread and free its chunks."""
        if self.streamed:
            self.x.close()

    def __call__(self, step: int) -> Tensor:
        if self.streamed:
            return torch.as_tensor(self.x(step)[self.part]).to(self.device, non_blocking=True)
        index = batch_indices(self.n, self.batch_size, self.seed, step)[self.part]
        return self.on_device[torch.as_tensor(index, device=self.device)]


def learning_rate(config: TrainConfig, step: int) -> float:
    """Constant, then a linear decay to 0 over the last ``warmdown`` fraction of the steps."""
    remaining = (config.steps - step) / max(1.0, config.warmdown * config.steps)
    return config.lr * min(1.0, remaining)


def loss_terms(sae: SAE, x: Tensor, config: TrainConfig, dead: Tensor) -> dict[str, Tensor]:
    """The loss of one batch ``x`` [B, d] and its parts (fvu, penalty, auxk, loss), the units that
    fired [N] and the mean L0; the dense backend adds the `SAEOutput` as ``out``."""
    if config.backend == "sparse":
        from sae_lite import kernels

        return kernels.loss_terms(sae, x, config, dead)
    out = sae(x)
    residual = x - out.x_hat
    fvu = residual.square().sum() / (x - x.mean(0)).square().sum().clamp_min(1e-12)
    penalty = penalties.get(config.penalty)(out.acts, out.support, config.masked)
    aux = x.new_zeros(())
    if config.auxk:
        aux = penalties.auxk(out.pre, residual, sae.W_dec, dead, config.k_aux or max(1, sae.d // 2),
                             signed=sparsity.is_signed(config.activation))
    loss = fvu + config.weight * penalty + config.auxk_alpha * aux
    if out.budget is not None:  # SoftSAE: a soft ceiling on the mean budget
        loss = loss + config.soft_target_weight * torch.nn.functional.softplus(out.budget.mean() - config.k)
    on = out.codes.detach() != 0
    return {"loss": loss, "fvu": fvu, "penalty": penalty, "auxk": aux, "out": out, "fired": on.any(0),
            "l0": on.sum(1).float().mean()}


def make_optimizer(sae: SAE, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam; fused (one kernel for all parameters) on CPU and CUDA, where PyTorch has it."""
    fused = sae.W_dec.device.type in ("cpu", "cuda")
    return torch.optim.Adam(sae.parameters(), lr=config.lr, fused=fused)


def train_step(sae: SAE, optimizer: torch.optim.Optimizer, x: Tensor, config: TrainConfig, dead: Tensor,
               lr: float, loss_terms=loss_terms) -> dict[str, Tensor]:
    """One optimisation step on ``x`` [B, d]: loss, backward, decoder-gradient projection, Adam, renormalisation."""
    terms = loss_terms(sae, x, config, dead)
    optimizer.zero_grad(set_to_none=True)
    for group in optimizer.param_groups:
        group["lr"] = lr
    terms["loss"].backward()
    sae.project_decoder_grad()
    optimizer.step()
    sae.normalize_decoder()
    return terms


def train(config: TrainConfig, dataset: Dataset, *, checkpoint: str | os.PathLike | None = None,
          checkpoint_every: int = 500, resume: bool = False, stop_at: int | None = None,
          progress: bool | None = None) -> TrainResult:
    """Train an SAE on ``dataset.x`` [n, d] as ``config`` says.

    Args:
        checkpoint: a directory for the training state (weights, optimiser, dead-latent counters);
            written every ``checkpoint_every`` steps and at the end, atomically.
        resume: continue from the state in ``checkpoint``; the result equals an uninterrupted run (CPU).
        stop_at: stop after this step (saving the state), e.g. to split a run in two.
        progress: show a progress bar; None shows one for runs longer than ~2 s, never under pytest.
    """
    if resume and (checkpoint is None or not (Path(checkpoint) / "state.safetensors").is_file()):
        raise SaeLiteError(f"nothing to resume in {checkpoint}; train without --resume first")
    job = distributed.context()  # one process, or one of a torchrun job
    job.check(config)
    device = job.device(config.device)
    torch.manual_seed(config.seed)
    sae = SAE(dataset.d, config.n_latents, config.k, config.activation, seed=config.seed,
              **config.sae_options()).to(device)
    sample = batch_indices(dataset.n, min(dataset.n, 4096), config.seed, 0)
    sae.init_b_pre(torch.as_tensor(stream.take_rows(dataset.x, sample), device=device), config.b_pre_init)
    optimizer = make_optimizer(sae, config)
    since_fired = torch.zeros(config.n_latents, dtype=torch.long, device=device)
    history: dict[str, list[float]] = {key: [] for key in ("step", "loss", "fvu", "penalty", "auxk", "l0", "dead")}
    start = 0
    if resume:
        start, history = _load_state(Path(checkpoint), sae, optimizer, since_fired, config)

    batches = Batches(dataset.x, config.batch_size, config.seed, device, shard=(job.rank, job.world))
    step_loss = job.loss_terms(sae, config)
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    bar = _progress_bar(range(start, end), config.steps, start, progress if job.is_main else False)
    for step in bar:
        sae.hard = step >= (1 - config.hard_fraction) * config.steps  # only SoftSAE reads it
        dead = since_fired >= config.dead_after
        x = batches(step)
        terms = train_step(sae, optimizer, x, config, dead, learning_rate(config, step), step_loss)
        since_fired += batches.batch_size  # the global batch
        since_fired[job.any(terms["fired"])] = 0
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            row = {key: float(terms[key].detach()) for key in ("loss", "fvu", "penalty", "auxk", "l0")}
            row = job.reduce_row(row, x.shape[0])
            row.update(step=step + 1, dead=int((since_fired >= config.dead_after).sum()))
            for key, value in row.items():
                history[key].append(value)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(fvu=f"{row['fvu']:.3f}", l0=f"{row['l0']:.1f}", dead=row["dead"])
        if checkpoint is not None and job.is_main and ((step + 1) % checkpoint_every == 0 or step + 1 == end):
            _save_state(Path(checkpoint), sae, optimizer, since_fired, step + 1, history, config)
    batches.close()
    sae.eval()
    return TrainResult(sae, history)


def _progress_bar(steps: range, total: int, initial: int, progress: bool | None):
    if progress is None:
        progress = "PYTEST_CURRENT_TEST" not in os.environ
    if not progress:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, total=total, initial=initial, delay=2.0, desc="train", leave=False)


def _save_state(path: Path, sae: SAE, optimizer: torch.optim.Optimizer, since_fired: Tensor, step: int,
                history: dict, config: TrainConfig) -> None:
    """Write the training state atomically (temporary files, then rename)."""
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"sae.{key}": value.detach().cpu().contiguous() for key, value in sae.state_dict().items()}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).cpu().contiguous()
    tensors["since_fired"] = since_fired.cpu()
    save_file(tensors, path / "state.safetensors.tmp")
    (path / "state.json.tmp").write_text(json.dumps({"step": step, "history": history, "config": asdict(config)}))
    os.replace(path / "state.safetensors.tmp", path / "state.safetensors")
    os.replace(path / "state.json.tmp", path / "state.json")


def _load_state(path: Path, sae: SAE, optimizer: torch.optim.Optimizer, since_fired: Tensor,
                config: TrainConfig) -> tuple[int, dict]:
    meta = json.loads((path / "state.json").read_text())
    if TrainConfig.from_dict(meta["config"]) != config:
        raise SaeLiteError(f"the checkpoint in {path} was written by a different configuration; "
                           "resume with the same settings or start a new run")
    tensors = load_file(path / "state.safetensors", device=str(since_fired.device))
    sae.load_state_dict({key[4:]: value for key, value in tensors.items() if key.startswith("sae.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    since_fired.copy_(tensors["since_fired"])
    return meta["step"], meta["history"]
