#!/bin/sh
# tests/tools/all_digests.sh BIN_DIR - one line of train_digest.sh for the
# trainer of every models/*.nn in BIN_DIR, trained on the first 2048 training
# and 512 test images of MNIST, found as the trainers find it ($NNC_DATA,
# data/mnist, ../shared/data/mnist; run from the repository root); a model
# with an RGB 32x32 input (CIFAR-10's) on 2000 training and 400 test images of
# synthetic CIFAR-format files (tests/tools/cifar_synth.c, seed 1). Exits 77
# with a message when there is no MNIST. `make digests` stores its output in
# tests/digests/$(tests/tools/digest_key.sh).txt; tests/test_digests.c compares.
set -eu
bin=$1
src=$(sh tests/tools/find_mnist.sh) || exit 77
dir=$(mktemp -d "${TMPDIR:-/tmp}/nnc-digests.XXXXXX")
trap 'rm -rf "$dir"' EXIT
sh tests/tools/mnist_subset.sh "$src" "$dir" 2048 512
mkdir "$dir/cifar"
cc -std=c11 -O2 -o "$dir/cifar_synth" tests/tools/cifar_synth.c
"$dir/cifar_synth" "$dir/cifar" 400 1
for m in models/*.nn; do
    data=$dir
    if grep -q '^input 32x32x3' "$m"; then data=$dir/cifar; fi
    sh tests/tools/train_digest.sh "$bin/$(basename "$m" .nn)" "$data"
done
