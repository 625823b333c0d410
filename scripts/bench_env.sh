#!/usr/bin/env bash
# The benchmark's peer environment, isolated from the project's: overcomplete 0.3.0 fails to import
# with matplotlib >= 3.9, so it gets its own virtual environment (.venv-bench) with an older
# matplotlib and the same pinned torch (constraints.txt). `python -m sae_lite bench` finds it there.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-bench
.venv-bench/bin/python -m pip install -q -c constraints.txt torch "matplotlib<3.9" "overcomplete==0.3.0"
.venv-bench/bin/python -c "import overcomplete, torch; print('peer env: overcomplete', overcomplete.__version__, 'torch', torch.__version__)"
