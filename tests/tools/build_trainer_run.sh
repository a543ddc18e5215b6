#!/bin/sh
# tests/tools/build_trainer_run.sh BUILD MODEL OUT [HARNESS] - build HARNESS
# (default trainer_run.c: the trainer's own inference, one line an image) for
# MODEL's generated trainer (generated/MODEL.c, or MODEL itself when it names a
# .c file), linked with BUILD's runtime, as OUT. $SAN_FLAGS, when BUILD's
# runtime was built with sanitizers, is added where it links. Run from the
# repository root.
set -eu
build=$1 m=$2 out=$3 harness=${4:-tests/tools/trainer_run.c}
src=generated/$m.c
case $m in *.c) src=$m m=$(basename "$m" .c) ;; esac
cc -std=c11 -O3 -march=native -ffp-contract=fast -fopenmp -Iruntime -DNNC_NO_MAIN -c "$src" -o "$out.o"
# shellcheck disable=SC2086
cc -std=c11 -O2 ${SAN_FLAGS:-} -Iruntime -DNNC_MODEL="nnc_model_$m" "$harness" "$out.o" \
    "$build/libnncrt.a" -o "$out" $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lpng -ljpeg -lz -lm -fopenmp
