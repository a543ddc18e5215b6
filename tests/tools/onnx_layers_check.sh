#!/bin/sh
# tests/tools/onnx_layers_check.sh BUILD DIR - ONNX export of every layer kind's
# model (tests/layers/KIND/KIND.nn: 'same' padding and strides, avgpool,
# globalavgpool, sigmoid and tanh, batchnorm on the input and on flat vectors,
# dropout, 1x1 images read by dense, mse) and cifar_tiny (RGB, per-channel
# normalize): random weights and images
# (onnx_random_run.c), the .onnx through onnx.checker and onnxruntime-node
# against the trainer's own inference. Prints, per kind,
#   KIND onnx_checker OK OPSET NODES OPS
#   KIND onnxruntime IMAGES DIFFERENT_ARGMAX MAX_DIFF
# Needs python3-onnx and onnxruntime-node (the caller checks). Run from the
# repository root; $SAN_FLAGS as in build_trainer_run.sh.
set -eu
b=$1 dir=$2
node_modules=$(cd "$b" && pwd)/node/node_modules
# tests/models/cifar_tiny.nn adds RGB input and per-channel normalize.
for model in tests/layers/*/*.nn tests/models/cifar_tiny.nn; do
    k=$(basename "$model" .nn)
    mkdir -p "$dir/$k"
    # fp32 throughout (conv_bf16.nn asks for bf16): the export's layouts are checked to 1e-5, and
    # bfloat16 products would differ from onnxruntime's fp32 by their rounding, ~1e-3.
    "$b/nnc" --precision fp32 "$model" -o "$dir/$k/$k.c"
    sh tests/tools/build_trainer_run.sh "$b" "$dir/$k/$k.c" "$dir/$k/run" tests/tools/onnx_random_run.c
    "$dir/$k/run" "$dir/$k" 300 >"$dir/$k/trainer.txt"
    echo "$k $(/usr/bin/python3 tests/tools/onnx_check.py "$dir/$k/w.onnx" "$k")"
    echo "$k $(NODE_PATH=$node_modules node tests/tools/onnx_run.js "$dir/$k/w.onnx" "$dir/$k/images.idx" \
        "$dir/$k/trainer.txt")"
done
