#!/bin/sh
# tests/tools/train_digest.sh TRAINER DATA_DIR - train one epoch on DATA_DIR with
# the recipe's seed and print one line: the trainer's name, the SHA-256 of the
# saved weights, and the epoch's loss and accuracy figures (timings dropped).
# Two builds whose lines are equal trained bit for bit alike.
set -eu
trainer=$1 data=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/nnc-digest.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$trainer" --data "$data" --epochs 1 --threads 2 --no-history --save "$dir/w.nncw" >"$dir/log" 2>&1 ||
    { cat "$dir/log" >&2; exit 1; }
sum=$(sha256sum "$dir/w.nncw" | cut -c1-16)
figures=$(sed -n 's/^epoch  *1\/1 *\(.*test_acc [0-9.]*%\).*/\1/p' "$dir/log" | tr -s ' ')
echo "$(basename "$trainer") $sum $figures"
