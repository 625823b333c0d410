"""What a trained SAE is measured by: reconstruction, sparsity, dead latents, monosemanticity,
class purity, recovery of planted atoms and robustness to the inference-time k (the probes are in
`sae_lite.evaluation.probes`).

Functions take plain tensors (shapes in the signatures); `evaluate` runs them all on a data set.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sae_lite.core.rules.base import check_k
from sae_lite.core.sae import SAE
from sae_lite.data.datasets import Dataset
from sae_lite.errors import SaeLiteError


def _t(a) -> Tensor:
    return torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a).double()


def r2(x, x_hat) -> float:
    """R^2 per input dimension, averaged over the dimensions that vary (as scikit-learn's r2_score).

    x, x_hat: [n, d].
    """
    x, x_hat = _t(x), _t(x_hat)
    ss_res = (x - x_hat).square().sum(0)
    ss_tot = (x - x.mean(0)).square().sum(0)
    varies = ss_tot > 0
    if not varies.any():
        raise SaeLiteError("r2 is undefined: no input dimension varies")
    return float((1 - ss_res[varies] / ss_tot[varies]).mean())


def fvu(x, x_hat) -> float:
    """Fraction of variance unexplained: sum ||x - x_hat||^2 / sum ||x - mean(x)||^2."""
    x, x_hat = _t(x), _t(x_hat)
    return float((x - x_hat).square().sum() / (x - x.mean(0)).square().sum())


def nmse(x, x_hat) -> float:
    """Normalised MSE: sum ||x - x_hat||^2 / sum ||x||^2."""
    x, x_hat = _t(x), _t(x_hat)
    return float((x - x_hat).square().sum() / x.square().sum())


def l0(codes: Tensor) -> float:
    """Mean number of non-zero codes per input; codes [n, N]."""
    return float((codes != 0).sum(1).double().mean())


def dead_latents(codes: Tensor) -> Tensor:
    """[N] bool: latents that never fire (code != 0) on these inputs; codes [n, N]."""
    return ~(codes != 0).any(0)


def monosemanticity(acts, ref) -> Tensor:
    """Monosemanticity score of every latent (Pach et al. 2025), in linear time.

    Args:
        acts: [n, N] activations of the latents on the evaluation inputs.
        ref: [n, D] a reference embedding of each input.

    Returns [N]: for latent j with min-max normalised activations a~ and unit references p_n,
    MS_j = (||sum_n a~_n p_n||^2 - sum_n a~_n^2 ||p_n||^2) / ((sum_n a~_n)^2 - sum_n a~_n^2), i.e. the
    activation-weighted mean cosine similarity between pairs of distinct inputs; NaN where the
    denominator is 0 (a latent that is constant, or fires on a single input). A zero reference
    row counts as orthogonal to everything. Cost O(nnz(acts) D + N D), never O(n^2): with a~ =
    (a - low) / span, every sum over n is one of the raw activations' (sparse: Top-k codes are mostly
    0) shifted by ``low`` times a sum over the references.
    """
    a = acts if isinstance(acts, Tensor) else torch.as_tensor(np.asarray(acts))
    ref = _t(ref)
    if a.shape[0] != ref.shape[0]:
        raise SaeLiteError(f"acts has {a.shape[0]} rows but ref has {ref.shape[0]}; give one reference per input")
    n, n_latents = a.shape
    low, high = a.min(0).values.double(), a.max(0).values.double()
    span = high - low
    scale = torch.where(span > 0, span, 1.0)
    p = ref / ref.norm(dim=1, keepdim=True).clamp_min(1e-12)
    q = p.square().sum(1)                                      # [n]: 1, or 0 for a zero reference
    rows, cols = a.nonzero(as_tuple=True)
    values = a[rows, cols].double()
    by_latent = torch.sparse_coo_tensor(torch.stack([cols, rows]), values, (n_latents, n), check_invariants=False)
    by_latent_sq = torch.sparse_coo_tensor(torch.stack([cols, rows]), values.square(), (n_latents, n),
                                           check_invariants=False)
    total, total_q = by_latent @ torch.ones(n, 1, dtype=torch.float64), by_latent @ q[:, None]    # [N, 1]
    square, square_q = by_latent_sq @ torch.ones(n, 1, dtype=torch.float64), by_latent_sq @ q[:, None]
    total, total_q, square, square_q = (v[:, 0] for v in (total, total_q, square, square_q))
    weighted = (by_latent @ p - low[:, None] * p.sum(0)) / scale[:, None]                # [N, D]: sum_n a~_n p_n
    squares = (square - 2 * low * total + n * low.square()) / scale.square()             # sum_n a~_n^2
    diagonal = (square_q - 2 * low * total_q + q.sum() * low.square()) / scale.square()  # sum_n a~_n^2 ||p_n||^2
    numerator = weighted.square().sum(1) - diagonal
    denominator = ((total - n * low) / scale).square() - squares
    ok = (span > 0) & (denominator > 1e-12)
    return torch.where(ok, numerator / torch.where(ok, denominator, 1.0), torch.full_like(numerator, float("nan"))).float()


def ms_conventions(acts, ref, inputs) -> dict[str, float]:
    """The mean monosemanticity of the latents [n, N] ``acts`` in both published conventions.

    ``ms_pach``: ExplainableML/sae-for-vlm ``metric.py`` (Pach et al. 2025): reference = ``ref``, the
    embeddings of a separate image encoder (their script's default: CLIP ViT-B/32), mean over the
    latents where MS is defined (dead ones are left out and counted apart). ``ms_monoloss``:
    AtlasAnalyticsLab/MonoLoss ``sae/loss.py`` ``compute_monosemanticity_fast`` and the ``np.mean`` of
    ``sae/train_topk.py``: reference = ``inputs``, the SAE's own input, mean over all latents with an
    undefined (dead) one counted as 0. ``ms_defined``: the number of latents where Pach's MS is defined.
    Both use the same per-latent score (`monosemanticity`); MonoLoss adds 1e-8 to the min-max span,
    which changes no defined score here beyond rounding.
    """
    pach = monosemanticity(acts, ref)
    own = pach if ref is inputs else monosemanticity(acts, inputs)
    return {"ms_pach": _nanmean(pach), "ms_monoloss": float(torch.nan_to_num(own, nan=0.0).mean()),
            "ms_defined": int((~torch.isnan(pach)).sum())}


def reference_name(data: Dataset) -> str:
    """What the Pach convention's reference embedding of ``data`` is (`Dataset.reference`)."""
    if data.ref is None:
        return "the SAE's input (no separate reference)"
    return (data.meta or {}).get("reference", "a reference embedding")


def class_purity(acts, labels, weighted: bool = False) -> Tensor:
    """Share of a latent's firing that falls on its most frequent class.

    Args:
        acts: [n, N] activations; a latent fires on an input where its activation is > 0
            (for signed codes, where it is non-zero).
        labels: [n] class ids.
        weighted: count activation mass |a| instead of inputs.

    Returns [N]; NaN for a latent that never fires.
    """
    a = acts if isinstance(acts, Tensor) else torch.as_tensor(np.asarray(acts))
    labels = torch.as_tensor(np.asarray(labels)).long()
    if labels.ndim != 1 or labels.shape[0] != a.shape[0]:
        raise SaeLiteError(f"labels must be [n] with n={a.shape[0]} (one class per input), got {tuple(labels.shape)}")
    rows, cols = (a != 0).nonzero(as_tuple=True)  # counted over the firing entries only: work in k, not N
    mass = a[rows, cols].double().abs() if weighted else torch.ones(len(rows), dtype=torch.float64)
    per_class = torch.zeros(int(labels.max()) + 1, a.shape[1], dtype=torch.float64)      # [C, N]
    per_class.index_put_((labels[rows], cols), mass, accumulate=True)
    total = per_class.sum(0)
    return torch.where(total > 0, per_class.max(0).values / torch.where(total > 0, total, 1.0),
                       torch.full_like(total, float("nan"))).float()


def feature_recovery(W_dec, atoms, threshold: float = 0.9, signed: bool = True) -> dict[str, float]:
    """How well the dictionary W_dec [N, d] recovers planted atoms [M, d] (both unit rows).

    ``recovery_mmcs``: mean over atoms of the best cosine with any latent; ``recovery_matched``:
    share of atoms whose best cosine exceeds ``threshold``. With ``signed=False`` |cos| counts,
    so a latent pointing opposite to an atom matches it too.
    """
    cos = atom_cosines(W_dec, atoms)
    best = (cos if signed else cos.abs()).max(1).values
    return {"recovery_mmcs": float(best.mean()), "recovery_matched": float((best > threshold).double().mean())}


def atom_cosines(W_dec, atoms) -> Tensor:
    """Cosine of every planted atom [M, d] with every decoder atom [N, d]: [M, N]."""
    W, A = _t(W_dec), _t(atoms)
    return (A / A.norm(dim=1, keepdim=True)) @ (W / W.norm(dim=1, keepdim=True)).T


def signed_atoms(codes) -> Tensor:
    """[M] bool: the planted atoms that carry a negative coefficient somewhere in ``codes`` [n, M]."""
    return (_t(codes) < 0).any(0)


def signed_atom_usage(W_dec, atoms, signed, threshold: float = 0.9) -> dict[str, float]:
    """How a dictionary W_dec [N, d] covers the ``signed`` [M] bool planted atoms [M, d].

    A latent matches an atom with sign + if cos > ``threshold``, with sign - if cos < -``threshold``.
    Per signed atom: ``plus`` and ``minus`` latents. Returns ``signed_atoms`` (how many),
    ``latents_per_signed_atom`` (mean of plus + minus), and the shares of signed atoms covered by
    ``one_latent`` (exactly one match, either sign), by a ``pair`` (at least one match of each sign:
    two latents with nearly opposite atoms) and ``missed`` (no match).
    """
    cos = atom_cosines(W_dec, atoms)[torch.as_tensor(np.asarray(signed), dtype=torch.bool)]
    if len(cos) == 0:
        raise SaeLiteError("no signed atom to measure; use data with signed atoms (planted-signed)")
    plus, minus = (cos > threshold).sum(1), (cos < -threshold).sum(1)
    share = lambda mask: float(mask.double().mean())  # noqa: E731
    return {"signed_atoms": len(cos), "latents_per_signed_atom": float((plus + minus).double().mean()),
            "one_latent": share(plus + minus == 1), "pair": share((plus > 0) & (minus > 0)),
            "missed": share(plus + minus == 0)}


def opposite_pairs(W_dec, threshold: float = -0.9) -> int:
    """The number of pairs of decoder atoms [N, d] with cosine below ``threshold`` (nearly opposite)."""
    cos = atom_cosines(W_dec, W_dec)
    return int(torch.triu(cos < threshold, diagonal=1).sum())


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two [n] vectors (average ranks for ties); NaN if one is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


@torch.no_grad()
def budgets(sae: SAE, x, batch_size: int = 4096) -> Tensor:
    """Per-input budget [n]: the one the rule chooses (SoftSAE's k_hat(x)); for a rule with a fixed k,
    the L0 of the code."""
    device = next(sae.parameters()).device
    parts = []
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(np.asarray(x[start:start + batch_size], np.float32), device=device)
        out = sae(batch)
        parts.append((out.codes != 0).sum(1).cpu() if out.budget is None else out.budget.cpu())
    return torch.cat(parts).double()


def decode_sparse(sae: SAE, codes: Tensor) -> Tensor:
    """`SAE.decode` of ``codes`` [B, N] from their non-zero entries only (a sparse product: work in k, not N)."""
    return torch.sparse.mm(codes.to_sparse(), sae.W_dec) + sae.b_pre


@torch.no_grad()
def encode_all(sae: SAE, x, k: int | None = None, batch_size: int = 4096) -> tuple[Tensor, Tensor]:
    """Codes [n, N] and reconstructions [n, d] of ``x`` at budget ``k``, in batches, on the SAE's device.

    Decodes with `decode_sparse`."""
    device = next(sae.parameters()).device
    codes, x_hat = [], []
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(np.asarray(x[start:start + batch_size], np.float32), device=device)
        if batch.ndim != 2 or batch.shape[1] != sae.d:
            raise SaeLiteError(f"expected inputs of shape [B, {sae.d}], got {tuple(batch.shape)}")
        selected = sae.encode(batch, k).codes
        codes.append(selected.cpu())
        x_hat.append(decode_sparse(sae, selected).cpu())
    return torch.cat(codes), torch.cat(x_hat)


@torch.no_grad()
def k_sweep(sae: SAE, x, ks, batch_size: int = 4096) -> dict[int, float]:
    """The variance-weighted R^2 (1 - FVU) when the SAE is run with inference budget k', for each k' in ``ks``.

    Variance-weighted, like the "no cost" judgements: a few nearly constant dimensions would rule the
    uniform average (``r2``) of a real embedding. Each batch is encoded once: every k' selects from the
    same pre-activations (what `encode_all` at that k' would compute)."""
    ks = [int(k) for k in ks]
    for k in ks:
        check_k(k, sae.n_latents)
    device = next(sae.parameters()).device
    mean = torch.as_tensor(np.asarray(x, np.float64).mean(0))
    residual, total = dict.fromkeys(ks, 0.0), 0.0
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(np.asarray(x[start:start + batch_size], np.float32), device=device)
        pre, centred, exact = sae.pre_activations(batch), batch - sae.b_pre, batch.cpu().double()
        total += float((exact - mean).square().sum())
        for k in ks:
            codes = sae.rule.select(pre, k, centred).codes
            x_hat = decode_sparse(sae, codes)
            residual[k] += float((exact - x_hat.cpu().double()).square().sum())
    return {k: 1 - residual[k] / total for k in ks}


def budget_robustness(sae: SAE, x) -> dict[str, float]:
    """The `k_sweep` at half and double the training k (``r2_half_k``; ``r2_double_k`` while 2k < N); x [n, d]."""
    half, double = max(1, sae.k // 2), 2 * sae.k
    sweep = k_sweep(sae, x, [half, double] if double < sae.n_latents else [half])
    return {"r2_half_k": sweep[half], **({"r2_double_k": sweep[double]} if double in sweep else {})}


def evaluate(sae: SAE, test: Dataset) -> dict[str, float | str]:
    """Every scalar metric of ``sae`` on ``test`` (the keys of a run's metrics.json).

    MS is given in both conventions (`ms_conventions`, on |codes|: AbsTopK is signed), with
    ``ms_reference`` naming the reference of the Pach one; ``ms_mean`` equals ``ms_pach``.
    """
    codes, x_hat = encode_all(sae, test.x)
    dead = dead_latents(codes)
    unexplained = fvu(test.x, x_hat)
    result = {"r2": r2(test.x, x_hat), "fvu": unexplained, "r2_vw": 1 - unexplained, "nmse": nmse(test.x, x_hat),
              "l0": l0(codes), "dead_fraction": float(dead.double().mean()), "dead": int(dead.sum()),
              **ms_conventions(codes.abs(), test.reference, test.x), "ms_reference": reference_name(test)}
    result["ms_mean"] = result["ms_pach"]  # the book's name for the convention the claims judge (Pach)
    result.update(budget_robustness(sae, test.x))
    if test.labels is not None and np.asarray(test.labels).ndim == 1:
        result["purity_mean"] = _nanmean(class_purity(codes, test.labels))
        result["weighted_purity_mean"] = _nanmean(class_purity(codes, test.labels, weighted=True))
    if test.atoms is not None:
        result.update(feature_recovery(sae.W_dec.detach().cpu(), test.atoms))
        result["opposite_pairs"] = opposite_pairs(sae.W_dec.detach().cpu())
        if test.codes is not None and signed_atoms(test.codes).any():
            result.update(signed_atom_usage(sae.W_dec.detach().cpu(), test.atoms, signed_atoms(test.codes)))
    if test.n_active is not None:  # does the per-input budget (k_hat, or the L0) track the true count?
        result["budget_rank_corr"] = rank_correlation(budgets(sae, test.x), test.n_active)
        result["l0_rank_corr"] = rank_correlation((codes != 0).sum(1), test.n_active)
    return result


def _nanmean(values: Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")
