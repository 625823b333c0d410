"""The sparse backend: the training loss of `sae_lite.core.loss.loss_terms` with work in k, not N.

An exact Top-k SAE must compute every pre-activation to choose the top k: the encoder matmul
``(x - b_pre) @ W_enc^T`` [B, d] x [d, N] is the one dense product it cannot skip (the *bound*).
Everything else depends on the k selected entries of each row only::

    decode        x_hat_b  = sum_s v_bs W_dec[i_bs] + b_pre          B*k*d  (an embedding bag)
    backward      dv_bs    = <g_b, W_dec[i_bs]>                      B*k*d  (sampled matmul)
                  dW_dec   = V^T g                                   B*k*d  (V: the [B, N] codes)
                  dW_enc   = dPre^T (x - b_pre), dPre non-zero on the selected entries only: B*k*d

A penalty's gradient reaches every batch-active unit (A), so a penalised step adds one dense
product restricted to A (its gradient in pre is written in closed form, fused: no autograd graph
over the [B, |A|] block); AuxK adds the same sparse ops with its k_aux dead latents. The loss, its
gradients and hence the weights equal the dense reference within float rounding
(`tests/test_kernels.py`).

Every sum over the batch goes through a `Sync`: the identity in one process, an all-reduce under
torchrun (`sae_lite.core.distributed`), so P processes on P shards compute the loss of the global batch.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from sae_lite.core import penalties
from sae_lite.core.config import TrainConfig
from sae_lite.core.loss import LossTerms
from sae_lite.core.sae import SAE
from sae_lite.errors import SaeLiteError

SUPPORTED_ACTIVATIONS = ("topk",)


class Sync:
    """Sums over the global batch: the identity here; `sae_lite.core.distributed` all-reduces."""

    def sum(self, value: Tensor) -> Tensor:
        return value

    def any(self, mask: Tensor) -> Tensor:
        return mask


def check(config: TrainConfig) -> None:
    """Raise unless the sparse backend implements ``config``'s selection rule."""
    if config.activation not in SUPPORTED_ACTIVATIONS:
        raise SaeLiteError(f"backend 'sparse' implements activation {', '.join(SUPPORTED_ACTIVATIONS)}, "
                           f"not {config.activation!r}; use --backend dense")
    if config.penalty != "none" and config.penalty not in PENALTY_GRADS:
        raise SaeLiteError(f"backend 'sparse' implements the penalties none, {', '.join(PENALTY_GRADS)}, "
                           f"not {config.penalty!r}; use --backend dense")


# --------------------------------------------------------------------------------------------
# Sparse primitives on the CSR matrix V [B, N] whose row b holds the values v_b at columns i_b.
# --------------------------------------------------------------------------------------------

def csr(values: Tensor, index: Tensor, n: int) -> Tensor:
    """The [B, n] CSR matrix with ``values`` [B, m] at columns ``index`` [B, m] (sorted per row)."""
    rows, m = index.shape
    crow = torch.arange(0, rows * m + 1, m, device=index.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, index.reshape(-1), values.reshape(-1), (rows, n),
                                       check_invariants=False)


def decode(values: Tensor, index: Tensor, W_dec: Tensor) -> Tensor:
    """sum_s values[b, s] W_dec[index[b, s]] [B, d] for ``values``, ``index`` [B, m]: an embedding bag,
    differentiable in ``values`` (a sampled matmul) and ``W_dec`` (an index-add over the B*m atoms)."""
    return F.embedding_bag(index, W_dec, per_sample_weights=values, mode="sum")


class SelectedActs(torch.autograd.Function):
    """ReLU(pre) at the entries ``index`` [B, m]; its gradient reaches the encoder through them only.

    ``values`` are those entries, already computed (without gradient); ``xc`` = x - b_pre [B, d].
    """

    @staticmethod
    def forward(ctx, values: Tensor, index: Tensor, xc: Tensor, W_enc: Tensor, b_enc: Tensor,
                b_pre: Tensor) -> Tensor:
        ctx.save_for_backward(values, index, xc, W_enc)
        return values.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        values, index, xc, W_enc = ctx.saved_tensors
        grad = torch.where(values > 0, grad, 0.0)  # through the ReLU
        d_W = csr(grad, index, W_enc.shape[0]).t() @ xc
        d_b = torch.zeros(W_enc.shape[0], dtype=grad.dtype, device=grad.device).index_add_(
            0, index.reshape(-1), grad.reshape(-1))
        return None, None, None, d_W, d_b, -(d_b @ W_enc)


class DensePenalty(torch.autograd.Function):
    """A penalty's ``value`` whose gradient ``grad`` = d value / d pre [B, |A|] on the columns ``cols``
    (None: all N) is already known; backward is one dense product over those columns."""

    @staticmethod
    def forward(ctx, value: Tensor, grad: Tensor, cols: Tensor | None, xc: Tensor, W_enc: Tensor,
                b_enc: Tensor, b_pre: Tensor) -> Tensor:
        ctx.cols = cols
        ctx.save_for_backward(grad, xc, W_enc)
        return value.clone()

    @staticmethod
    def backward(ctx, up: Tensor):
        grad, xc, W_enc = ctx.saved_tensors
        d_W_cols, d_b_cols = (grad.T @ xc).mul_(up), grad.sum(0).mul_(up)
        if ctx.cols is None:
            d_W, d_b = d_W_cols, d_b_cols
        else:
            d_W = torch.zeros_like(W_enc).index_copy_(0, ctx.cols, d_W_cols)
            d_b = W_enc.new_zeros(W_enc.shape[0]).index_copy_(0, ctx.cols, d_b_cols)
        return None, None, None, None, d_W, d_b, -(d_b @ W_enc)


def off_support_grad(acts: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
    """`sae_lite.core.penalties.off_support_l1` (unmasked) of ``acts`` [B, M] = ReLU(pre) and its gradient
    in pre [B, M], given the kept entries ``support`` [B, k] (column numbers)."""
    grad = (acts > 0).to(acts.dtype).scatter_(1, support, 0.0).div_(acts.shape[0])
    return torch.dot(acts.flatten(), grad.flatten()), grad


def ratio_grad(acts: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
    """`sae_lite.core.penalties.l1_l2_ratio` (unmasked) of ``acts`` [B, M] = ReLU(pre) and its gradient in pre.

    With l1, l2 the row norms: d(l1 / (l2 + eps)) / d a_j = 1 / (l2 + eps) - l1 a_j / ((l2 + eps)^2 l2),
    where a_j > 0 (and 0 for a row of zeros, as the reference's guard and clamp give).
    """
    batch = acts.shape[0]
    l1, norm = acts.sum(1), torch.linalg.vector_norm(acts, dim=1)
    l2 = norm.clamp_min(penalties.EPS)
    some = norm > 0
    value = torch.where(some, l1 / (l2 + penalties.EPS), 0.0).sum() / batch
    alpha = torch.where(some, 1 / (l2 + penalties.EPS), 0.0) / batch
    beta = torch.where(norm > penalties.EPS, l1 / ((l2 + penalties.EPS).square() * l2), 0.0) / batch
    grad = acts * -beta[:, None]
    grad.add_(alpha[:, None]).masked_fill_(acts <= 0, 0.0)
    return value, grad


PENALTY_GRADS = {"offsupport": off_support_grad, "ratio": ratio_grad}


# --------------------------------------------------------------------------------------------
# The loss.
# --------------------------------------------------------------------------------------------

def top_k(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The Top-k rule on ReLU(pre) [B, N]: (values [B, k], index [B, k]), index sorted in each row.

    Ranks ``pre`` itself (no [B, N] ReLU pass); rows with fewer than k positive entries, where the
    ReLU's zeros tie, are re-ranked on ReLU(pre) exactly as `sae_lite.core.sparsity.topk` does.
    """
    values, index = pre.topk(k, dim=1, sorted=False)
    short = (values <= 0).any(1).nonzero().flatten()
    if len(short):
        index[short] = torch.relu(pre[short]).topk(k, dim=1, sorted=False).indices
    index = index.sort(dim=1).values
    return torch.relu(pre.gather(1, index)), index


def loss_terms(sae: SAE, x: Tensor, config: TrainConfig, dead: Tensor, sync: Sync | None = None) -> LossTerms:
    """The loss of `sae_lite.core.loss.loss_terms` on ``x`` [B, d], computed sparsely.

    The scalars of the returned `LossTerms` are, under a distributed ``sync``, each process's share of
    the global batch's value (so they add up across processes); ``l0`` is this batch's mean.
    """
    sync = sync or Sync()
    n_global = sync.sum(x.new_tensor(float(x.shape[0])))
    with torch.no_grad():
        xc = x - sae.b_pre
        pre = torch.addmm(sae.b_enc, xc, sae.W_enc.T)  # [B, N]: the bound
        values, index = top_k(pre, sae.k)
    params = (xc, sae.W_enc, sae.b_enc, sae.b_pre)
    codes = SelectedActs.apply(values, index, *params)
    x_hat = decode(codes, index, sae.W_dec) + sae.b_pre
    residual = x - x_hat
    fvu = residual.square().sum() / _centred_square_sum(x, n_global, sync).clamp_min(1e-12)

    aux = x.new_zeros(())
    if config.auxk:  # before the penalty, which may overwrite pre with its ReLU
        aux = _auxk(sae, pre, residual, dead, config.k_aux or max(1, sae.d // 2), params, n_global, sync)
    penalty = x.new_zeros(())
    if config.penalty != "none":
        penalty = _penalty(pre, index, config, params, sync) * (x.shape[0] / n_global)
    loss = fvu + config.weight * penalty + config.auxk_alpha * aux

    on = values > 0
    fired = torch.zeros(sae.n_latents, dtype=torch.bool, device=x.device)
    fired[index[on]] = True
    return LossTerms(loss, fvu, penalty, aux, fired, on.sum(1).float().mean())


def _centred_square_sum(x: Tensor, n_global: Tensor, sync: Sync) -> Tensor:
    """sum_b ||x_b - mean(x)||^2 over the global batch (no gradient)."""
    x = x.detach()
    mean = sync.sum(x.sum(0)) / n_global
    return sync.sum((x - mean).square().sum())


def _penalty(pre: Tensor, index: Tensor, config: TrainConfig, params: tuple, sync: Sync) -> Tensor:
    """The penalty on the batch-active columns (all columns when unmasked), with its gradient in
    closed form: one dense block [B, |A|] and one dense product in backward."""
    n = pre.shape[1]
    active = torch.zeros(n, dtype=torch.bool, device=pre.device)
    active[index.reshape(-1)] = True
    active = sync.any(active)
    if not config.masked or bool(active.all()):
        cols, acts, local = None, pre.relu_(), index
    else:
        cols = active.nonzero().flatten()
        acts = pre.index_select(1, cols).relu_()
        local = (active.cumsum(0) - 1)[index]
    value, grad = PENALTY_GRADS[config.penalty](acts, local)
    return DensePenalty.apply(value, grad, cols, *params)


def _auxk(sae: SAE, pre: Tensor, residual: Tensor, dead: Tensor, k_aux: int, params: tuple,
          n_global: Tensor, sync: Sync) -> Tensor:
    """`sae_lite.core.penalties.auxk`, sparse in k_aux: the top dead latents reconstruct the residual."""
    dead_cols = dead.nonzero().flatten()
    if len(dead_cols) == 0:
        return pre.new_zeros(())
    with torch.no_grad():
        values, local = torch.relu(pre.index_select(1, dead_cols)).topk(min(k_aux, len(dead_cols)), dim=1,
                                                                       sorted=False)
        index, order = dead_cols[local].sort(dim=1)
        values = values.gather(1, order)
    codes = SelectedActs.apply(values, index, *params)
    residual_hat = decode(codes, index, sae.W_dec)
    target = residual.detach()
    variance = _centred_square_sum(target, n_global, sync).clamp_min(penalties.EPS)
    return (residual_hat - target).square().sum() / variance
