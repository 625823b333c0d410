"""Plant small bugs in the package, one at a time, and check that the tests catch each of them.

    python scripts/mutation_check.py                  # every mutation, each with its own tests
    python scripts/mutation_check.py --list           # the mutations and the tests each one runs
    python scripts/mutation_check.py --only k_sweep --only dead --all-tests
    python scripts/mutation_check.py --only purity --tests tests/test_metrics.py::test_class_purity_by_hand

Each mutation is one exact text replacement in a file of ``sae_lite/``. The working tree (the files git
tracks or would track) is copied to a temporary folder once; a mutation is written into that copy
only, the copy's tests run against it (``pytest -x``, a fresh result cache, ``PYTHONPATH`` on the
copy), and the file is restored. The repository itself is never modified. First the same tests run
on the unmutated copy: if they fail there, nothing is reported.

A mutation whose target text is no longer in its file (the code moved on) is reported as ``pattern
not found`` and makes the check fail, so the list is kept up to date rather than silently skipped.
Prints one row per mutation (caught by which test, or NOT CAUGHT) and exits 1 unless every mutation
was caught. Optional for users, not run by the test command; it takes some minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOW = ("tests/test_train.py::test_baseline_reaches_r2_085_on_the_planted_default",
        "tests/test_runner.py::test_parallel_jobs_train_the_same_runs")
GROUPS = {
    "measure": ("tests/test_measurements.py", "tests/test_metrics.py", "tests/test_advanced_metrics.py"),
    "loop": ("tests/test_training_loop.py", "tests/test_train.py", "tests/test_sae.py", "tests/test_selection_rules.py",
             "tests/test_rule_registry.py"),
    "penalty": ("tests/test_penalties.py", "tests/test_kernels.py"),
    "stats": ("tests/test_claims.py", "tests/test_grids.py", "tests/test_runner.py"),
    "setup": ("tests/test_test_command.py",),
    "cache": ("tests/test_cache.py",),
}
ALL_TESTS = tuple(dict.fromkeys(path for group in GROUPS.values() for path in group))


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str        # relative to the repository root
    old: str         # must occur exactly once in the file
    new: str
    groups: tuple[str, ...]


M = Mutation
MUTATIONS = (
    # the seven
    M("dead_latents inverted", "sae_lite/evaluation/metrics.py",
      "return ~(codes != 0).any(0)", "return (codes != 0).any(0)", ("measure",)),
    M("k_sweep ignores k'", "sae_lite/evaluation/metrics.py",
      "codes = sae.rule.select(pre, k, centred).codes", "codes = sae.rule.select(pre, None, centred).codes", ("measure",)),
    M("truncated_probe keeps whole test codes", "sae_lite/evaluation/probes.py",
      "test_x = keep_top(torch.as_tensor(codes_test), int(m)).numpy()[:, used]",
      "test_x = np.asarray(codes_test)[:, used]", ("measure",)),
    M("train loop skips the decoder-gradient projection", "sae_lite/core/train.py",
      "    sae.project_decoder_grad()\n    if config.grad_clip", "    if config.grad_clip", ("loop",)),
    M("train loop uses the base lr", "sae_lite/core/train.py",
      "dead, learning_rate(config, step), step_loss)", "dead, config.lr, step_loss)", ("loop",)),
    M("train() never sets b_pre from data", "sae_lite/core/train.py",
      "    sae.init_b_pre(torch.as_tensor(", "    0 and sae.init_b_pre(torch.as_tensor(", ("loop",)),
    M("BatchTopK threshold update swaps the weights", "sae_lite/core/rules/batchtopk.py",
      "beta * old + (1 - beta) * smallest", "(1 - beta) * old + beta * smallest", ("loop",)),
    # the training loop
    M("train loop skips the renormalisation", "sae_lite/core/train.py",
      "    optimizer.step()\n    sae.normalize_decoder()", "    optimizer.step()", ("loop",)),
    M("dead counter never reset", "sae_lite/core/train.py",
      "        since_fired[job.any(terms.fired)] = 0\n", "", ("loop",)),
    M("dead rule strict", "sae_lite/core/train.py",
      "dead = since_fired >= config.dead_after", "dead = since_fired > config.dead_after", ("loop",)),
    M("lr schedule off by one step", "sae_lite/core/train.py",
      "remaining = (config.steps - step) /", "remaining = (config.steps - step - 1) /", ("loop",)),
    M("projection adds the parallel part", "sae_lite/core/sae.py",
      "self.W_dec.grad.addcmul_(parallel[:, None], self.W_dec, value=-1)",
      "self.W_dec.grad.addcmul_(parallel[:, None], self.W_dec, value=1)", ("loop",)),
    M("geometric median replaced by the mean", "sae_lite/core/sae.py",
      "self.b_pre.copy_(geometric_median(x))", "self.b_pre.copy_(x.mean(0))", ("loop",)),
    M("batches repeat the first one of each epoch", "sae_lite/core/train.py",
      "epoch_order(n, seed, epoch)[offset * batch_size:", "epoch_order(n, seed, epoch)[:", ("loop",)),
    M("every epoch in the first one's order", "sae_lite/core/train.py",
      "epoch_order(n, seed, epoch)[offset", "epoch_order(n, seed, 0)[offset", ("loop",)),
    # selection rules
    M("BatchTopK threshold is the largest kept activation", "sae_lite/core/rules/batchtopk.py",
      "return kept.min().detach() if kept.numel() else None",
      "return kept.max().detach() if kept.numel() else None", ("loop",)),
    M("BatchTopK keeps k per batch, not B*k", "sae_lite/core/rules/batchtopk.py",
      "flat.topk(min(k * pre.shape[0], flat.numel())", "flat.topk(min(k, flat.numel())", ("loop",)),
    M("AbsTopK drops the sign", "sae_lite/core/rules/abstopk.py",
      "return Selection(acts, support, pre * as_weights(support, pre))",
      "return Selection(acts, support, acts * as_weights(support, pre))",
      ("loop", "measure")),
    M("Laplace CDF with its two branches swapped", "sae_lite/core/rules/lapsum.py",
      "return torch.lerp(tail, 1 - tail, upper)", "return torch.lerp(1 - tail, tail, upper)", ("loop",)),
    M("the bisection's row sums forget the temperature", "sae_lite/core/rules/lapsum.py",
      "torch.sub(acts, t[:, None], out=z).div_(temperature)", "torch.sub(acts, t[:, None], out=z)", ("loop",)),
    M("the trainer never asks the rule's schedule", "sae_lite/core/train.py",
      "        sae.rule.on_step(step, config.steps)\n", "", ("loop",)),
    M("the rule's own loss term dropped", "sae_lite/core/loss.py",
      "loss = loss + sae.rule.extra_loss(out)", "loss = loss + 0.0", ("loop",)),
    M("SoftSAE never turns hard", "sae_lite/core/rules/softsae.py",
      "step >= (1 - config.hard_fraction) * total", "False", ("loop",)),
    M("SoftSAE's k-loss also in the hard phase", "sae_lite/core/rules/softsae.py",
      "        if self.hard:\n            return 0.0\n", "", ("loop",)),
    M("SoftSAE's k_t not annealed from d", "sae_lite/core/rules/softsae.py",
      "int(d * (1 - r) + k * r)", "k", ("loop",)),
    M("SoftSAE's capped tails code ~1e-35 a, so every positive latent fires", "sae_lite/core/rules/softsae.py",
      "acts * p * as_weights(reached, p)", "acts * p", ("loop",)),
    M("the command line takes another rule's option", "sae_lite/cli.py",
      "    if foreign:\n", "    if False:\n", ("loop",)),
    # penalties and AuxK
    M("penalty mask ignored", "sae_lite/core/penalties.py",
      "return acts * as_weights(batch_active(support), acts) if masked else acts", "return acts", ("penalty",)),
    M("batch-active units are those every input keeps", "sae_lite/core/rules/base.py",
      "mask.view(torch.uint8).amax(dim=0)", "mask.view(torch.uint8).amin(dim=0)", ("penalty",)),
    M("off-support L1 charges the support", "sae_lite/core/penalties.py",
      "as_weights(~support, acts)).sum()", "as_weights(support, acts)).sum()",
      ("penalty",)),
    M("ratio divides by the squared norm", "sae_lite/core/penalties.py",
      "l1 / (l2 + EPS), torch.zeros_like(l1)", "l1 / (squares + EPS), torch.zeros_like(l1)", ("penalty",)),
    M("AuxK picks alive latents", "sae_lite/core/penalties.py",
      "dead_cols = dead.nonzero().flatten()\n    if len(dead_cols) == 0:\n        return pre.new_zeros(())\n    pre_dead",
      "dead_cols = (~dead).nonzero().flatten()\n    if len(dead_cols) == 0:\n        return pre.new_zeros(())\n    pre_dead",
      ("penalty",)),
    M("signed AuxK picks by value, not magnitude", "sae_lite/core/penalties.py",
      "local = pre_dead.abs().topk(", "local = pre_dead.topk(", ("penalty",)),
    M("a latent fires only when every input uses it", "sae_lite/core/loss.py",
      "on.amax(0) > 0", "on.amin(0) > 0", ("loop",)),
    M("L0 nets negative codes against positive ones", "sae_lite/core/loss.py",
      "on = out.codes.detach().abs().sign()", "on = out.codes.detach().sign()", ("loop",)),
    M("AuxK never added to the dense loss", "sae_lite/core/loss.py",
      "    if config.auxk:\n", "    if False:\n", ("loop", "penalty")),
    M("sparse backend ignores the mask", "sae_lite/core/kernels.py",
      "if not config.masked or bool(active.all()):", "if True:", ("penalty",)),
    M("sparse off-support gradient on the support", "sae_lite/core/kernels.py",
      "out=torch.empty_like(acts)).scatter_(1, support, 0.0)", "out=torch.empty_like(acts)).scatter_(1, support, 1.0)",
      ("penalty",)),
    M("dense AuxK's padding columns keep a dead latent's values", "sae_lite/core/kernels.py",
      "        codes[:, n_dead:] = 0.0\n", "", ("penalty",)),
    M("dense AuxK's encoder gradient misses the ReLU", "sae_lite/core/kernels.py",
      "d_pre = (error @ W.T).mul_(codes.gt_(0))", "d_pre = error @ W.T", ("penalty",)),
    # metrics and probes
    M("MS without subtracting the minimum", "sae_lite/evaluation/metrics.py",
      "low, high = a.min(0).values.double(), a.max(0).values.double()",
      "low, high = torch.zeros(n_latents, dtype=torch.float64), a.max(0).values.double()", ("measure",)),
    M("evaluate's MS reads signed codes", "sae_lite/evaluation/metrics.py",
      "ms_conventions(codes.abs(), test.reference", "ms_conventions(codes, test.reference", ("measure",)),
    M("purity: a negative code does not fire", "sae_lite/evaluation/metrics.py",
      "rows, cols = (a != 0).nonzero(as_tuple=True)", "rows, cols = (a > 0).nonzero(as_tuple=True)", ("measure",)),
    M("weighted purity with signed mass", "sae_lite/evaluation/metrics.py",
      "mass = a[rows, cols].double().abs() if weighted", "mass = a[rows, cols].double() if weighted", ("measure",)),
    M("keep_top keeps every code", "sae_lite/evaluation/probes.py",
      "    m = min(m, codes.shape[1])\n    index = codes.abs().topk(m, dim=1).indices\n    return torch.zeros_like",
      "    m = codes.shape[1]\n    index = codes.abs().topk(m, dim=1).indices\n    return torch.zeros_like", ("measure",)),
    M("keep_top by value, not magnitude", "sae_lite/evaluation/probes.py",
      "index = codes.abs().topk(m, dim=1).indices\n    return torch.zeros_like",
      "index = codes.topk(m, dim=1).indices\n    return torch.zeros_like", ("measure",)),
    M("r2_half_k evaluated at k", "sae_lite/evaluation/metrics.py",
      "half, double = max(1, sae.k // 2), 2 * sae.k", "half, double = sae.k, 2 * sae.k", ("measure",)),
    M("fvu divides by the uncentred sum", "sae_lite/evaluation/metrics.py",
      "(x - x_hat).square().sum() / (x - x.mean(0)).square().sum())", "(x - x_hat).square().sum() / x.square().sum())",
      ("measure",)),
    M("r2 against the uncentred sum", "sae_lite/evaluation/metrics.py",
      "ss_tot = (x - x.mean(0)).square().sum(0)", "ss_tot = x.square().sum(0)", ("measure",)),
    M("opposite pairs counted in both orders", "sae_lite/evaluation/metrics.py",
      "int(torch.triu(cos < threshold, diagonal=1).sum())", "int((cos < threshold).sum())", ("measure",)),
    M("a signed atom's pair needs one sign only", "sae_lite/evaluation/metrics.py",
      '"pair": share((plus > 0) & (minus > 0))', '"pair": share((plus > 0) | (minus > 0))', ("measure",)),
    # the grid's rows (what the claims read)
    M("grid row's k-sweep always at the training k", "sae_lite/study/runner.py",
      "ks = {f: max(1, round(f * config.k))", "ks = {f: max(1, round(config.k))", ("stats",)),
    M("grid row reports the probe's train accuracy", "sae_lite/study/runner.py",
      '{f"probe_m{m}": v["test"] for', '{f"probe_m{m}": v["train"] for', ("stats",)),
    # statistics, claims and the weight rule
    M("std with ddof=0", "sae_lite/study/stats.py",
      "float(values.std(ddof=1))", "float(values.std(ddof=0))", ("stats",)),
    M("standard error forgets the control", "sae_lite/study/stats.py",
      'math.sqrt(t[f"{metric}_std"] ** 2 / t["n"] + c[f"{metric}_std"] ** 2 / c["n"])',
      'math.sqrt(t[f"{metric}_std"] ** 2 / t["n"])', ("stats",)),
    M("one standard error instead of two", "sae_lite/study/stats.py",
      "margin = 0.0 if math.isnan(se) else 2 * se", "margin = 0.0 if math.isnan(se) else se", ("stats",)),
    M("no-cost part judged optimistically", "sae_lite/study/stats.py",
      "if diff - margin > -TOLERANCE:", "if diff + margin > -TOLERANCE:", ("stats",)),
    M("a claim holds when one part supports it", "sae_lite/study/stats.py",
      '"holds" if supported == len(outcomes)', '"holds" if supported > 0', ("stats",)),
    M("one seed counts as a known spread", "sae_lite/study/claims.py",
      '"spread_known": seeds > 1', '"spread_known": seeds > 0', ("stats",)),
    M("weight rule excludes the tolerance's edge", "sae_lite/study/weights.py",
      "if sum(r2) / len(r2) >= floor]", "if sum(r2) / len(r2) > floor]", ("stats",)),
    M("weight rule picks the smallest weight", "sae_lite/study/weights.py",
      "return max(good) if good else None", "return min(good) if good else None", ("stats",)),
    M("weight rule mixes the penalties' rows", "sae_lite/study/weights.py",
      'r["method"] == "baseline" or r["penalty"] == penalty', 'r["method"] == "baseline" or True', ("stats",)),
    M("weight search tries the smallest weight first", "sae_lite/study/weights.py",
      "self.weights = sorted(sweep_weights(profile), reverse=True)", "self.weights = sorted(sweep_weights(profile))",
      ("stats",)),
    M("weight search stops at a rejected weight", "sae_lite/study/weights.py",
      "if rule_weight([baseline, row]) == weight:", "if True:", ("stats",)),
    # the results cache's key
    M("cache key keeps the docstrings", "sae_lite/cache.py",
      "return ast.dump(without_docstrings(ast.parse(source)))", "return ast.dump(ast.parse(source))", ("cache",)),
    M("cache key hashes the raw source, not the tree", "sae_lite/cache.py",
      "return hashlib.sha256(code_of(source).encode()).digest()", "return hashlib.sha256(source).digest()", ("cache",)),
    M("the code hash parses every file on every ask", "sae_lite/cache.py",
      "@functools.cache\ndef code_digest", "def code_digest", ("cache",)),
    M("the test command starts one process per core, uncapped", "conftest.py",
      "return max(1, min(usable_cores(), MAX_TEST_PROCESSES))", "return max(1, usable_cores())", ("setup",)),
)


def tests_of(mutation: Mutation, all_tests: bool, chosen: list[str] | None = None) -> list[str]:
    if chosen:
        return list(chosen)
    if all_tests:
        return list(ALL_TESTS)
    return list(dict.fromkeys(path for group in mutation.groups for path in GROUPS[group]))


def copy_tree(destination: Path) -> None:
    """Copy the working tree's files (tracked, or untracked and not ignored) to ``destination``."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def run_tests(copy: Path, tests: list[str], cache: Path, timeout: float) -> tuple[str, str]:
    """Run ``tests`` in ``copy``: ('passed' | 'failed' | 'timeout', the first failing test or the output's tail)."""
    env = {**os.environ, "PYTHONPATH": str(copy), "SAE_LITE_CACHE": str(cache), "SAE_LITE_JOBS": "1",
           "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", "-o", "addopts=",
               *[f"--deselect={test}" for test in SLOW], *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result after {timeout:.0f} s"
    if done.returncode == 0:
        return "passed", ""
    found = re.search(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.M)
    return "failed", found.group(1) if found else (done.stdout + done.stderr).strip()[-300:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--list", action="store_true", help="print the mutations and the tests each runs, then stop")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="run only the mutations whose name contains TEXT (repeatable; default: all)")
    parser.add_argument("--all-tests", action="store_true",
                        help=f"run every test file of the check ({len(ALL_TESTS)}) for each mutation, "
                             "not only the mutation's own")
    parser.add_argument("--tests", action="append", default=[], metavar="NODE",
                        help="run these tests (pytest node ids, repeatable) instead of each mutation's own: "
                             "does this one test catch these bugs?")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds one test run may take (default: %(default)s); a run past it counts as caught")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the run of the same tests on the unmutated copy (default: run it first)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(text in m.name for text in args.only)]
    if not chosen:
        print(f"no mutation matches {args.only}; see --list", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.name}  [{m.path}]  ->  {' '.join(tests_of(m, args.all_tests, args.tests))}")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutation-check-") as folder:
        copy = Path(folder) / "repo"
        copy_tree(copy)
        env = {**os.environ, "PYTHONPATH": str(copy)}
        where = subprocess.run([sys.executable, "-c", "import sae_lite; print(sae_lite.__file__)"], cwd=copy, env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        if not Path(where).resolve().is_relative_to(copy.resolve()):
            print(f"the copy's tests would import sae_lite from {where}, not from the copy; stopping", file=sys.stderr)
            return 2
        if not args.no_baseline:
            tests = list(dict.fromkeys(t for m in chosen for t in tests_of(m, args.all_tests, args.tests)))
            status, detail = run_tests(copy, tests, Path(folder) / "cache-baseline", args.timeout)
            if status != "passed":
                print(f"the tests fail without any mutation ({detail}); fix them first", file=sys.stderr)
                return 2
        rows = []
        for i, mutation in enumerate(chosen):
            target = copy / mutation.path
            original = target.read_text()
            count = original.count(mutation.old)
            if count != 1:
                rows.append((mutation, "pattern not found" if count == 0 else f"pattern found {count} times", ""))
                print(f"{mutation.name}: {rows[-1][1]}", flush=True)
                continue
            started = time.monotonic()
            try:
                target.write_text(original.replace(mutation.old, mutation.new))
                status, detail = run_tests(copy, tests_of(mutation, args.all_tests, args.tests), Path(folder) / f"cache-{i}",
                                           args.timeout)
            finally:
                target.write_text(original)
            verdict = {"failed": "caught", "timeout": "caught (timeout)", "passed": "NOT CAUGHT"}[status]
            rows.append((mutation, verdict, detail))
            print(f"{mutation.name}: {verdict} {detail} ({time.monotonic() - started:.0f} s)", flush=True)

    print("\n| planted bug | file | result | caught by |\n|---|---|---|---|")
    for mutation, verdict, detail in rows:
        print(f"| {mutation.name} | {mutation.path} | {verdict} | {detail if verdict.startswith('caught') else ''} |")
    caught = sum(verdict.startswith("caught") for _, verdict, _ in rows)
    print(f"\n{caught} of {len(rows)} planted bugs caught")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
