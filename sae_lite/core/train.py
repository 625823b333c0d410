"""Training: a free function `train(config, dataset)` that returns the SAE and its history.

Each step computes the batch's loss (`sae_lite.core.loss`, or the sparse backend's
`sae_lite.core.kernels`: the same `LossTerms`), backpropagates it, removes from the decoder's
gradient its component along each atom, clips the gradient's norm where the config says so, takes
an Adam step and renormalises the atoms. Before each step the selection rule sets its own schedule
(`sae_lite.core.rules.base.Rule.on_step`: SoftSAE's annealing, BatchTopK's threshold). The batches
are seeded permutations (any step can be recomputed, so a resumed run equals an uninterrupted one);
a store on disk is streamed in chunks (`sae_lite.data.stream`); under torchrun every process takes
its shard of each global batch (`sae_lite.core.distributed`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from sae_lite.core import distributed, kernels, loss
from sae_lite.core.config import TrainConfig
from sae_lite.core.loss import LossTerms
from sae_lite.core.sae import SAE
from sae_lite.data import stream
from sae_lite.data.datasets import Dataset
from sae_lite.errors import SaeLiteError
from sae_lite.files import damaged, load_tensors, read_json, write_atomic, write_json


class TrainResult(NamedTuple):
    sae: SAE
    history: dict[str, list[float]]  # step, loss, fvu, penalty, auxk, l0, dead: one entry per logged step


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The indices of batch ``step``: epochs are seeded permutations, so any step can be recomputed.

    This is what makes a resumed run identical to an uninterrupted one.
    """
    per_epoch = max(1, n // batch_size)
    epoch, offset = divmod(step, per_epoch)
    return np.sort(epoch_order(n, seed, epoch)[offset * batch_size:(offset + 1) * batch_size])


@functools.lru_cache(maxsize=4)
def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """[n] the seeded permutation of one epoch (read-only; kept, since every step of the epoch reads it)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    order.flags.writeable = False
    return order


class Batches:
    """Fetches batch ``step`` of a dataset onto ``device``; an in-memory dataset is moved there once,
    a memory-mapped store is streamed in shuffled chunks (`sae_lite.data.stream`).

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


def loss_function(config: TrainConfig) -> Callable[[SAE, Tensor, TrainConfig, Tensor], LossTerms]:
    """The loss of ``config``'s backend: the dense reference or the sparse kernels (same `LossTerms`)."""
    return kernels.loss_terms if config.backend == "sparse" else loss.loss_terms


def check(config: TrainConfig) -> None:
    """Raise before any work when ``config`` cannot train here: a backend that lacks its selection rule
    or penalty, or a torchrun job that needs the sparse backend."""
    if config.backend == "sparse":
        kernels.check(config)
    distributed.context().check(config)


def make_optimizer(sae: SAE, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam; fused (one kernel for all parameters) on CPU and CUDA, where PyTorch has it."""
    fused = sae.W_dec.device.type in ("cpu", "cuda")
    return torch.optim.Adam(sae.parameters(), lr=config.lr, fused=fused)


def train_step(sae: SAE, optimizer: torch.optim.Optimizer, x: Tensor, config: TrainConfig, dead: Tensor,
               lr: float, loss_terms: Callable[..., LossTerms] | None = None) -> LossTerms:
    """One optimisation step on ``x`` [B, d]: loss, backward, decoder-gradient projection, Adam, renormalisation.

    ``loss_terms``: the loss to use (default: `loss_function` of ``config``).
    """
    terms = (loss_terms or loss_function(config))(sae, x, config, dead)
    optimizer.zero_grad(set_to_none=True)
    for group in optimizer.param_groups:
        group["lr"] = lr
    terms.loss.backward()
    sae.project_decoder_grad()
    if config.grad_clip is not None:  # after the projection, as St0pien/SoftSAE's trainer clips
        torch.nn.utils.clip_grad_norm_(sae.parameters(), config.grad_clip)
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
    has_state = checkpoint is not None and any((Path(checkpoint) / name).exists() for name in STATE_FILES)
    if resume and not has_state:
        raise SaeLiteError(f"nothing to resume in {checkpoint} (no state.safetensors); start the run with "
                           f"--checkpoint {checkpoint or 'DIR'} and without --resume first")
    if not resume and has_state:
        raise SaeLiteError(f"{checkpoint} already holds the training state of a run; pass --resume to continue it, "
                           "or another --checkpoint DIR (or delete this one) to start over")
    if checkpoint_every < 1:
        raise SaeLiteError(f"checkpoint_every must be >= 1 step, got {checkpoint_every}")
    check(config)
    job = distributed.context()  # one process, or one of a torchrun job
    device = job.device(config.device)
    torch.manual_seed(config.seed)
    sae = SAE(dataset.d, config.n_latents, config.k, config.rule, seed=config.seed).to(device)
    sample = batch_indices(dataset.n, min(dataset.n, 4096), config.seed, 0)
    sae.init_b_pre(torch.as_tensor(stream.take_rows(dataset.x, sample), device=device), config.b_pre_init)
    optimizer = make_optimizer(sae, config)
    since_fired = torch.zeros(config.n_latents, dtype=torch.long, device=device)
    history: dict[str, list[float]] = {key: [] for key in ("step", "loss", "fvu", "penalty", "auxk", "l0", "dead")}
    start = 0
    if resume:
        start, history = _load_state(Path(checkpoint), sae, optimizer, since_fired, config, dataset)

    batches = Batches(dataset.x, config.batch_size, config.seed, device, shard=(job.rank, job.world))
    step_loss = job.loss_terms(sae, config, loss_function(config))
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    bar = _progress_bar(range(start, end), config.steps, start, progress if job.is_main else False)
    for step in bar:
        sae.rule.on_step(step, config.steps)
        dead = since_fired >= config.dead_after
        x = batches(step)
        terms = train_step(sae, optimizer, x, config, dead, learning_rate(config, step), step_loss)
        since_fired += batches.batch_size  # the global batch
        since_fired[job.any(terms.fired)] = 0
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            row = {key: float(getattr(terms, key).detach()) for key in ("loss", "fvu", "penalty", "auxk", "l0")}
            row = job.reduce_row(row, x.shape[0])
            row.update(step=step + 1, dead=int((since_fired >= config.dead_after).sum()))
            for key, value in row.items():
                history[key].append(value)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(fvu=f"{row['fvu']:.3f}", l0=f"{row['l0']:.1f}", dead=row["dead"])
        if checkpoint is not None and job.is_main and ((step + 1) % checkpoint_every == 0 or step + 1 == end):
            _save_state(Path(checkpoint), sae, optimizer, since_fired, step + 1, history, config, dataset)
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


def _data_shape(dataset: Dataset) -> dict:
    """What a checkpoint records of its data, so that a resume on other data is refused."""
    return {"name": dataset.name, "n": dataset.n, "d": dataset.d}


def _save_state(path: Path, sae: SAE, optimizer: torch.optim.Optimizer, since_fired: Tensor, step: int,
                history: dict, config: TrainConfig, dataset: Dataset) -> None:
    """Write the training state, each file whole (`sae_lite.files`): the weights first, then state.json."""
    tensors = {f"sae.{key}": value.detach().cpu().contiguous() for key, value in sae.state_dict().items()}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).cpu().contiguous()
    tensors["since_fired"] = since_fired.cpu()
    write_atomic(path / "state.safetensors", lambda tmp: save_file(tensors, tmp))
    write_json(path / "state.json", {"step": step, "history": history, "config": config.to_dict(),
                                     "data": _data_shape(dataset)}, indent=None)


#: The files of a training checkpoint, and what to do about a damaged one.
STATE_FILES = ("state.safetensors", "state.json")
RESTART = "the checkpoint is damaged: delete its directory and train again without resuming"


def _load_state(path: Path, sae: SAE, optimizer: torch.optim.Optimizer, since_fired: Tensor,
                config: TrainConfig, dataset: Dataset) -> tuple[int, dict]:
    """Restore the state `_save_state` wrote into ``sae``, ``optimizer`` and ``since_fired``; returns
    (the step reached, the history). Every file is checked before anything is restored."""
    meta_file = path / "state.json"
    meta = read_json(meta_file, RESTART)
    step, history = meta.get("step"), meta.get("history")
    if not isinstance(meta.get("config"), dict) or not isinstance(history, dict) or not isinstance(step, int):
        raise damaged(meta_file, "lacks its step, history or config", RESTART)
    try:
        saved = TrainConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as error:
        raise damaged(meta_file, f"holds no valid configuration ({error})", RESTART) from None
    if saved != config:
        raise SaeLiteError(f"the checkpoint in {path} was written by a different configuration; "
                           "resume with the same settings or start a new run")
    if meta.get("data", _data_shape(dataset)) != _data_shape(dataset):
        raise SaeLiteError(f"the checkpoint in {path} was written on other data ({meta['data']}, not "
                           f"{_data_shape(dataset)}); resume with the same --data or start a new run")
    if not 0 < step <= config.steps:
        raise damaged(meta_file, f"says step {step}, outside 1..{config.steps}", RESTART)
    expected = {f"sae.{key}": value for key, value in sae.state_dict().items()}
    for index, param in enumerate(optimizer.param_groups[0]["params"]):  # Adam's state, once a param had a gradient
        expected.update({f"optim.{index}.step": torch.zeros((), dtype=torch.float32),
                         f"optim.{index}.exp_avg": param, f"optim.{index}.exp_avg_sq": param})
    expected["since_fired"] = since_fired
    tensors = load_tensors(path / "state.safetensors", RESTART, expected, optional=("optim.",))
    tensors = {key: value.to(since_fired.device) for key, value in tensors.items()}
    sae.load_state_dict({key[4:]: value for key, value in tensors.items() if key.startswith("sae.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    since_fired.copy_(tensors["since_fired"])
    return step, history
