"""The truncated probe's two paths on the book's real baseline: dense centred codes against sparse
top-m codes scaled without centring (`sae_lite.evaluation.probes`). Prints the seconds of each
(encoding included, one torch and BLAS thread) and its test accuracy at m = 1, 2, 4, 8.

    python scripts/probe_paths.py         # trains the real baseline first unless it is in the results cache
"""
from __future__ import annotations

import time

from sae_lite.evaluation import metrics, probes
from sae_lite.study.grids import K, real_spec
from sae_lite.study.methods import METHODS
from sae_lite.study.pipeline import load_split
from sae_lite.study.profiles import active_profile
from sae_lite.study.results import cached_run
from sae_lite.study.runner import limit_threads

MS = [1, 2, 4, 8]


def main() -> None:
    limit_threads(1)
    run = cached_run(METHODS["baseline"].config(K, **active_profile().real.overrides()), real_spec(), progress=False)
    train_set, test_set = load_split(real_spec())
    start = time.perf_counter()
    codes_train, codes_test = (metrics.encode_all(run.sae, part.x)[0] for part in (train_set, test_set))
    dense = probes.truncated_probe(codes_train, train_set.labels, codes_test, test_set.labels, MS)
    dense_s = time.perf_counter() - start
    start = time.perf_counter()
    top_train, top_test = (probes.encode_top(run.sae, part.x, max(MS)) for part in (train_set, test_set))
    sparse = probes.sparse_truncated_probe(top_train, train_set.labels, top_test, test_set.labels, MS)
    sparse_s = time.perf_counter() - start
    print(f"# {train_set.n} training and {test_set.n} test inputs, N = {run.sae.n_latents}")
    print("| path | seconds (encoding included) | test accuracy, m = 1 / 2 / 4 / 8 |\n|---|---|---|")
    for name, seconds, result in (("dense, centred", dense_s, dense), ("sparse, not centred", sparse_s, sparse)):
        accuracies = " / ".join(f"{result[m]['test']:.4f}" for m in MS)
        print(f"| {name} | {seconds:.1f} | {accuracies} |")


if __name__ == "__main__":
    main()
