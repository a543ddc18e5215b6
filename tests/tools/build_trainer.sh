#!/bin/sh
# tests/tools/build_trainer.sh BUILD MODEL.nn OUT - compile MODEL.nn with
# BUILD's nnc and link the trainer with BUILD's runtime as OUT (OUT.c beside
# it), for tests whose models are not in models/. $SAN_FLAGS, when BUILD's
# runtime was built with sanitizers, is added where it links. Run from the
# repository root.
set -eu
build=$1 model=$2 out=$3
"$build/nnc" "$model" -o "$out.c"
# shellcheck disable=SC2086
cc -std=c11 -O2 -march=native -fopenmp ${SAN_FLAGS:-} -Iruntime "$out.c" "$build/libnncrt.a" -o "$out" \
    $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lpng -ljpeg -lz -lm -fopenmp
