"""onnx_check.py - onnx.checker on an .onnx that a trainer exported (tests/test_interop.c).
Run with Debian's /usr/bin/python3 (python3-onnx):

  onnx_check.py W.onnx MODEL_NAME

Runs the full check (with shape inference) and checks what the export promises:
opset 13 or later, uint8 pixels [N][h][w][c] in, [N][classes] out, no Dropout.
Prints `onnx_checker OK OPSET NODES` or raises.
"""
import sys

import onnx


def main(path, name):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 13, opset
    graph = model.graph
    assert graph.name == name, graph.name
    (inp,) = graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8, inp
    assert len(inp.type.tensor_type.shape.dim) == 4, inp
    (out,) = graph.output
    assert len(out.type.tensor_type.shape.dim) == 2, out
    ops = [n.op_type for n in graph.node]
    assert "Dropout" not in ops, ops
    print("onnx_checker OK %d %d %s" % (opset, len(ops), ",".join(ops)))


if __name__ == "__main__":
    main(*sys.argv[1:])
