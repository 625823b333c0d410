"""The sparse backend: the training loss of `sae_lite.core.loss.loss_terms` with work in k, not N.

An exact Top-k SAE must compute every pre-activation to choose the top k: the encoder matmul
``(x - b_pre) @ W_enc^T`` [B, d] x [d, N] is the one dense product it cannot skip (the *bound*).
Everything else depends on the k selected entries of each row only::

    decode        x_hat_b  = sum_s v_bs W_dec[i_bs] + b_pre          B*k*d  (an embedding bag)
    backward      dv_bs    = <g_b, W_dec[i_bs]>                      B*k*d  (sampled matmul)
                  dW_dec   = V^T g                                   B*k*d  (V: the [B, N] codes)
                  dW_enc   = dPre^T (x - b_pre), dPre non-zero on the selected entries only: B*k*d

A penalty's gradient reaches every batch-active unit (A), so a penalised step adds one dense
product restricted to A (its gradient in pre is written in closed form, built in cache-sized row
chunks over pre's storage and multiplied in forward: no autograd graph over the [B, |A|] block);
AuxK adds the same sparse ops with its k_aux dead latents D, or, when k_aux is a large share of D,
four dense products over D (decode, its two gradients, the encoder's). The loss, its
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
from sae_lite.core.rules.topk import TopKConfig
from sae_lite.core.sae import SAE
from sae_lite.errors import SaeLiteError


class Sync:
    """Sums over the global batch: the identity here; `sae_lite.core.distributed` all-reduces."""

    def sum(self, value: Tensor) -> Tensor:
        return value

    def any(self, mask: Tensor) -> Tensor:
        return mask


def check(config: TrainConfig) -> None:
    """Raise unless the sparse backend implements ``config``'s selection rule (Top-k) and penalty."""
    if type(config.rule) is not TopKConfig:
        raise SaeLiteError(f"backend 'sparse' implements activation topk, not {config.activation!r}; "
                           "use --backend dense")
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


class KnownGrads(torch.autograd.Function):
    """A loss term's ``value`` whose gradients were computed with it, in closed form, while its blocks were at
    hand: on the encoder's rows ``cols`` (None: all N), ``d_W_enc`` = G^T (x - b_pre) [|C|, d] and ``d_b_enc`` =
    G's column sums, for G = d value / d pre on those columns; on the decoder's rows ``cols``, ``d_W_dec``
    [|C|, d] (None: the term does not read the decoder). Backward only scales them and puts them in place."""

    @staticmethod
    def forward(ctx, value: Tensor, d_W_enc: Tensor, d_b_enc: Tensor, d_W_dec: Tensor | None, cols: Tensor | None,
                W_enc: Tensor, b_enc: Tensor, b_pre: Tensor, W_dec: Tensor) -> Tensor:
        ctx.cols = cols
        ctx.save_for_backward(d_W_enc, d_b_enc, d_W_dec, W_enc, b_enc, W_dec)
        return value.clone()

    @staticmethod
    def backward(ctx, up: Tensor):
        d_W_enc, d_b_enc, d_W_dec, W_enc, b_enc, W_dec = ctx.saved_tensors
        d_W, d_b = _on_rows(d_W_enc * up, ctx.cols, W_enc), _on_rows(d_b_enc * up, ctx.cols, b_enc)
        d_dec = None if d_W_dec is None else _on_rows(d_W_dec * up, ctx.cols, W_dec)
        return None, None, None, None, None, d_W, d_b, -(d_b @ W_enc), d_dec


def _on_rows(block: Tensor, rows: Tensor | None, like: Tensor) -> Tensor:
    """``block`` [|rows|, ...] as a tensor shaped like ``like``, zero off ``rows`` (None: ``block`` is all of it)."""
    return block if rows is None else torch.zeros_like(like).index_copy_(0, rows, block)


def off_support_grad(acts: Tensor, support: Tensor, batch: int | None = None) -> tuple[Tensor, Tensor]:
    """`sae_lite.core.penalties.off_support_l1` (unmasked) of ``acts`` [B, M] = ReLU(pre) and its gradient
    in pre [B, M], given the kept entries ``support`` [B, k] (column numbers); ``batch``: the B to divide by
    (default: the rows of ``acts``, which may be a slice of the batch). Only the positive part of ``acts`` is
    read, so pre itself will do."""
    grad = torch.gt(acts, 0, out=torch.empty_like(acts)).scatter_(1, support, 0.0)
    grad.mul_(1 / (batch or acts.shape[0]))
    return torch.dot(acts.flatten(), grad.flatten()), grad


def ratio_grad(acts: Tensor, support: Tensor, batch: int | None = None) -> tuple[Tensor, Tensor]:
    """`sae_lite.core.penalties.l1_l2_ratio` (unmasked) of ``acts`` [B, M] = ReLU(pre) and its gradient in pre
    (``batch`` as in `off_support_grad`).

    With l1, l2 the row norms: d(l1 / (l2 + eps)) / d a_j = 1 / (l2 + eps) - l1 a_j / ((l2 + eps)^2 l2),
    where a_j > 0 (and 0 for a row of zeros, as the reference's guard and clamp give).
    """
    batch = batch or acts.shape[0]
    l1, norm = acts.sum(1), torch.linalg.vector_norm(acts, dim=1)
    l2 = norm.clamp_min(penalties.EPS)
    some = norm > 0
    value = torch.where(some, l1 / (l2 + penalties.EPS), 0.0).sum() / batch
    alpha = torch.where(some, 1 / (l2 + penalties.EPS), 0.0) / batch
    beta = torch.where(norm > penalties.EPS, l1 / ((l2 + penalties.EPS).square() * l2), 0.0) / batch
    grad = torch.gt(acts, 0, out=torch.empty_like(acts)).mul_(alpha[:, None])  # (no bool masks: slow on CPU)
    return value, grad.addcmul_(acts, beta[:, None], value=-1)


PENALTY_GRADS = {"offsupport": off_support_grad, "ratio": ratio_grad}
CHUNK = 1 << 19  # entries of the penalty's gradient block built at once (2 MiB in float32: in the L3 cache)
AUXK_DENSE_FROM = 1 / 16  # AuxK runs dense over the dead columns when k_aux is at least this share of them
AUXK_WIDTH = 64  # the dense AuxK block's width is a multiple of this (zero columns pad it)


# --------------------------------------------------------------------------------------------
# The loss.
# --------------------------------------------------------------------------------------------

def top_k(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The Top-k rule on ReLU(pre) [B, N]: (values [B, k], index [B, k]), index sorted in each row.

    Ranks ``pre`` itself (no [B, N] ReLU pass); rows with fewer than k positive entries, where the
    ReLU's zeros tie, are re-ranked on ReLU(pre) exactly as `sae_lite.core.rules.topk.topk` does.
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
    """The penalty on the batch-active columns (all columns when unmasked), with its gradient in closed form.

    The gradient block G [B, |A|] is built a few rows at a time (`CHUNK` entries, so the element-wise work
    runs in cache and reads pre once), written over pre's storage (pre is not needed after this; no new
    [B, |A|] allocation), and multiplied once: G^T (x - b_pre), in forward; backward only scales it.
    """
    n = pre.shape[1]
    active = torch.zeros(n, dtype=torch.bool, device=pre.device)
    active[index.reshape(-1)] = True
    active = sync.any(active)
    if not config.masked or bool(active.all()):
        cols, local, grad = None, index, pre
    else:
        cols = active.nonzero().flatten()
        local = (active.cumsum(0) - 1)[index]
        # G's row b ends at (b + 1)|A| <= (b + 1)N in pre's storage: it overwrites only rows already read
        grad = pre.view(-1)[:pre.shape[0] * len(cols)].view(pre.shape[0], len(cols))
    penalty_grad, batch = PENALTY_GRADS[config.penalty], pre.shape[0]
    rows = max(1, CHUNK // grad.shape[1])
    value, d_b = pre.new_zeros(()), pre.new_zeros(grad.shape[1])
    for start in range(0, batch, rows):
        part = slice(start, start + rows)
        block = pre[part] if cols is None else pre[part].index_select(1, cols)
        part_value, part_grad = penalty_grad(block.relu_(), local[part], batch)
        grad[part] = part_grad
        value += part_value
        d_b += part_grad.sum(0)
    xc, W_enc, b_enc, b_pre = params
    return KnownGrads.apply(value, grad.T @ xc, d_b, None, cols, W_enc, b_enc, b_pre, None)


def _auxk(sae: SAE, pre: Tensor, residual: Tensor, dead: Tensor, k_aux: int, params: tuple,
          n_global: Tensor, sync: Sync) -> Tensor:
    """`sae_lite.core.penalties.auxk`: the top k_aux dead latents reconstruct the residual.

    Sparse in k_aux (embedding bags) when k_aux is a small share of the dead latents D; dense products over
    D when it is at least `AUXK_DENSE_FROM` of them: a dense product does many times more multiply-adds
    per second than the embedding bags and the CSR product, so it wins once k_aux is a modest share of D
    (the benchmark's sizes are past that share).
    """
    dead_cols = dead.nonzero().flatten()
    if len(dead_cols) == 0:
        return pre.new_zeros(())
    m = min(k_aux, len(dead_cols))
    target = residual.detach()
    variance = _centred_square_sum(target, n_global, sync).clamp_min(penalties.EPS)
    if m >= AUXK_DENSE_FROM * len(dead_cols):
        return _dense_auxk(sae, pre, target, variance, dead_cols, m, params)
    with torch.no_grad():
        values, local = pre.index_select(1, dead_cols).relu_().topk(m, dim=1, sorted=False)
        index, order = dead_cols[local].sort(dim=1)
        values = values.gather(1, order)
    codes = SelectedActs.apply(values, index, *params)
    return (decode(codes, index, sae.W_dec) - target).square().sum() / variance


def _dense_auxk(sae: SAE, pre: Tensor, target: Tensor, variance: Tensor, dead_cols: Tensor, m: int,
                params: tuple) -> Tensor:
    """AuxK by four dense products over the dead columns D, its gradients in closed form (`KnownGrads`).

    With Z [B, |D|] the codes (ReLU(pre) on each row's top m dead columns, zero elsewhere), W = W_dec[D] and
    E = (Z W - target) 2 / variance: the value is ||Z W - target||^2 / variance, d W = Z^T E and, through the
    ReLU where Z > 0, d pre = (E W^T) * [Z > 0], so d W_enc[D] = d pre^T (x - b_pre). The block is padded with
    zero columns to a multiple of `AUXK_WIDTH`: on our CPU E W^T took 1.2 to 1.35x as long at an odd width.
    """
    xc, W_enc, b_enc, b_pre = params
    n_dead = len(dead_cols)
    width = -(-n_dead // AUXK_WIDTH) * AUXK_WIDTH
    cols = torch.cat([dead_cols, dead_cols[:1].expand(width - n_dead)])  # pad: any column, zeroed below
    with torch.no_grad():
        codes = pre.index_select(1, cols)  # [B, width]
        codes[:, n_dead:] = 0.0
        values, local = codes.relu_().topk(m, dim=1, sorted=False)
        codes = codes.zero_().scatter_(1, local, values)
        W = sae.W_dec.index_select(0, cols)  # [width, d]
        error = torch.addmm(target, codes, W, beta=-1)  # Z W - target [B, d]
        value = error.square().sum() / variance
        error.mul_(2 / variance)
        d_W_dec = codes.T @ error
        d_pre = (error @ W.T).mul_(codes.gt_(0))  # (the codes are not needed after this)
        d_W_enc, d_b_enc = d_pre.T @ xc, d_pre.sum(0)
    parts = d_W_enc[:n_dead], d_b_enc[:n_dead], d_W_dec[:n_dead]
    return KnownGrads.apply(value, *parts, dead_cols, W_enc, b_enc, b_pre, sae.W_dec)
