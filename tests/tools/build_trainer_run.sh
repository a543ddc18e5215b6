#!/bin/sh
# tests/tools/build_trainer_run.sh BUILD MODEL OUT [GENERATED.c] - build
# trainer_run.c (the trainer's own inference, one line an image) for MODEL's
# generated trainer (generated/MODEL.c, or GENERATED.c), linked with BUILD's
# runtime, as OUT. $SAN_FLAGS, when BUILD's runtime was
# built with sanitizers, is added where it links. Run from the repository root.
set -eu
build=$1 m=$2 out=$3 gen=${4:-generated/$2.c}
cc -std=c11 -O3 -march=native -ffp-contract=fast -fopenmp -Iruntime -DNNC_NO_MAIN -c "$gen" -o "$out.o"
# shellcheck disable=SC2086
cc -std=c11 -O2 ${SAN_FLAGS:-} -Iruntime -DNNC_MODEL="nnc_model_$m" tests/tools/trainer_run.c "$out.o" \
    "$build/libnncrt.a" -o "$out" $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lpng -ljpeg -lz -lm -fopenmp
