"""Write chapters 7-8 (notebooks/07_*.ipynb, 08_*.ipynb, without outputs) from the cells below.

Same form and helpers as `make_notebooks.py` (chapters 0-6): ``python scripts/make_chapters_7_8.py``
overwrites the two notebooks.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_notebooks import SETUP, exercise, objectives, write  # noqa: E402

CHAPTERS: dict[str, list[tuple[str, str]]] = {}

#: The chapters' verdicts are written by `sae_lite.findings` from the runs, for the profile that ran.
LEAD_IN = "The verdict in words, written by `sae_lite.findings` from the runs above for the profile this page ran with:"

CHAPTERS["07_abstopk_and_the_proximal_view"] = [
    ("md", """# 7. AbsTopK and the proximal view

Top-k keeps the k largest *positive* pre-activations. A concept with two directions ("left ↔ right")
then needs two latents with nearly opposite decoder atoms. AbsTopK {cite:p}`zhu2025abstopk` keeps the
k largest pre-activations *in magnitude*, sign included, so one latent can carry both directions.
This chapter derives both rules, and ReLU and JumpReLU, as one proximal-gradient step, then checks
the claim on planted data where some atoms are signed."""),
    ("md", objectives("write ReLU, JumpReLU, Top-k and AbsTopK as the proximal operator of a regulariser R",
                      "train an AbsTopK SAE (`activation='abstopk'`) and say what its codes and penalties see",
                      "count, for each signed planted atom, the latents that match it and with which sign",
                      "judge the AbsTopK claim with mean ± std over seeds")),
    ("md", r"""## One proximal step is an encoder

Sparse coding asks for a code $\mathbf{z}$ that reconstructs $\mathbf{x}$ from a dictionary $D$ and a
bias $\mathbf{b}$ while keeping $R(\mathbf{z})$ small:

$$
\min_{\mathbf{z}} \; \tfrac12 \lVert \mathbf{x} - D\mathbf{z} - \mathbf{b} \rVert^2 + \lambda R(\mathbf{z}).
$$

One proximal-gradient step with unit step size from $\mathbf{z} = 0$ takes the gradient step
$\mathbf{u} = D^\top(\mathbf{x} - \mathbf{b})$ and then the proximal operator
$\operatorname{prox}_{\lambda R}(\mathbf{u}) = \arg\min_{\mathbf{z}} \tfrac12\lVert\mathbf{z} - \mathbf{u}\rVert^2 + \lambda R(\mathbf{z})$.
With a learned encoder in place of $D^\top$, $\mathbf{u}$ is the SAE's pre-activation, and the
choice of $R$ *is* the choice of activation {cite:p}`zhu2025abstopk`:

| $R(\mathbf{z})$ | $\operatorname{prox}(\mathbf{u})$ | activation |
|---|---|---|
| $\lVert\mathbf{z}\rVert_1$, $\mathbf{z} \ge 0$ | $\max(u_j - \lambda, 0)$ | ReLU with bias $-\lambda$ |
| $\lVert\mathbf{z}\rVert_0$, $\mathbf{z} \ge 0$ | $u_j \, \mathbb{1}[u_j > \sqrt{2\lambda}]$ | JumpReLU |
| $\iota\{\lVert\mathbf{z}\rVert_0 \le k, \mathbf{z} \ge 0\}$ | the $k$ largest $\max(u_j, 0)$ | Top-k {cite:p}`gao2024scaling` |
| $\iota\{\lVert\mathbf{z}\rVert_0 \le k\}$ | the $k$ largest $\lvert u_j\rvert$, sign kept | AbsTopK |

($\iota$ is 0 on the set and $+\infty$ outside it.) Top-k is a *projection* onto the non-negative
$k$-sparse vectors; drop the sign constraint and the projection keeps the sign: AbsTopK.
`sae_lite.prox` implements the four, and `prox.objective` is the function each one minimises."""),
    ("code", SETUP),
    ("code", """import torch
from sae_lite import prox, sparsity

plots.prox_maps(lam=0.5, tau=1.0);"""),
    ("md", """Each panel is the map of one coordinate $u_j \\mapsto z_j$. ReLU shrinks; JumpReLU and Top-k
keep $u_j$ unchanged above a threshold (for Top-k the threshold is the k-th largest of the *other*
coordinates, so it depends on the input); AbsTopK is Top-k made odd-symmetric.

The k-sparse proxes are exactly the selection rules of `sae_lite.sparsity`, and each prox
minimises its objective (a brute-force check over every support lives in `tests/test_prox.py`):"""),
    ("code", """u = torch.randn(3, 12, generator=torch.Generator().manual_seed(0))
print("Top-k prox == sparsity.topk:     ", torch.equal(prox.prox(u, "topk", 4), sparsity.topk(u, 4).codes))
print("AbsTopK prox == sparsity.abstopk:", torch.equal(prox.prox(u, "abstopk", 4), sparsity.abstopk(u, 4).codes))
z = prox.prox(u, "abstopk", 4)
print("objective at the prox:", prox.objective(z, u, "abstopk", 4).numpy().round(3))
print("objective at Top-k's answer (also 4-sparse):", prox.objective(prox.prox(u, "topk", 4), u, "abstopk", 4).numpy().round(3))"""),
    ("md", """## The maps as λ moves (the slider)

Above, a figure whose slider works in the static book; below it, under a live kernel, the same with
ipywidgets. The slider walks λ (for Top-k and AbsTopK, the cut $\\tau = \\sqrt{2\\lambda}$ at which
JumpReLU with the same λ cuts): only ReLU shrinks what it keeps."""),
    ("code", """widgets.explore(plots.prox_rows(), x="u", y="z", slider="lam", title="prox maps")"""),
    ("md", r"""## AbsTopK in the SAE

`SAE(..., activation="abstopk")` keeps the k largest $\lvert\text{pre}\rvert$ of each input with their
sign. The penalties of chapters 2-3 see `acts` $= \lvert\text{pre}\rvert$ with the same batch-active
mask, so off-support L1 and the L1/L2 ratio keep their meaning; a penalty that would read the sign
is refused before training (`penalties.SIGNED_OK`). AuxK picks dead latents by $\lvert\text{pre}\rvert$ too.

## Signed planted atoms

`planted-signed` is the planted data of chapter 0 with a quarter of the atoms *bidirectional*:
each time such an atom fires, its coefficient gets a random sign. For each signed atom we count the
latents whose decoder atom has cosine $> 0.9$ with it (sign +) and $< -0.9$ (sign −); a signed atom
"covered by a pair" has both. We also count, in each dictionary, the pairs of latents with nearly
opposite atoms (cosine $< -0.9$)."""),
    ("code", """rows = grids.signed()
measures = ["opposite_pairs", "pair", "one_latent", "missed", "latents_per_signed_atom", "r2", "l0", "dead"]
table = pd.DataFrame(summarize(rows, measures, by=("method", "k")))
table.round(3)"""),
    ("code", """from sae_lite import metrics, runs
from sae_lite.experiments import load_split

fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), sharey=True)
for ax, method in zip(axes, ["baseline", "abstopk"]):
    first = next(r for r in rows if r["method"] == method and r["seed"] == profile.seeds[0])
    run = runs.load_run(first["path"])
    test = load_split(run.data)[1]
    signed = metrics.signed_atoms(test.codes).numpy()
    plots.signed_usage(run.sae.W_dec.detach().numpy(), test.atoms, signed, ax=ax)
    ax.set_title(f"{method}: " + ax.get_title(), fontsize="medium")
fig.tight_layout()"""),
    ("md", """Blue bars above the axis count latents aligned with a signed atom, red bars below count latents
pointing the opposite way. A Top-k dictionary that splits a bidirectional concept shows both a blue
and a red bar for that atom; an AbsTopK dictionary needs only one."""),
    ("md", """## What the paper claims / what we measured

{cite:t}`zhu2025abstopk` argue that where Top-k (and ReLU SAEs) must spend two latents with nearly
opposite atoms on a bidirectional concept, AbsTopK spends one. The two parts below are judged by the
rule of `sae_lite.claims` (two standard errors over seeds; every part must hold)."""),
    ("code", """claims.show(claims.evaluate_claims(rows, [claims.EXTENSION_CLAIMS["abstopk_pairs"],
                                          claims.EXTENSION_CLAIMS["abstopk_single"]]))"""),
    ("md", """AbsTopK also changes the recovery score of chapter 1, which counts the sign of the cosine: an
AbsTopK latent may learn an atom's *negative* direction and fire with negative codes. With the sign
ignored (|cos|), the score only asks whether a latent found the atom, in either direction:"""),
    ("code", """recovery = [{"method": r["method"], "seed": r["seed"],
             "best |cos|": metrics.feature_recovery(runs.load_run(r["path"]).sae.W_dec.detach(), test.atoms,
                                                     signed=False)["recovery_mmcs"],
             "best cos (signed)": r["recovery_mmcs"]} for r in rows]
pd.DataFrame(summarize(recovery, ["best |cos|", "best cos (signed)"], by=("method",))).round(3)"""),
    ("md", LEAD_IN),
    ("code", """from IPython.display import Markdown

from sae_lite import findings

display(Markdown(findings.signed_findings(rows, recovery)))"""),
    ("md", """## Exercises"""),
    ("md", exercise(1, "easy", 5, "Show with `prox.objective` that for an input with one large negative "
                    "pre-activation, the AbsTopK prox has a strictly smaller objective than the Top-k answer.",
                    "```python\nu = torch.tensor([[-3.0, 0.5, 0.2]])\n"
                    "for name in ('abstopk', 'topk'):\n    z = prox.prox(u, name, 1)\n"
                    "    print(name, z, prox.objective(z, u, 'abstopk', 1))\n```\nAbsTopK keeps −3 "
                    "(objective 0.145); Top-k keeps 0.5 (objective 4.52): the sign constraint costs the whole "
                    "negative coordinate.")),
    ("md", exercise(2, "medium", 10, "Derive the JumpReLU threshold $\\sqrt{2\\lambda}$: for one coordinate, "
                    "compare the objective at $z = 0$ and at $z = u$.",
                    "At $z = 0$ the objective is $u^2/2$; at $z = u$ it is $\\lambda$ (one non-zero entry, "
                    "no distance). Any other non-zero $z$ costs more than $z = u$. So keeping $u$ wins iff "
                    "$u^2/2 > \\lambda$, i.e. $u > \\sqrt{2\\lambda}$ (with $z \\ge 0$).")),
    ("md", exercise(3, "hard", 20, "Make every atom signed (`data_spec('planted-signed', signed_fraction=1.0)`) "
                    "and train both rules for the first seed. Which one loses more reconstruction, and why?",
                    "```python\nfrom sae_lite.experiments import METHODS, data_spec, run_grid\n"
                    "spec = data_spec('planted-signed', n=profile.n_planted, signed_fraction=1.0)\n"
                    "r = run_grid(spec, [METHODS['baseline'], METHODS['abstopk']], [grids.K], seeds=profile.seeds[:1])\n"
                    "[(x['method'], round(x['r2'], 3), x['opposite_pairs']) for x in r]\n```\n"
                    "Top-k needs two latents per atom, so with 512 latents for 192 atoms it runs short of "
                    "latents and of budget (a negative coefficient costs it a latent that the positive side "
                    "cannot share); AbsTopK needs one.")),
    ("md", """## Summary

- One proximal step from zero turns a regulariser into an activation: ℓ1 → ReLU, ℓ0 → JumpReLU, a
  non-negative k-sparse constraint → Top-k, a k-sparse constraint → AbsTopK.
- AbsTopK keeps the k largest |pre| with their sign; the penalties and AuxK read |pre|.
- On signed planted atoms we count matching latents per sign and opposite-atom pairs; the box above
  gives our verdict with its seeds."""),
]

CHAPTERS["08_softsae_adaptive_budgets"] = [
    ("md", """# 8. SoftSAE and adaptive budgets

Top-k gives every input the same budget k, whether it carries two features or twenty. SoftSAE
{cite:p}`stepien2026softsae` lets a small head choose a budget $\\hat k(\\mathbf{x})$ per input and
keeps about $\\hat k$ units with a differentiable soft top-k. BatchTopK {cite:p}`bussmann2024batchtopk`
is the simpler, common alternative: the batch shares a budget of $B \\cdot k$. On planted data the true
number of active atoms per input is known, so we can check whether the chosen budgets follow it."""),
    ("md", objectives("write the soft top-k with a Laplace CDF and explain how its threshold is solved and differentiated",
                      "train SoftSAE (`activation='soft'`) and BatchTopK (`activation='batchtopk'`) SAEs",
                      "measure how well a per-input budget tracks the true number of active atoms (Spearman ρ)",
                      "compare SoftSAE, Top-k and Top-k + ratio at matched mean L0, and BatchTopK in the k' and probing comparisons")),
    ("md", r"""## The soft top-k

With $a_j = \operatorname{ReLU}(\text{pre}_j)$, a temperature $\alpha$ and $F$ the Laplace CDF
($F(z) = \tfrac12 e^{z}$ for $z < 0$, $1 - \tfrac12 e^{-z}$ otherwise), SoftSAE weighs each unit by

$$
p_j = F\!\left(\frac{a_j - t}{\alpha}\right), \qquad \text{with } t \text{ such that } \sum_{j=1}^N p_j = \hat k,
\qquad \mathbf{z} = \mathbf{a} \odot \mathbf{p}.
$$

The sum decreases in $t$, so $t$ is found by bisection for all inputs at once (`sparsity.soft_threshold`),
then one Newton step is taken *with* autograd on. At the root, that step's derivative is the
implicit-function gradient, e.g.
$\partial t / \partial \hat k = -\alpha \big/ \sum_j F'\big((a_j - t)/\alpha\big)$, so the reconstruction
loss reaches $\hat k$ through $\mathbf{p}$.

The budget head is $\hat k(\mathbf{x}) = 1 + (k_\max - 1)\,\sigma(\mathbf{w}^\top \mathbf{s} + c)$, where
$\mathbf{s}$ holds the input's $k_\max$ largest activations in decreasing order (its activation profile).
The loss adds a soft ceiling on the mean budget,

$$
\mathcal{L} = \mathrm{FVU} + \alpha_\text{aux} \mathcal{L}_\text{AuxK} + \beta\, \operatorname{softplus}\big(\tfrac1B \textstyle\sum_b \hat k_b - k\big),
$$

and the last 20 % of training, like inference, keeps the hard top-$\lfloor \hat k \rfloor$ (the soft
weights still carry the gradient to $\hat k$).

## BatchTopK

BatchTopK keeps the $B \cdot k$ largest activations of the whole batch, so inputs share the budget.
At inference a code must not depend on its batch: every activation above a global threshold $\theta$ is
kept. We estimate $\theta$ as in {cite:t}`bussmann2024batchtopk`, from the smallest activation kept in
each training batch, as an exponential moving average (momentum 0.99) stored in the SAE's state."""),
    ("code", SETUP),
    ("md", """## The soft weights (the slider)

The weights $p_j$ of one input's sorted activations, for three budgets; the slider walks the
temperature α. A small α gives a near-hard top-k; a large one spreads the budget over many units.
The weights always sum to $\\hat k$."""),
    ("code", """import numpy as np

acts = np.sort(np.random.default_rng(0).gamma(1.0, 0.3, size=64))[::-1]
weights = plots.soft_weight_rows(acts, k_hats=(4, 8.5, 16), temperatures=(0.005, 0.02, 0.05, 0.1, 0.3))
print({a: round(sum(r["p"] for r in weights if r["temperature"] == a and r["method"] == "k_hat = 8.5"), 4)
       for a in (0.005, 0.05, 0.3)})
widgets.explore(weights, x="rank", y="p", slider="temperature", title="soft top-k weights")"""),
    ("md", """## Does the budget follow the data?

We train Top-k, Top-k + ratio (chapter 3), SoftSAE and BatchTopK at k = 16 on the planted data
(SoftSAE: $k_\\max$ = 32, α = 0.05, β = 0.1). `budget_rank_corr` is Spearman's ρ between an input's
budget (SoftSAE's $\\hat k$; the others' L0) and its true number of active atoms, on the test split."""),
    ("code", """rows = grids.adaptive()
measures = ["budget_rank_corr", "l0_rank_corr", "l0", "r2", "ms_mean", "purity_mean", "dead"]
pd.DataFrame(summarize(rows, measures, by=("method", "k"))).round(3)"""),
    ("code", """from sae_lite import metrics, runs
from sae_lite.experiments import load_split

first = {r["method"]: runs.load_run(r["path"]) for r in rows if r["seed"] == profile.seeds[0]}
test = load_split(first["softsae"].data)[1]
plots.budget_vs_truth({name: metrics.budgets(first[name].sae, test.x).numpy()
                       for name in ("softsae", "baseline", "batchtopk")}, test.n_active);"""),
    ("md", """Top-k's L0 is flat at k by construction. BatchTopK's L0 varies with the input (its threshold
keeps more units where activations are large). SoftSAE's $\\hat k$ is what the head chose."""),
    ("md", """## What the paper claims / what we measured: the budget"""),
    ("code", """claims.show(claims.evaluate_claims(rows, [claims.EXTENSION_CLAIMS["softsae_budget"]]))"""),
    ("md", """## At matched mean L0

SoftSAE's mean L0 lands below the target k (the softplus ceiling always pushes down, and the hard
phase keeps $\\lfloor\\hat k\\rfloor$). A fair comparison gives Top-k the same budget: we train Top-k
and Top-k + ratio at k = the SoftSAE's mean L0 (rounded), and compare R², monosemanticity and purity."""),
    ("code", """same_l0 = grids.matched(rows)
print("matched k =", grids.matched_k(rows))
pd.DataFrame(summarize(same_l0, ["l0", "r2", "ms_mean", "purity_mean", "dead"], by=("method", "train_k"))).round(3)"""),
    ("code", """plots.bars(same_l0, ["l0", "r2", "ms_mean", "purity_mean"], title="at matched mean L0");"""),
    ("code", """claims.show(claims.evaluate_claims(same_l0, [claims.EXTENSION_CLAIMS["softsae_matched"],
                                             claims.EXTENSION_CLAIMS["softsae_matched_interpretability"]]))"""),
    ("md", """## BatchTopK in the k' and probing comparisons

The comparisons of chapters 5 and 6 with BatchTopK and SoftSAE added: R² when the SAE runs at an
inference budget k' (per-input Top-k'), and the accuracy of a linear probe on the top-m codes."""),
    ("code", """fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
plots.band(plots.long(rows, "r2_x", "k_factor", "r2_at_k"), "k_factor", "r2_at_k", ax=axes[0], logx=True,
           title="R² at inference k' (trained at k = 16)")
if "probe_m1" in rows[0]:
    plots.band(plots.long(rows, "probe_m", "m", "probe"), "m", "probe", ax=axes[1], logx=True,
               title="probe accuracy on the top-m codes")
fig.tight_layout()
table = pd.DataFrame(summarize(rows, [c for c in rows[0] if c.startswith(("r2_x", "probe_m"))], by=("method",)))
table.round(3)"""),
    ("md", LEAD_IN),
    ("code", """from IPython.display import Markdown

from sae_lite import findings

display(Markdown(findings.adaptive_findings(rows, same_l0)))"""),
    ("md", """## Exercises"""),
    ("md", exercise(1, "easy", 5, "Check that the soft weights sum to $\\hat k$ and that their gradient "
                    "with respect to $\\hat k$ is positive.",
                    "```python\nimport torch\nfrom sae_lite import sparsity\n"
                    "a = torch.rand(2, 50, dtype=torch.double)\nk = torch.tensor([5.5, 12.0], dtype=torch.double, requires_grad=True)\n"
                    "sel = sparsity.soft(a, k, temperature=0.05)\n"
                    "t = sparsity.soft_threshold(a, k, 0.05)\nprint(sparsity.laplace_cdf((a - t[:, None]) / 0.05).sum(1))\n"
                    "sel.codes.sum().backward(); print(k.grad)\n```")),
    ("md", exercise(2, "medium", 10, "Why does BatchTopK's L0 track the number of active atoms better than Top-k's?",
                    "Its inference rule is a single threshold on ReLU(pre): an input with many active atoms has "
                    "many large pre-activations and crosses it more often. Top-k keeps k whatever the input.")),
    ("md", exercise(3, "hard", 20, "Lower the budget ceiling's weight (`soft_target_weight=0.01`) and retrain the "
                    "first seed. What happens to the mean L0, R², and ρ?",
                    "```python\nfrom sae_lite.experiments import METHODS, cached_run, planted_spec\n"
                    "cfg = METHODS['softsae'].config(grids.K, soft_target_weight=0.01)\n"
                    "run = cached_run(cfg, planted_spec())\n"
                    "{m: run.metrics[m] for m in ('l0', 'r2', 'budget_rank_corr')}\n```\nWith a weaker ceiling "
                    "the head spends more budget (higher L0 and R²), so compare at matched L0 again.")),
    ("md", """## Summary

- SoftSAE weighs units by a Laplace CDF around a threshold solved per input, so the code is
  differentiable in the budget $\\hat k(\\mathbf{x})$; inference keeps the hard top-$\\lfloor\\hat k\\rfloor$.
- BatchTopK shares a budget of $B \\cdot k$ across the batch and uses a learned global threshold at inference.
- On planted data we measured how well each per-input budget tracks the true number of atoms, and
  compared the rules at the same mean L0; the boxes give the verdicts with their seeds."""),
]


if __name__ == "__main__":
    for name, cells in CHAPTERS.items():
        write(name, cells)
        print("wrote", name)
