#!/usr/bin/env bash
# Fashion-MNIST's four files for the book's real data, from Debian's package dataset-fashion-mnist
# (into /usr/share/datasets/fashion-mnist). Does nothing when they are there; installs them with apt
# when it can (root); otherwise says the other two ways and exits 1 (README, "Real embeddings").
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
files=("$dir"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz)
if ls "${files[@]}" >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >/dev/null
    ls "${files[@]}" >/dev/null && echo "data: installed dataset-fashion-mnist into $dir" && exit 0
fi
echo "data: Fashion-MNIST is not in $dir. Install it (sudo apt-get install dataset-fashion-mnist), or set" \
     "SAE_LITE_DOWNLOADS to a folder whose fashion-mnist/ holds the four .gz files, or run once with network" \
     "access so that torchvision downloads them (README, 'Real embeddings')" >&2
exit 1
