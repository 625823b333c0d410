"""Write chapter 9, notebooks/09_reproducing_the_paper.ipynb (without outputs), from the cells below.

Kept apart from `make_notebooks.py` (chapters 0-6) so that the two can change independently; it uses
that script's helpers: ``python scripts/make_chapter_09.py`` overwrites the notebook.
"""

from __future__ import annotations

from make_notebooks import exercise, objectives, write

SETUP = """\
import json
import os
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

from sae_lite import claims, experiments, reproduce
from sae_lite.experiments import active_profile, summarize

profile = active_profile()
print(f"profile {profile.name}: {profile.steps} steps, seeds {profile.seeds}")"""

CELLS = [
    ("md", """# 9. Reproducing the paper

The earlier chapters test one claim each, on one data set. This chapter runs the whole grid at
once with one command, `python -m sae_lite reproduce`, and reads what comes out: a results table,
the verdict on each of the paper's four claims {cite:p}`jacquier2026beyond`, its kinds of figure and
a method card for every run."""),
    ("md", objectives("say what the reproduction grid of each profile trains",
                      "run `reproduce` and find its outputs: results.csv, claims, figures, method cards",
                      "read a claim's verdict and the seed stability of a run",
                      "estimate what the paper profile costs on a GPU, and know that it is an estimate")),
    ("md", """## The grid

A profile's grid is data sets × training budgets k × the five methods × the profile's seeds. The
five methods are the Top-k baseline, the off-support L1, the L1/L2 ratio, and both penalties without
the batch-active mask (the ablation). On each data set, both penalties run at the weight the rule of
chapters 2-3 picks there (the largest weight of a sweep, first seed, middle k, whose test R² stays
within 0.005 of the baseline's); the ablations keep that weight and drop the mask.

| profile | data | k | seeds | steps per run |
| --- | --- | --- | --- | --- |
| `quick` | planted, Fashion-MNIST × EfficientNet-Lite0 | 16 | 0 | 600 (real: its own size) |
| `default` | planted, Fashion-MNIST × EfficientNet-Lite0 | 16 | 0, 1, 2 | 3000 (real: its own size) |
| `paper` | ImageNet-1K, Open Images V7 × CLIP ViT-L/14, SigLIP2, ViT-L/16 | 32, 64, 128 | 0, 1, 2 | 20000 |

`quick` and `default` use 512 latents and k = 16 on planted data, the book's setting, so
their planted runs are the very runs of chapters 1-6, loaded from the cache. The real data
(`fashion-mnist`: Fashion-MNIST embedded by a pretrained EfficientNet-Lite0, d = 1280) runs at the
size of chapter 10 (`experiments.RealData`: its own dictionary size, batch and steps), and shares
its runs with that chapter. The `paper` profile reads embedding stores from a
directory (below) and uses 8·d latents: the paper's dictionary size is not in the text we could read,
so this is an assumption (`experiments.PAPER_EXPANSION`)."""),
    ("code", SETUP),
    ("code", """# the paper profile reads its stores from SAE_LITE_PAPER_DATA (see the end of the chapter)
data_dir = os.environ.get("SAE_LITE_PAPER_DATA") if profile.name == "paper" else None
grid = experiments.grid(profile.name, data_dir)
for cell in grid.cells:
    print(f"{cell.label}: k {cell.ks}, {cell.n_latents} latents")
print(f"{len(grid.methods)} methods x {len(profile.seeds)} seed(s): {len(grid.jobs())} runs")"""),
    ("md", """## Running it

The chapter calls the function behind the command. On the command line the same grid is

```bash
python -m sae_lite reproduce --profile quick --out results/quick
```

Every run is cached by a hash of its configuration: a run finished before (by another chapter, or
by an interrupted `reproduce`) is loaded, not trained, and a second call trains nothing. The output
directory holds a `grid.json` fingerprint; `reproduce` refuses a directory that holds the results
of another grid, so two configurations never mix in one table."""),
    ("code", """out = reproduce.results_dir(grid)   # a directory in the results cache, named by the grid
summary = reproduce.reproduce(grid, out, progress=False)
print(f"{summary['runs']} runs ({summary['trained']} trained now, weight sweeps included) -> {out}")
print("weights picked by the rule:", summary["weights"])
print(sorted(p.name for p in out.iterdir()))"""),
    ("md", """## The results table

`results.csv` has one row per run: the recipe, every metric, `r2_x{f}` (R² when the top k' = f·k
activations are kept at inference) and `probe_m{m}` (accuracy of a linear probe on the top m codes).
Here it is summarised per data set and method as mean ± std over the seeds."""),
    ("code", """results = pd.read_csv(out / "results.csv")
metrics = ["r2", "ms_mean", "purity_mean", "dead", "r2_x0.5", "probe_m1"]
table = pd.DataFrame([{"data": e["data"], "method": e["method"], "seeds": e["n"],
                       **{m: f"{e[m + '_mean']:.3f} ± {e[m + '_std']:.3f}" for m in metrics}}
                      for e in summarize(results.to_dict("records"), metrics)])
table"""),
    ("md", """## What the paper claims / what we measured

Each claim is split into parts (one metric, one pair of methods, one data set). A part supports the
claim when the difference of the means is in the claimed direction by more than two standard errors
over seeds; the claim holds if every part supports it (`sae_lite.claims`). With one seed (`quick`)
the spread is unknown and the verdict rests on the sign alone: read it as a smoke test, not as
evidence. First the verdicts side by side, one column per data set (the top of `claims.md`), then
every part of every claim: what our code measured on our data, whichever way it falls."""),
    ("code", """results_claims = json.loads((out / "claims.json").read_text())
display(Markdown(claims.overview(results_claims)))"""),
    ("code", """claims.show(results_claims)"""),
    ("md", """## The figures

For each data set and training k: R² against the inference budget k'/k, probe accuracy against the
number m of codes kept, and MS, purity, R² and dead latents per method (bands and error bars are ±
one standard deviation over seeds)."""),
    ("code", """for path in sorted((out / "figures").glob("*.png")):
    print(path.name)
    display(Image(filename=str(path), width=560))"""),
    ("md", """## Two method cards

Every run has a method card: where its inputs came from, how it was trained, what was measured, and,
for a run with sibling seeds, how stable the recipe is across them: the standard deviation of each
metric and `dictionary_mmcs`, the mean over atoms of the best cosine with an atom of another
seed's dictionary (1 = the same dictionary). Here are the baseline and the L1/L2 ratio on the first
data set, first seed."""),
    ("code", """first = results[(results["data"] == grid.cells[0].label) & (results["seed"] == profile.seeds[0])]
for method in ("baseline", "ratio"):
    row = first[first["method"] == method].iloc[0].to_dict()
    display(Markdown((out / "cards" / reproduce.card_name(row)).read_text().replace("# Method card", f"**{method}**", 1)))"""),
    ("md", """## The paper profile on a GPU

The paper profile needs one embedding store per data set and backbone, in this layout (each made by
`python -m sae_lite embed`; see the README, "Real embeddings"):

```
STORES/imagenet-1k/clip-vit-l-14/    STORES/open-images-v7/clip-vit-l-14/
STORES/imagenet-1k/siglip2/          STORES/open-images-v7/siglip2/
STORES/imagenet-1k/vit-l-16/         STORES/open-images-v7/vit-l-16/
```

```bash
python -m sae_lite embed --backbone clip-vit-l-14 --images imagenet/train --out STORES/imagenet-1k/clip-vit-l-14
# ... the five other stores ...
python -m sae_lite reproduce --profile paper --data STORES --out results/paper
```

Before training anything, `reproduce` checks every store: a missing one, or one whose `meta.json`
names another backbone than its directory, stops it with an error naming the store. To run this
chapter on the paper grid, set `SAE_LITE_PROFILE=paper` and `SAE_LITE_PAPER_DATA=STORES`.

**How long?** We cannot time the paper grid here, so we **estimate** it. We measure the training
steps per second of a small SAE on this machine, turn them into floating-point operations per second
with a count of the step's matrix products (`reproduce.step_flops`: encoder and decoder, forward and
backward; the top-k, the penalties and AuxK are left out), and divide the paper grid's total by it.
For a GPU we cannot measure, we assume sustained rates; the estimate covers SAE training only, not
embedding the images or evaluating the runs."""),
    ("code", """from sae_lite.train import TrainConfig

d, n = 256, 2048
rate = reproduce.measure_step_rate(d=d, n_latents=n, device="cpu")
here = rate * reproduce.step_flops(d, n, TrainConfig().batch_size)
print(f"measured here: {rate:.1f} steps/s at d={d}, N={n} -> {here / 1e9:.1f} GFLOP/s (a shared CPU)")
paper_runs = (len(experiments.PAPER_DATASETS) * len(experiments.PAPER_BACKBONES) * len(experiments.PAPER_KS)
              * len(experiments.PAPER_METHODS) * len(experiments.PROFILE_SETTINGS["paper"].seeds))
print(f"paper profile: {paper_runs} runs, {reproduce.paper_train_flops():.2e} FLOPs of training")
estimate = [{"where": "this CPU (measured rate)", "TFLOP/s": here / 1e12, "hours": reproduce.paper_hours(here)}]
estimate += [{"where": f"a GPU at an assumed {t} TFLOP/s", "TFLOP/s": t, "hours": reproduce.paper_hours(t * 1e12)}
             for t in (5, 20, 50)]
estimate = pd.DataFrame(estimate)
estimate["days"] = estimate["hours"] / 24
estimate.round(3)"""),
    ("md", """A data-centre GPU runs large dense fp32/TF32 products at tens of TFLOP/s, so the assumed rates
bracket what to expect; the first row shows why the paper profile is not for a CPU. All rows are
estimates, good to a factor of a few. Measure your own GPU's rate the same way
(`reproduce.measure_step_rate(d=1024, n_latents=8192, device="cuda")`) to replace the assumption."""),
    ("md", "## Exercises"),
    ("md", exercise(1, "easy", 5, "How many runs does the default profile train, and how many of them does it share with chapters 1-6?",
                    "2 data sets × 1 k × 5 methods × 3 seeds = 30 runs, plus each data set's weight sweeps. "
                    "The planted runs at k = 16 are the chapters' runs (the baseline and the penalties in "
                    "`grids.pair`, the unmasked variants in `grids.mask`) and the real ones are chapter 10's "
                    "(`grids.real`): in a book build nothing here is new.")),
    ("md", exercise(2, "medium", 10, "From `results`, compute for each data set how much R² the L1/L2 ratio loses or gains against the baseline at k' = k/4.",
                    "```python\nt = results.groupby(['data', 'method'])['r2_x0.25'].mean().unstack()\n"
                    "t['ratio'] - t['baseline']\n```")),
    ("md", exercise(3, "medium", 10, "Call `reproduce.reproduce` on the same grid but into a fresh directory. How long does it take, and why?",
                    "A second or two: every run is in the cache (`summary['trained'] == 0`), so only the evaluation "
                    "files, the tables, the figures and the cards are written.")),
    ("md", exercise(4, "hard", 20, "The estimate ignores the top-k. For N = 9216 latents and a batch of 256, is that reasonable?",
                    "Selecting k of N per input costs O(B·N) comparisons, against 12·B·d·N FLOPs for the products: "
                    "smaller by a factor of order 12·d ≈ 14 000 for d = 1152. AuxK adds one more top-k and a "
                    "decode of k_aux codes, also small next to the dense products.")),
    ("md", """## Summary

- `python -m sae_lite reproduce --profile P --out DIR` trains or loads every run of a profile's grid and
  writes results.csv, claims.json/claims.md, figures and method cards; it resumes and refuses a DIR
  of another configuration.
- The verdict on each claim follows one stated rule over seeds; with one seed it is a sign, not evidence.
- Method cards report how a run was made, what was measured and how stable the recipe is over seeds.
- The paper profile needs six embedding stores and a GPU; its cost above is an estimate from a
  measured rate and assumed GPU throughputs."""),
]

if __name__ == "__main__":
    write("09_reproducing_the_paper", CELLS)
    print("wrote 09_reproducing_the_paper")
