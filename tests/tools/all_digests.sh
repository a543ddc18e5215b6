#!/bin/sh
# tests/tools/all_digests.sh BIN_DIR - one line of train_digest.sh for the
# trainer of every models/*.nn in BIN_DIR, trained on the first 2048 training
# and 512 test images of MNIST, found as the trainers find it ($NNC_DATA,
# data/mnist, ../shared/data/mnist; run from the repository root). Exits 77
# with a message when there is no MNIST. `make digests` stores its output in
# tests/digests/$(tests/tools/digest_key.sh).txt; tests/test_digests.c compares.
set -eu
bin=$1
src=$(sh tests/tools/find_mnist.sh) || exit 77
dir=$(mktemp -d "${TMPDIR:-/tmp}/nnc-digests.XXXXXX")
trap 'rm -rf "$dir"' EXIT
sh tests/tools/mnist_subset.sh "$src" "$dir" 2048 512
for m in models/*.nn; do
    sh tests/tools/train_digest.sh "$bin/$(basename "$m" .nn)" "$dir"
done
