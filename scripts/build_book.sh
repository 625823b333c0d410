#!/usr/bin/env bash
# Build the book from a fresh clone: set up a virtual environment (the README's install, with the
# docs extra), execute every chapter in the default profile and write the HTML. Any execution error
# or Sphinx warning fails the build. Runs are cached in .cache/sae-lite: a second build only reloads.
#
#   scripts/build_book.sh                 # -> _build/html/index.html
#   SAE_LITE_PROFILE=quick scripts/build_book.sh    # the fast profile (one seed, short runs)
#   scripts/build_book.sh --no-install    # use the python on PATH, sae_lite from this checkout
set -euo pipefail
case "${1:-}" in
    -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
    ""|--no-install) ;;
    *) echo "build_book.sh: unknown option $1 (scripts/build_book.sh --help lists the options)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
start=$(date +%s)

if [ "${1:-}" = "--no-install" ]; then
    BIN=""                                                  # jupyter-book from PATH
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"     # the executing kernels inherit it
else
    VENV="${SAE_LITE_VENV:-.venv}"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[docs]"
    BIN="$VENV/bin/"
fi
# The real data (Fashion-MNIST's four files; chapter 10): installed from Debian when missing and possible.
scripts/fashion_mnist_data.sh || echo "book: the chapters will look for Fashion-MNIST in the download cache, then online"
export SAE_LITE_PROFILE="${SAE_LITE_PROFILE:-default}"
# No MPLBACKEND: the kernels keep IPython's inline backend, the only one that shows figures.
unset MPLBACKEND
# One BLAS/OpenMP thread per kernel: small models gain little from more, and on a loaded 2-core
# machine torch's default 2 threads made a run 15x slower (172 s against 11 s).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# A grid's uncached runs train side by side, one process per core (sae_lite.study.runner.parallel_jobs).
export SAE_LITE_JOBS="${SAE_LITE_JOBS:-$(env -u OMP_NUM_THREADS nproc 2>/dev/null || echo 1)}"  # nproc obeys OMP_NUM_THREADS

build() {
    rm -rf _build/html _build/.doctrees _build/jupyter_execute    # every chapter executes again
    "${BIN}jupyter-book" build . --toc book/_toc.yml --config _config.yml -W --keep-going
}
# One retry: rarely (twice in about a hundred notebook executions here) the executing client and
# its kernel both wait for each other after a cell until the timeout. The retry reloads the runs
# trained so far from the cache; a real error fails twice.
build || { echo "book: the build failed; building once more (trained runs are cached)"; build; }
# Markdown shown by code cells must be rendered, not printed: no raw MyST directive in any page.
if grep -l ':::{' _build/html/notebooks/*.html; then
    echo "book: the pages above show raw MyST (':::{'): check nb_render_markdown_format in _config.yml" >&2
    exit 1
fi
# Every code cell that draws shows its image, in the executed notebook and on its page.
"${BIN}python" scripts/check_figures.py _build/jupyter_execute/notebooks _build/html/notebooks || {
    echo "book: the cells above draw but show no image (scripts/check_figures.py)" >&2
    exit 1
}
echo "book: built in $(( $(date +%s) - start )) s (profile $SAE_LITE_PROFILE): open _build/html/index.html"
