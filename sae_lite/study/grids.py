"""The grids of runs the book's chapters walk, defined once so that chapters share their runs.

A configuration asked for by two chapters is one cache entry (`sae_lite.study.results.cached_run`), so the
whole book trains each run once. The data every chapter uses is one setting: ``SAE_LITE_DATA``
(``planted`` by default; ``digits`` or the directory of an embedding store work too).

Each penalty runs at the weight the stated rule picks on that data in the active profile
(`weights`: `sae_lite.study.weights.rule_weight` over `sweep`), never at a weight chosen elsewhere. Each
chapter trains only the runs it shows, so that it also runs alone (on Colab) in a few minutes.
Sizes per profile (seeds from the profile: 1 in ``quick``, 3 in ``default``):

- `sweep`: one penalty at each weight of `sae_lite.study.weights.sweep_weights`, and the baseline, at `K`, on
  the first seed: the sweep the rule chooses from;
- `baseline`: the baseline at every training k of `ks` (chapter 1);
- `pair`: the baseline and one penalty at `K` (chapters 2 and 3);
- `core`: baseline and ratio at every training k of `ks` (chapters 5 and 6);
- `mask`: the mask ablations, with and without AuxK, at `K`;
- `real`: the paper's five methods on the real data (`REAL`: Fashion-MNIST through EfficientNet-Lite0),
  at `K`, every seed: the runs behind the real-data boxes of chapters 1-6 and 10, and the real cell
  of ``reproduce``.
"""

from __future__ import annotations

import os

from sae_lite.core.rules.softsae import SoftSAEConfig
from sae_lite.data.catalog import REAL
from sae_lite.data.spec import DataSpec
from sae_lite.errors import SaeLiteError
from sae_lite.study.methods import ABLATIONS, METHODS, PAPER_METHODS, Method, with_weights
from sae_lite.study.profiles import Profile, active_profile
from sae_lite.study.runner import grid_spec, run_grid
from sae_lite.study.weights import chosen_weights, sweep_grid

#: The training budget of every single-k figure, and the one at which the weight rule sweeps.
K = 16


def data_name() -> str:
    """The data every chapter trains on: ``SAE_LITE_DATA`` or ``planted``."""
    return os.environ.get("SAE_LITE_DATA", "planted")


def ks(profile: Profile | None = None) -> tuple[int, ...]:
    """The training budgets the k sliders walk."""
    return (8, 16) if (profile or active_profile()).name == "quick" else (8, 16, 32)


def sweep(penalty: str, data: str | None = None) -> list[dict]:
    """``penalty`` at each weight of the profile's sweep and the baseline, at `K`, on the first seed."""
    return sweep_grid(data or data_name(), penalty, K)


def weights(data: str | None = None, profile: Profile | None = None,
            penalties: tuple[str, ...] = ("offsupport", "ratio")) -> dict[str, float]:
    """{penalty: weight} the rule picks on ``data`` (default: the chapters' data) at `K`, for ``penalties``."""
    return chosen_weights(data or data_name(), K, profile, penalties)


def methods(*names: str, data: str | None = None, profile: Profile | None = None) -> list[Method]:
    """The methods (or mask ablations) ``names``, their penalties at the rule's `weights` on ``data``
    (only the sweeps of the penalties they use are trained)."""
    chosen = [{**METHODS, **ABLATIONS}[name] for name in names]
    penalties = tuple(dict.fromkeys(m.penalty for m in chosen if m.penalty != "none"))
    return with_weights(chosen, weights(data, profile, penalties) if penalties else {})


def baseline(data: str | None = None) -> list[dict]:
    """The baseline at every k of `ks`, every seed: chapter 1."""
    return run_grid(data or data_name(), methods("baseline"), list(ks()), progress=False)


def pair(penalty: str, data: str | None = None) -> list[dict]:
    """The baseline and ``penalty`` at `K`, every seed: chapters 2 and 3."""
    data = data or data_name()
    return run_grid(data, methods("baseline", penalty, data=data), [K], progress=False)


def core(data: str | None = None) -> list[dict]:
    """The baseline and the ratio at every k of `ks`, every seed: chapters 5 and 6."""
    data = data or data_name()
    return run_grid(data, methods("baseline", "ratio", data=data), list(ks()), progress=False)


def mask(data: str | None = None) -> list[dict]:
    """Off-support and ratio with and without the batch-active mask, with and without AuxK, at `K`.

    Each row gets ``variant`` (``offsupport, mask`` ...), the same with or without AuxK.
    """
    data = data or data_name()
    names = ["offsupport", "ratio", "offsupport-nomask", "ratio-nomask"]
    rows = run_grid(data, methods(*names, *[f"{n}-noauxk" for n in names], data=data), [K], progress=False)
    return [{**row, "variant": f"{row['penalty']}, {'mask' if row['masked'] else 'no mask'}"} for row in rows]


def real(names: tuple[str, ...] = PAPER_METHODS, seeds: tuple[int, ...] | None = None,
         profile: Profile | None = None) -> list[dict]:
    """The methods ``names`` (default: the paper's five) on the real data at `K`, on ``seeds`` (default:
    the profile's), each penalty at the weight the rule picks there."""
    return run_grid(REAL, methods(*names, data=REAL, profile=profile), [K], seeds=seeds, profile=profile,
                    progress=False)


def real_spec(profile: Profile | None = None) -> DataSpec:
    """The data spec of the real data at the profile's size (`sae_lite.study.profiles.RealData`)."""
    return grid_spec(REAL, profile)


def with_reference(rows: list[dict], reference: list[dict], key: str) -> list[dict]:
    """``rows`` plus a copy of the ``reference`` rows for every value of ``key`` in ``rows``.

    Used to show the baseline in every step of a slider over, e.g., the penalty weight.
    """
    values = sorted({row[key] for row in rows})
    return rows + [{**row, key: value} for value in values for row in reference]


# --- chapters 7-8: AbsTopK, SoftSAE, BatchTopK (on planted data: the claims need its ground truth) ---

def signed(profile: Profile | None = None) -> list[dict]:
    """Top-k and AbsTopK on ``planted-signed`` at `K`, every seed of the profile (chapter 7)."""
    return run_grid("planted-signed", [METHODS["baseline"], METHODS["abstopk"]], [K], profile=profile,
                    progress=False, probe_ms=())  # chapter 7 reads the dictionaries, not the probes


def adaptive(profile: Profile | None = None) -> list[dict]:
    """SoftSAE, BatchTopK, Top-k and Top-k + ratio on ``planted`` at `K` (chapter 8)."""
    chosen = methods("baseline", "ratio", "softsae", "batchtopk", data="planted", profile=profile)
    return run_grid("planted", chosen, [K], profile=profile, progress=False)


def soft_variants(profile: Profile | None = None) -> list[dict]:
    """Our own SoftSAE variant (``softsae-ours``) on ``planted`` at `K`, to set beside the authors'
    (``softsae`` in `adaptive`) in chapter 8; no probes."""
    return run_grid("planted", [METHODS["softsae-ours"]], [K], profile=profile, progress=False, probe_ms=())


def soft_alphas(alphas: tuple[float, ...] = (1e-3, 1e-2), profile: Profile | None = None) -> list[dict]:
    """SoftSAE (the authors' rule) on ``planted`` at `K`, every seed, with its final temperature
    ``alpha_final`` at each of ``alphas`` instead of their 1e-4 (chapter 8); no probes. Each row's
    method is ``softsae, alpha <value>``."""
    chosen = [Method(f"softsae, alpha {alpha:g}", rule=SoftSAEConfig(alpha_final=alpha)) for alpha in alphas]
    return run_grid("planted", chosen, [K], profile=profile, progress=False, probe_ms=())


def matched_k(rows: list[dict], method: str = "softsae") -> int:
    """The training k whose Top-k budget matches the mean L0 of ``method`` in ``rows`` (rounded, >= 1)."""
    l0 = [row["l0"] for row in rows if row["method"] == method]
    if not l0:
        raise SaeLiteError(f"no run of {method!r} in these rows; run grids.adaptive() first")
    return max(1, round(sum(l0) / len(l0)))


def matched(rows: list[dict], method: str = "softsae", profile: Profile | None = None) -> list[dict]:
    """``method`` from ``rows`` next to Top-k and Top-k + ratio trained at `matched_k` (same mean L0).

    In the returned rows ``k`` is that matched budget for every method (so `claims.compare` pairs
    them) and ``train_k`` the k each run was trained with.
    """
    k = matched_k(rows, method)
    # the matched comparison reads R^2, MS and purity, not the probes
    others = run_grid("planted", methods("baseline", "ratio", data="planted", profile=profile), [k], profile=profile,
                      progress=False, probe_ms=())
    return [{**row, "train_k": row["k"], "k": k} for row in rows if row["method"] == method] + \
        [{**row, "train_k": row["k"]} for row in others]
