"""Training one SAE on several processes: ``torchrun --nproc_per_node=P -m sae_lite train ...``.

torchrun starts P copies of the command and tells each its place through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...). `context` reads it:

- one process (no torchrun): `Local`, where every collective is the identity;
- P processes: `Distributed` joins the process group (NCCL on GPUs, gloo on CPUs) and wraps the
  loss in DistributedDataParallel. Each process takes its shard of every global batch
  (`sae_lite.core.train.Batches`); the sparse backend's loss sums over the global batch through
  `Collectives` (so each process computes its share of the global loss and the gradients are
  *summed*, not averaged, by DDP's communication hook); the fired units are OR-ed over the
  processes, so the dead-latent counters agree; and since every process applies the same summed
  gradient to the same weights, the decoder renormalisation agrees too. Only rank 0 writes
  checkpoints and the run directory.

The same config and global batch on P processes give the metrics of one process up to float
rounding (`tests/test_distributed.py`).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from sae_lite.core import kernels
from sae_lite.core.loss import LossTerms
from sae_lite.device import resolve_device
from sae_lite.errors import SaeLiteError

#: A batch's loss: (sae, x [B, d], config, dead [N]) -> `LossTerms`.
LossFunction = Callable[..., LossTerms]


def launched() -> bool:
    """True in a process started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main() -> bool:
    """True in the process that writes files: rank 0, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    """Wait for every process (nothing to wait for in one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class Local:
    """One process: the whole batch, the plain loss, no communication."""

    rank, world = 0, 1
    is_main = True

    def check(self, config) -> None:
        """Raise before any work if this context cannot train ``config``."""

    def device(self, name: str) -> torch.device:
        return resolve_device(name)

    def loss_terms(self, sae, config, loss: LossFunction) -> LossFunction:
        """The loss to train with: ``loss`` itself, in one process."""
        return loss

    def any(self, mask: Tensor) -> Tensor:
        return mask

    def reduce_row(self, values: dict[str, float], rows: int) -> dict[str, float]:
        """A logged row of this process's ``rows`` inputs -> the row of the global batch."""
        return values


class Collectives(kernels.Sync):
    """The sparse loss's sums over the global batch, all-reduced over the processes (no gradient)."""

    def sum(self, value: Tensor) -> Tensor:
        value = value.detach().clone()
        dist.all_reduce(value)
        return value

    def any(self, mask: Tensor) -> Tensor:
        count = mask.to(torch.int32)
        dist.all_reduce(count)
        return count > 0


class Distributed(Local):
    """A process of a torchrun job; joins the process group on its device."""

    def __init__(self) -> None:
        self.rank, self.world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.is_main = self.rank == 0
        self.collectives = Collectives()

    def check(self, config) -> None:
        if config.backend != "sparse":
            raise SaeLiteError("torchrun trains with the sparse backend, whose loss sums over the global batch; "
                               "pass --backend sparse")

    def device(self, name: str) -> torch.device:
        """``auto``/``cuda`` become this process's GPU (cuda:LOCAL_RANK); joins the group on first use."""
        device = super().device(name)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        elif device.type not in ("cpu", "cuda"):
            raise SaeLiteError(f"torchrun trains on CPUs (gloo) or CUDA GPUs (NCCL), not {device.type}; "
                               "pass --device cpu or cuda")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            atexit.register(_leave)
        return device

    def loss_terms(self, sae, config, loss: LossFunction) -> LossFunction:
        """The loss of the sparse backend on this process's shard, through DistributedDataParallel
        (``loss``, the one-process loss, is replaced by the sparse loss that sums over the processes)."""
        self.check(config)
        device_ids = [sae.W_dec.device.index] if sae.W_dec.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(_Loss(sae, config, self.collectives),
                                                          device_ids=device_ids)
        model.register_comm_hook(None, _sum_hook)
        return lambda sae, x, config, dead: model(x, dead)

    def any(self, mask: Tensor) -> Tensor:
        return self.collectives.any(mask)

    def reduce_row(self, values: dict[str, float], rows: int) -> dict[str, float]:
        """Loss terms are each process's share of the global value (summed); L0 is a mean over inputs."""
        keys = sorted(values)
        local = [values[key] * (rows if key == "l0" else 1) for key in keys]
        reduced = torch.tensor(local + [rows], dtype=torch.float64)
        dist.all_reduce(reduced)
        total = float(reduced[-1])
        return {key: float(value) / (total if key == "l0" else 1) for key, value in zip(keys, reduced)}


def context() -> Local:
    """`Distributed` under a torchrun job of several processes, else `Local`."""
    if not launched():
        return Local()
    if not dist.is_available():
        raise SaeLiteError("this PyTorch build has no torch.distributed; run without torchrun")
    return Distributed()


class _Loss(torch.nn.Module):
    """The sparse loss as a module, so that DistributedDataParallel can wrap it."""

    def __init__(self, sae, config, collectives: Collectives) -> None:
        super().__init__()
        self.sae, self.config, self.collectives = sae, config, collectives

    def forward(self, x: Tensor, dead: Tensor) -> LossTerms:
        return kernels.loss_terms(self.sae, x, self.config, dead, self.collectives)


def _sum_hook(state, bucket):  # -> Future[Tensor]; DDP checks a real annotation, so none here
    """DDP's all-reduce without the division by the world size: each process holds a share of the loss."""
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    return work.get_future().then(lambda future: future.value()[0])


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
