#!/bin/sh
# tests/tools/find_mnist.sh - print the MNIST directory the trainers would use
# ($NNC_DATA, data/mnist, ../shared/data/mnist; run from the repository root),
# or exit 77 with a message when there is none.
has_mnist() {
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        [ -f "$1/$f" ] || [ -f "$1/$f.gz" ] || return 1
    done
}
for d in "${NNC_DATA:-}" data/mnist ../shared/data/mnist; do
    if [ -n "$d" ] && has_mnist "$d"; then echo "$d"; exit 0; fi
done
echo "no MNIST in \$NNC_DATA (${NNC_DATA:-not set}), data/mnist or ../shared/data/mnist" >&2
exit 77
