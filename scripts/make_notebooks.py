"""Write the book's chapters 0-6 (notebooks/*.ipynb, without outputs) from the cells below.

The notebooks are the source the book and nbmake run; this script is how they were written and a
convenient way to edit them in bulk: ``python scripts/make_notebooks.py`` overwrites them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from sae_lite.grids import K

ROOT = Path(__file__).resolve().parent.parent

SETUP = """\
%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from sae_lite import claims, grids, plots, widgets
from sae_lite.experiments import active_profile, summarize

profile = active_profile()
print(f"profile {profile.name}: {profile.steps} steps, seeds {profile.seeds}, data {grids.data_name()!r}")"""


def objectives(*items: str) -> str:
    return ":::{admonition} Learning objectives\n:class: tip\n\n" + "\n".join(f"- {i}" for i in items) + "\n:::"


def exercise(number: int, level: str, minutes: int, question: str, solution: str) -> str:
    return (f"**Exercise {number}** ({level}, about {minutes} min). {question}\n\n"
            f":::{{admonition}} Solution\n:class: dropdown\n\n{solution}\n:::")


CHAPTERS: dict[str, list[tuple[str, str]]] = {}

CHAPTERS["00_setup_and_data"] = [
    ("md", """# 0. Setup and data

A sparse autoencoder (SAE) rewrites an embedding as a sparse combination of many learned directions,
hoping that each direction means one thing. This chapter sets up the data every later chapter trains on."""),
    ("md", objectives("say what an SAE is for and why its features can be checked against ground truth",
                      "describe the planted-feature data, scikit-learn digits and the real embeddings",
                      "choose the profile (how much compute) and the data (planted, digits or your embeddings) with one setting each")),
    ("md", r"""## Why sparse autoencoders

A vision model packs more concepts than it has dimensions into its embeddings: features live in
*superposition*, as nearly orthogonal directions that overlap {cite:p}`elhage2022toy`. An SAE with
$N \gg d$ latents tries to undo this. With pre-bias $b_\text{pre}$, encoder $W_\text{enc}$ and unit-norm
decoder atoms (the rows of $W_\text{dec}$),

$$
\mathbf{a} = \operatorname{ReLU}\big(W_\text{enc}(\mathbf{x} - b_\text{pre}) + b_\text{enc}\big), \qquad
\mathbf{z} = \operatorname{TopK}_k(\mathbf{a}), \qquad
\hat{\mathbf{x}} = W_\text{dec}^\top \mathbf{z} + b_\text{pre},
$$

where $\operatorname{TopK}_k$ keeps the $k$ largest activations of each input and zeroes the rest
{cite:p}`gao2024scaling`. Chapters 2-4 add sparsity penalties on $\mathbf{a}$ *before* the selection
{cite:p}`jacquier2026beyond`."""),
    ("code", SETUP),
    ("md", """## Profiles: how much compute

One environment variable, `SAE_LITE_PROFILE`, scales every chapter: `quick` (what the tests run: one
seed, 600 steps), `default` (the book: three seeds, 3000 steps) and `paper` (a GPU). Results are
cached on disk by a hash of their configuration and of the code, so a rebuild retrains nothing
that has not changed, and a changed setting never reuses a stale result."""),
    ("md", """## Planted features: data with ground truth

On real embeddings nobody knows the true features. The planted data set builds each input from
known unit *atoms* (more atoms than dimensions, so they overlap), with a class whose own atoms fire
often and a variable number of background atoms. Because the atoms and the codes are known,
chapter 1 can check whether a latent found a real feature."""),
    ("code", """from sae_lite.data import digits, planted

data = planted(n=profile.n_planted)
print(f"x {data.x.shape}, atoms {data.atoms.shape}, {len(set(data.labels))} classes")
plots.data_overview(data);"""),
    ("md", """The left panel shows why a fixed budget $k$ is a compromise: some inputs carry 2 atoms, some
more than 15. The middle panel shows the overlap of the atoms (superposition): no pair is orthogonal."""),
    ("md", """## scikit-learn digits

A second, real but tiny data set: 1797 handwritten 8×8 digits, each pixel standardised. Its
inputs can be drawn, which makes the top-activating inputs of a latent easy to look at."""),
    ("code", """images = digits()
plots.gallery(images.ref[:20], [f"label {y}" for y in images.labels[:20]]);"""),
    ("md", """## Real images through a real backbone

The third data set is what the book is for: Fashion-MNIST garments {cite:p}`xiao2017fashion`
embedded by a pretrained EfficientNet-Lite0 {cite:p}`tan2019efficientnet` (d = 1280), both installed
offline (the README says how). It is named `fashion-mnist`; the first use embeds a class-balanced
subset, sized by the profile, into a store in the results cache, and later uses read it. Chapters 1-6
show their result on it next to the planted one, and chapter 10 is about it. The store keeps the
images, so a latent can be shown as the images that activate it most."""),
    ("md", """## Your own embeddings: one setting

Every chapter trains on `grids.data_name()`, which reads the environment variable `SAE_LITE_DATA`
(`planted` unless set; `digits` and `fashion-mnist` are the other names). To run the whole book on
your own embeddings, write them once as an embedding store (a directory with `embeddings.npy`,
optional `labels.npy` and `images.npy`, `meta.json`) and point the setting at it before starting
Jupyter or the book build:

```bash
python -m sae_lite embed --backbone clip-vit-l-14 --images DIR --out store/   # or data.write_store
SAE_LITE_DATA=$PWD/store jupyter lab
SAE_LITE_DATA=fashion-mnist jupyter lab      # every chapter on the real embeddings
```

Metrics that need ground truth (feature recovery) are skipped on data without planted atoms. Here is
a store written from the digits and read back:"""),
    ("code", """import tempfile
from sae_lite.data import load_store, write_store

with tempfile.TemporaryDirectory() as folder:
    write_store(f"{folder}/store", images.x, images.labels, {"source": "sklearn digits"})
    store = load_store(f"{folder}/store")
    print(store.name, store.x.shape, store.meta["source"] if store.meta else "")"""),
    ("md", """## Exercises"""),
    ("md", exercise(1, "easy", 5, "On the planted data, what share of inputs carries more than 16 active atoms? "
                    "What does that mean for a Top-k SAE trained with k = 16?",
                    "`(data.n_active > 16).mean()` gives the share. Those inputs cannot be reconstructed "
                    "exactly with 16 latents even by a perfect dictionary: the budget is too small for them, "
                    "while it is too large for the inputs with 2 atoms.")),
    ("md", exercise(2, "medium", 10, "Make the atoms more overlapping (`planted(d=32, n_atoms=192)`) and redraw "
                    "`plots.data_overview`. What changes in the middle panel, and why should it make the SAE's job harder?",
                    "The |cosine| distribution shifts right: in 32 dimensions 192 random directions overlap more. "
                    "Interference between atoms grows, so an encoder confuses them more often.")),
    ("md", exercise(3, "easy", 5, "Write the planted data to an embedding store and load it back; "
                    "check that `x` is unchanged.",
                    "```python\nwrite_store('store', data.x, data.labels)\nassert (load_store('store').x == data.x).all()\n```")),
    ("md", """## Summary

- An SAE rewrites an embedding as a sparse code over $N \\gg d$ learned atoms; Top-k fixes the number of active latents.
- Planted data has known atoms and codes, so recovery can be measured; digits are small and drawable; Fashion-MNIST through EfficientNet-Lite0 is real.
- `SAE_LITE_PROFILE` picks the compute, `SAE_LITE_DATA` the data; results are cached by configuration."""),
]

CHAPTERS["01_topk_baseline"] = [
    ("md", """# 1. The Top-k baseline

Every later chapter compares against this model: a Top-k SAE with AuxK {cite:p}`gao2024scaling`."""),
    ("md", objectives("train (or load) Top-k SAEs over a grid of training budgets k and seeds",
                      "read reconstruction (R²), L0, dead latents, feature recovery, monosemanticity and class purity",
                      "look inside latents: their top-activating inputs and their atoms against the planted ones")),
    ("md", r"""## The objective and the metrics

Training minimises the batch's fraction of variance unexplained plus the AuxK term, which lets dead
latents (those that have not fired for a while) reconstruct the residual and so come back:

$$
\mathcal{L} = \frac{\sum_b \lVert \mathbf{x}_b - \hat{\mathbf{x}}_b \rVert^2}{\sum_b \lVert \mathbf{x}_b - \bar{\mathbf{x}} \rVert^2}
 + \alpha\, \mathcal{L}_\text{AuxK}.
$$

On the held-out split we measure $R^2$ (per dimension, averaged), L0 (active latents per input),
dead latents (never fire), the recovery of planted atoms (best cosine), the **monosemanticity score**
of each latent {cite:p}`pach2025sparse` (the activation-weighted mean similarity between the inputs
it fires on),

$$
\mathrm{MS}_j = \frac{\lVert \sum_n \tilde a_{nj} \mathbf{p}_n \rVert^2 - \sum_n \tilde a_{nj}^2}{(\sum_n \tilde a_{nj})^2 - \sum_n \tilde a_{nj}^2},
$$

with $\tilde a$ the min-max normalised activations and $\mathbf{p}_n$ a unit reference embedding, and
**class purity** (the share of its firing on its most frequent class)."""),
    ("code", SETUP),
    ("code", """baseline = grids.baseline()
metrics = ["r2", "l0", "dead", "recovery_mmcs", "ms_mean", "purity_mean"]
table = pd.DataFrame(summarize(baseline, [m for m in metrics if m in baseline[0]], by=("method", "k")))
table.round(3)"""),
    ("code", """fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
plots.band(baseline, "k", "r2", ax=axes[0])
plots.band(baseline, "k", "ms_mean", ax=axes[1])
plots.band(baseline, "k", "purity_mean", ax=axes[2])
fig.tight_layout()"""),
    ("md", """A larger budget reconstructs better. The interpretability scores tell the other side of the
trade-off that the regularizers of chapters 2-3 target."""),
    ("md", """## Training over time (the slider)

The key figure of every chapter comes with a slider over a precomputed grid: above, a figure whose
slider works in the static book; below it, under a live kernel, the same figure with ipywidgets.
Here the slider walks the training budget k and the figure shows the reconstruction error during training."""),
    ("code", """widgets.explore(plots.history_rows(baseline), x="step", y="fvu", slider="k",
                title="baseline: training FVU")"""),
    ("md", f"""## Inside a few latents

We load the k = {K} baseline of the first seed and look at four of its latents that fire often. On
planted data each row shows, left, the ground-truth codes of the latent's 12 top-activating test inputs
(one bright column: they share a planted atom) and, right, the cosine of the latent's decoder atom
with every planted atom (one tall peak: it learned that atom). On images (digits, or the real data
below) each row shows the latent's top-activating images instead."""),
    ("code", """from sae_lite import metrics, runs
from sae_lite.experiments import load_split

first = next(r for r in baseline if r["k"] == grids.K and r["seed"] == profile.seeds[0])
run = runs.load_run(first["path"])
test = load_split(run.data)[1]
codes, _ = metrics.encode_all(run.sae, test.x)
frequent = codes.ne(0).sum(0).argsort(descending=True)[:4].tolist()
if test.atoms is not None:       # planted data: the ground truth
    plots.latent_cards(codes.numpy(), run.sae.W_dec.detach().numpy(), test, frequent)
    plots.atom_match(run.sae.W_dec.detach().numpy(), test.atoms, title=f"baseline, k = {grids.K}")
else:                            # digits, real images: the images themselves
    plots.latent_images(test.images, codes.numpy(), frequent, labels=test.labels, classes=test.meta.get("classes"))"""),
    ("md", f"""## Real images: what a latent looks like

Planted atoms are a lab. On real images a latent is read by looking at the images that activate it
most. Here Fashion-MNIST garments are embedded by a pretrained EfficientNet-Lite0 (chapter 10 says
how, and sizes the runs); for the first seed's k = {K} baseline and L1/L2 ratio, six latents drawn at
random among the live ones, each with its eight top test images, best first. A row's title names its
most frequent class and how many of the eight images belong to it."""),
    ("code", """from sae_lite import catalog, diagnostics

real = grids.real(("baseline", "ratio"), seeds=profile.seeds[:1])
real_test = load_split(grids.real_spec())[1]
real_codes = {r["method"]: metrics.encode_all(runs.load_run(r["path"]).sae, real_test.x)[0].numpy() for r in real}
plots.compare_latent_images(
    real_test.images, {name: (c, diagnostics.sample_latents(c, 6, seed=0)) for name, c in real_codes.items()},
    n=8, labels=real_test.labels, classes=real_test.meta["classes"]);"""),
    ("md", """## What the paper claims / what we measured

The baseline is the control of every claim in chapters 2-6; it makes no claim of its own here. The
table below gives its numbers (mean ± std over the seeds of the profile) that the later boxes compare with."""),
    ("code", """base_k = [r for r in baseline if r["k"] == grids.K]
summary = summarize(base_k, ["r2", "l0", "dead", "ms_mean", "purity_mean"], by=("method", "k"))[0]
claims.show_measured(summary, f"Top-k baseline at k = {grids.K}")"""),
    ("md", """## Exercises"""),
    ("md", exercise(1, "easy", 5, "Why is the measured L0 slightly below k?",
                    "Top-k keeps the k largest *activations*, which are ReLU outputs: when fewer than k "
                    "pre-activations are positive, some kept entries are 0 and do not count as active.")),
    ("md", exercise(2, "medium", 10, "Pick a latent whose best cosine with a planted atom is low. "
                    "What do its top inputs have in common?",
                    "Use `plots.latent_cards` on that latent. Often its top inputs share a *class* "
                    "(several class atoms at once) rather than one atom: the latent learned a mixture, "
                    "which is what a low monosemanticity score flags.")),
    ("md", exercise(3, "medium", 10, "Train a baseline without AuxK (`TrainConfig(k=16, auxk=False)`) and compare its dead latents.",
                    "```python\nfrom sae_lite.experiments import cached_run, planted_spec\nfrom sae_lite.train import TrainConfig\n"
                    "run = cached_run(TrainConfig(k=16, auxk=False, steps=profile.steps), planted_spec())\nrun.metrics['dead']\n```\n"
                    "Chapter 4 does this systematically.")),
    ("md", """## Summary

- The Top-k SAE fixes the budget k; R² grows with k.
- Monosemanticity and class purity measure whether a latent means one thing; planted data lets us check atoms directly.
- Every figure with a slider walks a precomputed grid; nothing trains when it moves."""),
]


def penalty_chapter(number: int, name: str, title: str, key: str, math: str, idea: str, extra: list) -> list:
    label = {"offsupport": "off-support L1", "ratio": "L1/L2 ratio"}[key]
    return [
        ("md", f"# {number}. {title}\n\n{idea}"),
        ("md", objectives(f"write the {label} penalty and the batch-active mask",
                          f"read a sweep of the penalty weight and the rule that chose it",
                          f"compare the {label} with the baseline on reconstruction, monosemanticity, purity and dead latents")),
        ("md", math),
        ("code", SETUP),
        *extra,
        ("md", f"""## The weight sweep and the rule

The weight $\\lambda$ is chosen by one rule, on the first seed at k = {K}: the largest weight of
the sweep whose test R² (variance-weighted: 1 − FVU, the measure the loss minimises) stays within
0.005 of the baseline's (no reconstruction cost). Every
chapter uses the weight this rule picks for the active profile and data (`grids.weights`), so the
number below is the one the rest of the book trains with. The grey band is the tolerance."""),
        ("code", f"""from sae_lite.experiments import rule_weight

sweep = grids.sweep("{key}")
plots.sweep(sweep, ["r2_vw", "ms_mean", "purity_mean", "dead"], tolerance=claims.TOLERANCE);
print(f"the rule picks {{rule_weight(sweep)}} on this sweep; every chapter uses {{grids.weights()['{key}']}}")"""),
        ("md", """## Across weights (the slider)

The slider walks the penalty weight; the figure shows the R² when the SAE is run with an inference
budget k' different from the training k (chapter 5 returns to this), baseline against penalty."""),
        ("code", f"""penalised = [r for r in sweep if r["method"] == "{key}"]
reference = [r for r in sweep if r["method"] == "baseline"]
walk = plots.long(grids.with_reference(penalised, reference, "weight"), "r2_x", "k_factor", "r2_at_k")
widgets.explore(walk, x="k_factor", y="r2_at_k", slider="weight", logx=True,
                title="R² at inference k' (first seed)")"""),
        ("md", f"""## Baseline against the {label}, all seeds

At the chosen weight and k = {K}, mean ± std over the seeds of the profile."""),
        ("code", f"""rows = grids.pair("{key}")
plots.bars(rows, ["r2", "ms_mean", "purity_mean", "dead"]);"""),
        ("md", f"""## What the paper claims / what we measured

{{cite:t}}`jacquier2026beyond` report that the {label} improves monosemanticity at no cost to
reconstruction. Our verdict, on our data, by the rule of `sae_lite.claims` (two standard errors;
every part of the claim must hold):"""),
        ("code", f"""from dataclasses import replace

claim = replace(claims.CLAIMS["interpretability"], pairs=(("{key}", "baseline"),))
claims.show(claims.evaluate_claims(rows, [claim]))"""),
        ("md", f"""### On real embeddings

The same claim on Fashion-MNIST embedded by a pretrained EfficientNet-Lite0 (chapter 10 shows the
images and the latents), with the {label} at the weight the rule picks there:"""),
        ("code", f"""real = grids.real(("baseline", "{key}"))
claims.show(claims.evaluate_claims(real, [claim]))"""),
    ]


CHAPTERS["02_off_support_l1"] = penalty_chapter(
    2, "off_support", "Off-support L1", "offsupport",
    r"""## The penalty

Top-k throws away every activation outside the $k$ it keeps, so nothing stops the encoder from
producing many large activations that are then discarded. The off-support L1 penalises exactly those,
*before* selection. With $s_{bj} = 1$ when latent $j$ is kept for input $b$, and the **batch-active set**
$A = \{j : \exists b,\ s_{bj} = 1\}$,

$$
P_\text{off} = \frac{1}{B} \sum_{b=1}^{B} \sum_{j \in A} (1 - s_{bj})\, a_{bj},
\qquad \mathcal{L} = \mathrm{FVU} + \lambda P_\text{off} + \alpha\, \mathcal{L}_\text{AuxK}.
$$

Restricting to $A$ (the mask) leaves latents that no input selected alone: penalising them too
would push them further down until they die (chapter 4).""",
    "The first regularizer of {cite:t}`jacquier2026beyond`: penalise what Top-k discards.",
    [])

CHAPTERS["03_l1_l2_ratio"] = penalty_chapter(
    3, "ratio", "The L1/L2 ratio", "ratio",
    r"""## The penalty

For a vector $\mathbf{v}$ with $n$ non-zero entries, $1 \le \lVert\mathbf{v}\rVert_1 / \lVert\mathbf{v}\rVert_2 \le \sqrt{n}$:
the ratio is 1 when one entry carries everything and $\sqrt{n}$ when all are equal, so it counts the
*effective* number of active units. Unlike the L1 norm it does not change when the code is scaled,
so the encoder cannot lower it by shrinking every activation. On the batch-active units,

$$
P_\text{ratio} = \frac{1}{B} \sum_{b=1}^{B} \frac{\lVert \mathbf{a}_{b,A} \rVert_1}{\lVert \mathbf{a}_{b,A} \rVert_2 + \varepsilon},
\qquad \mathcal{L} = \mathrm{FVU} + \lambda P_\text{ratio} + \alpha\, \mathcal{L}_\text{AuxK}.
$$""",
    "The second regularizer of {cite:t}`jacquier2026beyond`: concentrate each code on fewer effective units.",
    [("md", """## Scale invariance, checked

The penalty of `sae_lite.penalties` on random activations, and on the same activations times 10:"""),
     ("code", """import torch
from sae_lite import penalties

acts = torch.rand(4, 64)
support = acts >= acts.topk(8, dim=1).values[:, -1:]
print(float(penalties.l1_l2_ratio(acts, support)), float(penalties.l1_l2_ratio(10 * acts, support)))
print(float(penalties.off_support_l1(acts, support)), float(penalties.off_support_l1(10 * acts, support)))"""),
     ("md", """The ratio does not move; the off-support L1 grows tenfold. That is why the ratio cannot be
satisfied by shrinking the code and instead concentrates it on fewer units.""")])

CHAPTERS["04_mask_ablation"] = [
    ("md", """# 4. The mask ablation

Both penalties act only on the batch-active units. This chapter removes that mask, with and
without AuxK, and watches the latents die over training {cite:p}`jacquier2026beyond`."""),
    ("md", objectives("explain why an unmasked penalty kills latents",
                      "read dead latents over training time", "separate the effect of the mask from that of AuxK")),
    ("md", r"""## Why the mask matters

Without the mask the sums run over all $N$ latents. A latent that no input selects still gets a
gradient from the penalty that lowers its activations, and none from the reconstruction, so it sinks
until it never fires: it is **dead**. AuxK {cite:p}`gao2024scaling` fights this by letting dead
latents reconstruct the residual; with AuxK off, only the mask protects them. We count a latent dead
during training once it has not fired for 10,000 training inputs, and at evaluation when it never
fires on the test split."""),
    ("code", SETUP),
    ("code", """rows = grids.mask()
table = pd.DataFrame(summarize(rows, ["dead", "r2", "ms_mean"], by=("variant", "auxk")))
table.round(3)"""),
    ("code", """with_aux = [r for r in rows if r["auxk"]]
without_aux = [r for r in rows if not r["auxk"]]
fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
plots.history(with_aux, "dead", by="variant", ax=axes[0], title="with AuxK")
plots.history(without_aux, "dead", by="variant", ax=axes[1], title="without AuxK")
fig.tight_layout()"""),
    ("md", """## With and without AuxK (the slider)

The slider switches AuxK on and off; the figure shows dead latents over training for each variant."""),
    ("code", """widgets.explore(plots.history_rows(rows, keep=("variant",)), x="step", y="dead", slider="auxk", color="variant",
                title="dead latents during training")"""),
    ("md", """## What the paper claims / what we measured

The claim: without the batch-active mask, the penalties leave more dead latents than with it."""),
    ("code", """claims.show(claims.evaluate_claims(rows, [claims.CLAIMS["mask"]]))"""),
    ("md", """## Exercises"""),
    ("md", exercise(1, "easy", 5, "Which of the two penalties suffers more without the mask, and why?",
                    "Read the table: the off-support L1 is not scale invariant, so it keeps pushing unselected "
                    "latents towards 0; the ratio's gradient on a unit shrinks with the unit's share of the norm.")),
    ("md", exercise(2, "medium", 10, "Does AuxK fully repair the unmasked penalty? Compare the two panels.",
                    "Compare the `dead` means of `*, no mask` with and without AuxK in the table: AuxK revives "
                    "some latents, but if the count stays above the masked variants, the mask is still needed.")),
    ("md", exercise(3, "hard", 20, "Raise the weight of the unmasked off-support L1 tenfold and predict, then measure, the dead count.",
                    "```python\nfrom dataclasses import replace\nfrom sae_lite.experiments import METHODS, run_grid\n"
                    "m = replace(METHODS['offsupport-nomask'], weight=0.1)\nrun_grid(grids.data_name(), [m], [16])[0]['dead']\n```")),
    ("md", """## Summary

- The mask keeps the penalty off the latents no input selected in the batch.
- Without it, latents die during training; AuxK hides part of the damage.
- The dead count over training time shows when it happens, not only how much."""),
]

CHAPTERS["05_inference_k"] = [
    ("md", """# 5. Robustness to the inference-time k

A Top-k SAE is trained with one budget k but may be run with another, k', to get a shorter or a
more faithful explanation. Top-k tends to overfit to its training k {cite:p}`gao2024scaling`; the L1/L2
ratio is claimed to make the SAE more robust to k' {cite:p}`jacquier2026beyond`."""),
    ("md", objectives("run a trained SAE at another budget k'", "read R² against k'/k per method",
                      "judge the robustness claim with its standard errors")),
    ("md", r"""## The experiment

For an SAE trained at $k$ we keep the top $k'$ activations at inference, for
$k' \in \{k/4,\ k/2,\ k,\ 2k,\ 4k\}$, and measure $R^2(k')$ on the test split, variance-weighted
($1 - \mathrm{FVU}$: chapter 10 shows why the uniform average of per-dimension $R^2$ misleads on real
embeddings). An SAE robust to $k'$ loses little below $k$ and keeps gaining (or at least does not
lose) above it."""),
    ("code", SETUP),
    ("code", """rows = grids.core()
walk = plots.long(rows, "r2_x", "k_factor", "r2_at_k")
fig, axes = plt.subplots(1, len(grids.ks()), figsize=(4.5 * len(grids.ks()), 3.6), sharey=True)
for ax, k in zip(axes, grids.ks()):
    plots.band([r for r in walk if r["k"] == k], "k_factor", "r2_at_k", ax=ax, logx=True, title=f"trained at k = {k}")
fig.tight_layout()"""),
    ("md", """## Across training budgets (the slider)

The slider walks the training budget k; the x axis is the inference budget as a multiple of it."""),
    ("code", """widgets.explore(walk, x="k_factor", y="r2_at_k", slider="k", logx=True, title="R² at inference k'")"""),
    ("md", """The same grid sliced the other way: the slider walks the inference budget k'/k, the x axis the
training k. A method robust to k' keeps its curve close to the k'/k = 1 curve."""),
    ("code", """widgets.explore(walk, x="k", y="r2_at_k", slider="k_factor", logx=True, title="R² against the training k")"""),
    ("md", """## What the paper claims / what we measured"""),
    ("code", """claims.show(claims.evaluate_claims(rows, [claims.CLAIMS["inference_k"]]))"""),
    ("md", """Where a part goes against the claim, chapter 6 shows a likely cause: a latent that carries the
largest code of almost every input leaves little for a small budget k' to reconstruct with.

### On real embeddings

The same claim on Fashion-MNIST through EfficientNet-Lite0 (chapter 10), trained at k = 16:"""),
    ("code", """real = grids.real(("baseline", "ratio"))
plots.band(plots.long(real, "r2_x", "k_factor", "r2_at_k"),
           "k_factor", "r2_at_k", logx=True, title=f"real embeddings, trained at k = {grids.K}")
claims.show(claims.evaluate_claims(real, [claims.CLAIMS["inference_k"]]))"""),
    ("md", """## Exercises"""),
    ("md", exercise(1, "easy", 5, "Why can R² *fall* when k' grows beyond k?",
                    "The decoder was trained on codes with k entries. Extra activations that training always "
                    "discarded were never fitted to reconstruct anything, so adding them adds error.")),
    ("md", exercise(2, "medium", 10, "Compute, per method, the R² lost between k' = k and k' = k/2.",
                    "```python\ntable = summarize(rows, ['r2_x1', 'r2_x0.5'], by=('method', 'k'))\n"
                    "[(t['method'], t['k'], t['r2_x1_mean'] - t['r2_x0.5_mean']) for t in table]\n```")),
    ("md", """## Summary

- Running an SAE at k' ≠ k is free; how much R² it costs depends on the training.
- The claim of robustness is judged part by part (each k'/k and each training k)."""),
]

CHAPTERS["06_small_budget_probing"] = [
    ("md", """# 6. Small-budget linear probing

If the codes are concentrated, a few of their largest entries should already say what an input is.
We train a linear probe that sees only the top-m activations of each input {cite:p}`jacquier2026beyond`."""),
    ("md", objectives("truncate codes to their top-m entries", "read probe accuracy against m per method",
                      "judge the small-budget probing claim")),
    ("md", r"""## The experiment

For each input we keep the $m$ largest-magnitude codes, $\mathbf{z}^{(m)} = \operatorname{TopK}_m(\mathbf{z})$,
and fit a multinomial logistic regression on the training split's $\mathbf{z}^{(m)}$ to predict the
class; we report its accuracy on the test split for $m \in \{1, 2, 4, 8\}$ ($m \le k$)."""),
    ("code", SETUP),
    ("code", """rows = grids.core()
walk = plots.long(rows, "probe_m", "m", "probe")
plots.band([r for r in walk if r["k"] == grids.K], "m", "probe", logx=True, title=f"trained at k = {grids.K}");"""),
    ("md", """## Across training budgets (the slider)"""),
    ("code", """widgets.explore(walk, x="m", y="probe", slider="k", logx=True, title="probe accuracy, top-m codes")"""),
    ("md", """## What the paper claims / what we measured"""),
    ("code", """claims.show(claims.evaluate_claims(rows, [claims.CLAIMS["probing"]]))"""),
    ("md", """### On real embeddings

The same claim on Fashion-MNIST through EfficientNet-Lite0 (chapter 10), where the classes are
the ten garments:"""),
    ("code", """real = grids.real(("baseline", "ratio"))
plots.band(plots.long(real, "probe_m", "m", "probe"),
           "m", "probe", logx=True, title=f"real embeddings, trained at k = {grids.K}")
claims.show(claims.evaluate_claims(real, [claims.CLAIMS["probing"]]))"""),
    ("md", """## Why a part can fail: one latent on top of every input

A top-1 probe can only be as good as the latent that holds each input's largest code. If one
dense latent holds it for almost every input, the probe sees one feature for all classes and falls
towards chance. `diagnostics.top_latent_share` measures this on the first seed: the share of test
inputs whose largest code sits on the most common such latent, and how many latents ever hold it.
Compare its rows with the parts of the box above that go against the claim."""),
    ("code", """from sae_lite import diagnostics

first = diagnostics.top_latent_share([r for r in rows if r["seed"] == profile.seeds[0]])
pd.DataFrame(first)[["method", "k", "top1_share", "top1_distinct", "probe_m1"]].round(3)"""),
    ("md", """## Exercises"""),
    ("md", exercise(1, "easy", 5, "What accuracy would a probe reach by chance on this data?",
                    "With balanced classes, one over the number of classes: "
                    "`1 / len(set(test.labels))` (with `test` as in exercise 2), 1/8 for `planted()` "
                    "with its default 8 classes.")),
    ("md", exercise(2, "medium", 15, "Repeat the probe on the raw inputs (no SAE) with `sklearn`. "
                    "How many SAE codes does it take to match it?",
                    "```python\nfrom sklearn.linear_model import LogisticRegression\nfrom sae_lite import runs\n"
                    "from sae_lite.experiments import load_split\n\n"
                    "train, test = load_split(runs.load_run(rows[0]['path']).data)\n"
                    "raw = LogisticRegression(max_iter=1000).fit(train.x, train.labels).score(test.x, test.labels)\n"
                    "[(r['method'], r['k'], m, r[f'probe_m{m}']) for r in rows for m in (1, 2, 4, 8) if f'probe_m{m}' in r]\n```\n"
                    "Compare each `probe_m{m}` with `raw`: the smallest m that reaches it is the answer "
                    "(it may not exist: the codes lose some information).")),
    ("md", """## Summary

- A top-m probe asks how much of the class sits in the largest few codes.
- The claim is judged at m = 1, 2, 4 with two standard errors."""),
]

# chapters 2 and 3 end like the others
for name, key in (("02_off_support_l1", "offsupport"), ("03_l1_l2_ratio", "ratio")):
    label = {"offsupport": "off-support L1", "ratio": "L1/L2 ratio"}[key]
    CHAPTERS[name] += [
        ("md", "## Exercises"),
        ("md", exercise(1, "easy", 5, f"Read the sweep: from which weight on does the {label} cost reconstruction?",
                        "The first weight whose R² point falls below the grey band; `experiments.rule_weight` "
                        "returns the last one inside it.")),
        ("md", exercise(2, "medium", 10, "Does the penalty change L0? Compare `l0` of the two methods in `rows`.",
                        "```python\nsummarize(rows, ['l0'], by=('method',))\n```\nTop-k still keeps k "
                        "entries; the penalty changes *which* and how large, so L0 moves little.")),
        ("md", exercise(3, "hard", 20, "Run the sweep on digits (`grids.sweep('%s', data='digits')`). Does the rule pick the same weight?" % key,
                        "Compare `experiments.rule_weight` on both sweeps. The loss is scale-free (FVU), so weights "
                        "transfer roughly, but the tolerance is met at a data-dependent weight.")),
        ("md", f"""## Summary

- The {label} acts on the activations before the Top-k selection, on the batch-active units only.
- Its weight is chosen by a stated rule on a sweep, shown above, for the profile and data that ran.
- The box reports, with standard errors, whether the interpretability gain and the no-cost part hold on our data."""),
    ]


def write(name: str, cells: list[tuple[str, str]]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}
    notebook.cells = [nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
                      for kind, text in cells]
    for number, cell in enumerate(notebook.cells):   # stable ids: regenerating changes only what changed
        cell.id = f"c{number:02d}"
    nbformat.validate(notebook)
    nbformat.write(notebook, ROOT / "notebooks" / f"{name}.ipynb")


if __name__ == "__main__":
    for name, cells in CHAPTERS.items():
        write(name, cells)
        print("wrote", name)
