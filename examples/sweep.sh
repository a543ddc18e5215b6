#!/bin/sh
# sweep.sh - train several models and compare them in one markdown table, the
# way seed 000 compares architectures (accuracy on the test set per model),
# with each model's parameter count and training time added.
#
#   examples/sweep.sh [--epochs N] [--threads N] [MODEL...]
#
# MODEL is a name from models/ (default: linear mlp800 cnn_baseline cnn_larger).
# --epochs overrides every recipe's epoch count (for a quick look); without it
# each model trains for its own recipe. Run from anywhere: it works in the
# repository root, builds what is missing with make, and keeps the weights and
# logs in build/sweep/.
set -eu

cd "$(dirname "$0")/.."
epochs=""
threads=""
models=""
while [ $# -gt 0 ]; do
    case "$1" in
    --epochs) [ $# -ge 2 ] || { echo "sweep.sh: --epochs needs a value" >&2; exit 2; }; epochs=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || { echo "sweep.sh: --threads needs a value" >&2; exit 2; }; threads=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "sweep.sh: unknown option '$1'" >&2; exit 2 ;;
    *) models="$models $1"; shift ;;
    esac
done
[ -n "$models" ] || models="linear mlp800 cnn_baseline cnn_larger"

for m in $models; do
    [ -f "models/$m.nn" ] || { echo "sweep.sh: no model models/$m.nn" >&2; exit 2; }
done
targets=""
for m in $models; do targets="$targets build/bin/$m"; done
# shellcheck disable=SC2086 # one word per target
make --no-print-directory -s all $targets >&2

out=build/sweep
mkdir -p "$out"
rows=""
for m in $models; do
    # The model file's first line says what it is: "# name - description".
    what=$(head -n 1 "models/$m.nn" | sed -e 's/^# *[^ ]* - //' -e 's/|/\\|/g')
    params=$(build/nnc --summary "models/$m.nn" | sed -n 's/^Total params: //p')
    echo "== $m" >&2
    start=$(date +%s.%N)
    build/bin/"$m" ${epochs:+--epochs "$epochs"} ${threads:+--threads "$threads"} --save "$out/$m.nncw" \
        > "$out/$m.log" 2>&1 || { echo "sweep.sh: $m failed; see $out/$m.log" >&2; tail -n 5 "$out/$m.log" >&2; exit 1; }
    end=$(date +%s.%N)
    grep "^test accuracy" "$out/$m.log" | tail -n 1 >&2
    acc=$(sed -n 's/^test accuracy \([0-9.]*%\).*/\1/p' "$out/$m.log" | tail -n 1)
    ran=$(grep -c '^epoch ' "$out/$m.log" || true)
    secs=$(echo "$start $end" | awk '{printf "%.1f", $2 - $1}')
    rows="$rows| $m | $what | $params | $ran | $acc | $secs |
"
done

echo
echo "| model | what | parameters | epochs | test accuracy | time (s) |"
echo "|---|---|---:|---:|---:|---:|"
printf '%s' "$rows"
