#!/bin/sh
# tests/tools/mnist_subset.sh SRC DST N_TRAIN N_TEST - the first N_TRAIN training
# and N_TEST test images of the MNIST in SRC (IDX files, raw or .gz), written to
# DST as raw IDX files: a small fixed data set for tests that train.
set -eu
src=$1 dst=$2 n_train=$3 n_test=$4
mkdir -p "$dst"
# be32 N: N as 4 big-endian bytes.
be32() { printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)))"; }
open_idx() { if [ -f "$1" ]; then cat "$1"; else gzip -dc "$1.gz"; fi; }
# subset PREFIX N: images (16-byte header) then labels (8-byte header).
subset() {
    prefix=$1 n=$2
    { be32 2051; be32 "$n"; be32 28; be32 28
      open_idx "$src/$prefix-images-idx3-ubyte" | tail -c +17 | head -c $((n * 784)); } >"$dst/$prefix-images-idx3-ubyte"
    { be32 2049; be32 "$n"
      open_idx "$src/$prefix-labels-idx1-ubyte" | tail -c +9 | head -c "$n"; } >"$dst/$prefix-labels-idx1-ubyte"
}
subset train "$n_train"
subset t10k "$n_test"
