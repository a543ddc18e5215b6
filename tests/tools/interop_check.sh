#!/bin/sh
# tests/tools/interop_check.sh BUILD MODEL DIR - a seed model's weights in every
# export format, checked by the tools that read them (tests/test_interop.c).
# Run from the repository root. DIR/d holds an MNIST subset (mnist_subset.sh).
#
# Trains MODEL one epoch on DIR/d, exports .safetensors, .npz and .onnx, and
# writes the trainer's own inference on every test image of DIR/d
# (trainer_run: the argmax, then the probabilities, a line an image). Then,
# for each tool that is installed, one line:
#   torch IMAGES DIFFERENT_ARGMAX MAX_PROB_DIFF   (the safetensors in nn_to_torch's model)
#   npz SAME                                      (numpy.load equals the safetensors arrays)
#   torch_accuracy PERCENT                        (back from PyTorch: a model trained briefly in
#   nnc_accuracy_from_torch PERCENT                PyTorch, its state_dict loaded by nnc, both on
#                                                  DIR/d's test images)
#   nnc_prep_note computed                        (nnc said it computed normalize's constants, which
#                                                  a PyTorch file lacks)
#   onnx_checker OK OPSET NODES OPS               (onnx.checker, full check)
#   onnxruntime IMAGES DIFFERENT_ARGMAX MAX_PROB_DIFF
# and `skipped: X not installed (...)` for each that is not. $SAN_FLAGS as in
# build_trainer_run.sh.
set -eu
b=$1 m=$2 dir=$3
py=/usr/bin/python3
"$b/bin/$m" --data "$dir/d" --epochs 1 --save "$dir/w.nncw" --no-history --export "$dir/w.safetensors" \
    >"$dir/train.log" 2>&1 || { cat "$dir/train.log"; exit 1; }
"$b/bin/$m" --load "$dir/w.nncw" --export "$dir/w.npz" >/dev/null
"$b/bin/$m" --load "$dir/w.nncw" --export "$dir/w.onnx" >/dev/null
sh tests/tools/build_trainer_run.sh "$b" "$m" "$dir/trainer_run"
"$dir/trainer_run" "$dir/w.nncw" "$dir/d/t10k-images-idx3-ubyte" >"$dir/trainer.txt" 2>/dev/null

if $py -c 'import torch, numpy' 2>/dev/null; then
    $py tests/tools/interop_torch.py to_torch "models/$m.nn" "$dir/w.safetensors" "$dir/w.npz" "$dir/d" \
        "$dir/trainer.txt"
    $py tests/tools/interop_torch.py from_torch "models/$m.nn" "$dir/pt.safetensors" "$dir/d"
    "$b/bin/$m" --data "$dir/d" --load "$dir/pt.safetensors" --eval >"$dir/from_torch.log" 2>&1 ||
        { cat "$dir/from_torch.log"; exit 1; }
    sed -n 's/^test accuracy \([0-9.]*\)%.*/nnc_accuracy_from_torch \1/p' "$dir/from_torch.log"
    if grep -q "are computed from" "$dir/from_torch.log"; then echo "nnc_prep_note computed"; fi
else
    echo "skipped: python3-torch not installed ($py -c 'import torch, numpy' failed): no PyTorch or NumPy check"
fi
if $py -c 'import onnx' 2>/dev/null; then
    $py tests/tools/onnx_check.py "$dir/w.onnx" "$m"
else
    echo "skipped: python3-onnx not installed ($py -c 'import onnx' failed): no onnx.checker check"
fi
node_modules=$(cd "$b" && pwd)/node/node_modules
if command -v node >/dev/null && [ -d "$node_modules/onnxruntime-node" ]; then
    NODE_PATH=$node_modules node tests/tools/onnx_run.js "$dir/w.onnx" "$dir/d/t10k-images-idx3-ubyte" \
        "$dir/trainer.txt"
else
    echo "skipped: onnxruntime-node not installed (no node, or no $node_modules/onnxruntime-node: make test-deps)"
fi
