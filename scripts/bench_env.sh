#!/usr/bin/env bash
# The benchmark's peer environments, isolated from the project's and from each other, each with the same
# pinned torch (constraints.txt), next to the repository, where `python -m sae_lite bench` finds them:
#   .venv-bench           overcomplete 0.3.0 (it fails to import with matplotlib >= 3.9)
#   .venv-bench-sparsify  eai-sparsify 1.3.3 (EleutherAI sparsify)
#   .venv-bench-saelens   sae-lens 6.54.12
# Each is checked by running its peer script (sae_lite/bench/peer*.py) on a tiny size, as the benchmark
# runs it. Usage: scripts/bench_env.sh [overcomplete] [sparsify] [saelens]  (default: all three).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(overcomplete sparsify saelens)
for peer in "${peers[@]}"; do
    case $peer in
        overcomplete) env=.venv-bench; script=peer_overcomplete.py; packages=("matplotlib<3.9" "overcomplete==0.3.0");;
        sparsify) env=.venv-bench-sparsify; script=peer_sparsify.py; packages=("eai-sparsify==1.3.3");;
        saelens) env=.venv-bench-saelens; script=peer_saelens.py; packages=("sae-lens==6.54.12");;
        *) echo "unknown peer '$peer'; choose overcomplete, sparsify or saelens" >&2; exit 2;;
    esac
    echo "== $peer: $env"
    [ -x "$env/bin/python" ] || "$PYTHON" -m venv "$env"
    "$env/bin/python" -m pip install -q -c constraints.txt torch "${packages[@]}"
    # the check: the peer's own step at a tiny size (its import needs what the script declares first)
    "$env/bin/python" "sae_lite/bench/$script" --d 8 --n 32 --k 2 --batch 4 --repeats 1 --warmup 0 --threads 1
done
