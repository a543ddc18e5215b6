#!/bin/sh
# tests/tools/inference_check.sh BUILD MODEL DATA WORK [ARM_IMAGES]
#
# The inference C of MODEL (nnc --emit=inference) against its trainer, on the
# test images of DATA (raw IDX files, tests/tools/mnist_subset.sh): trains one
# epoch, writes WORK/net.c and net.h, builds them warning-free with gcc and
# clang (-std=c99 -pedantic), runs both sides over the test set and prints
#
#   host IMAGES DIFFERENT_ARGMAX MAX_PROB_DIFF
#   aarch64 IMAGES DIFFERENT_ARGMAX MAX_PROB_DIFF     (static build under qemu-aarch64,
#                                                     against the host build, on the first
#                                                     ARM_IMAGES, in two qemu processes that
#                                                     take half each: one a core)
#   cortex-m4 FLASH_BYTES                             (arm-none-eabi-gcc -Os, text + data)
#
# The cross lines are left out, with a line "skipped: ..." saying why, where
# the tools are not installed. Run from the repository root. $SAN_FLAGS, when
# BUILD's runtime was built with sanitizers, is added where the trainer links it.
set -eu
build=$1 m=$2 data=$3 work=$4 arm_images=${5:-500}
warn="-std=c99 -Wall -Wextra -Werror -pedantic"
tools=tests/tools
# compare A B: images, differing argmax, largest difference of a probability
compare() {
    paste -d' ' "$1" "$2" | awk '{ k = NF / 2; if ($1 != $(k + 1)) mis++
        for (i = 2; i <= k; i++) { d = $i - $(k + i); if (d < 0) d = -d; if (d > max) max = d } }
        END { printf "%d %d %g\n", NR, mis + 0, max + 0 }'
}
"$build/bin/$m" --data "$data" --epochs 1 --save "$work/w.nncw" --no-history > "$work/train.log" 2>&1
"$build/nnc" --emit=inference --weights "$work/w.nncw" "models/$m.nn" -o "$work/net.c"
run_flags="-I$work -DINFER_H=\"net.h\" -DPREFIX=net -DPREFIX_UPPER=NET"
# shellcheck disable=SC2086
gcc $warn -O3 -march=native $run_flags $tools/infer_run.c "$work/net.c" -o "$work/infer_run" -lm
clang $warn -O2 -c "$work/net.c" -o /dev/null
sh $tools/build_trainer_run.sh "$build" "$m" "$work/trainer_run"
"$work/infer_run" "$data/t10k-images-idx3-ubyte" > "$work/infer.txt"
"$work/trainer_run" "$work/w.nncw" "$data/t10k-images-idx3-ubyte" > "$work/trainer.txt"
echo "host $(compare "$work/infer.txt" "$work/trainer.txt")"
if command -v aarch64-linux-gnu-gcc > /dev/null && command -v qemu-aarch64 > /dev/null; then
    # shellcheck disable=SC2086
    aarch64-linux-gnu-gcc $warn -O2 -static $run_flags $tools/infer_run.c "$work/net.c" -o "$work/infer_arm" -lm
    half=$(((arm_images + 1) / 2))
    qemu-aarch64 "$work/infer_arm" "$data/t10k-images-idx3-ubyte" "$half" > "$work/arm1.txt" 2> "$work/arm1.err" &
    first=$!
    qemu-aarch64 "$work/infer_arm" "$data/t10k-images-idx3-ubyte" "$((arm_images - half))" "$half" \
        > "$work/arm2.txt" 2> "$work/arm2.err" || { kill "$first"; cat "$work/arm2.err" >&2; exit 1; }
    wait "$first" || { cat "$work/arm1.err" >&2; exit 1; }
    cat "$work/arm1.txt" "$work/arm2.txt" > "$work/arm.txt"
    head -n "$arm_images" "$work/infer.txt" > "$work/host_part.txt"
    echo "aarch64 $(compare "$work/arm.txt" "$work/host_part.txt")"
else
    echo "skipped: aarch64 (aarch64-linux-gnu-gcc or qemu-aarch64 not installed)"
fi
if command -v arm-none-eabi-gcc > /dev/null; then
    arm-none-eabi-gcc $warn -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os -c "$work/net.c" -o "$work/net_m4.o"
    echo "cortex-m4 $(arm-none-eabi-size "$work/net_m4.o" | awk 'NR == 2 { print $1 + $2 }')"
else
    echo "skipped: cortex-m4 (arm-none-eabi-gcc not installed)"
fi
