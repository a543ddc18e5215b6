"""interop_torch.py - the PyTorch and NumPy side of tests/test_interop.c.
Run with Debian's /usr/bin/python3 (python3-torch, numpy) from the repository root.

  to_torch MODEL.nn W.safetensors W.npz DATA TRAINER.txt
      Parse nnc's .safetensors (json + numpy.frombuffer: the `safetensors`
      package is not needed), load it into tests/reference/nn_to_torch.py's
      model, classify as many test images of DATA (raw IDX) as TRAINER.txt has
      lines and compare with them (trainer_run: argmax, probabilities). Prints
      `torch IMAGES DIFFERENT_ARGMAX MAX_PROB_DIFF` and `npz SAME` (or what differs).
  from_torch MODEL.nn OUT.safetensors DATA
      Train nn_to_torch's model in PyTorch from its default initialization
      (Adam, 32 steps of 64 images: enough for every seed model to learn;
      batchnorm's running statistics then averaged over DATA's training
      images), then write its state_dict (PyTorch's names with the
      `mods.` prefix and its layouts: OIHW convs, [out][in] linears, the linear
      after a flatten reading NCHW-flattened inputs as nn.Flatten gives)
      as .safetensors. Prints `torch_accuracy PERCENT` on DATA's test images.
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, "tests/reference")
import nn_to_torch  # noqa: E402


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", t
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
    return out, meta


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[a.dtype]
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def read_idx(path, header):
    raw = open(path, "rb").read()
    return np.frombuffer(raw[header:], dtype=np.uint8)


def images(data, prefix, n=None):
    x = read_idx("%s/%s-images-idx3-ubyte" % (data, prefix), 16).reshape(-1, 28, 28, 1)
    y = read_idx("%s/%s-labels-idx1-ubyte" % (data, prefix), 8)
    return (x, y) if n is None else (x[:n], y[:n])


def prep_constants(model, data):
    """nnc's: scale F, or the training set's mean and (population) std, rounded to float32."""
    p = model.spec.prep
    if p is None or p[0] == "scale":
        return None, None
    x, _ = images(data, "train")
    x = x.astype(np.float64)
    return float(np.float32(x.mean())), float(np.float32(x.std()))


def to_torch(nn_path, st_path, npz_path, data, trainer_txt):
    model = nn_to_torch.build_model(nn_path).eval()
    tensors, meta = read_safetensors(st_path)
    spec = model.spec
    flat = np.zeros(spec.n_params, dtype=np.float32)
    for name, off, count in spec.tensors:
        flat[off:off + count] = tensors[name].reshape(-1)
    state = np.zeros(spec.n_state, dtype=np.float32)
    for l in spec.layers:
        if l.kind == "batchnorm":
            c = l.in_shape[2]
            state[l.state_offset:l.state_offset + c] = tensors[l.name + ".moving_mean"]
            state[l.state_offset + c:l.state_offset + 2 * c] = tensors[l.name + ".moving_variance"]
    model.load_nnc_params(flat, state)
    mean = float(meta["prep_mean"]) if "prep_mean" in meta else None
    std = float(meta["prep_std"]) if "prep_std" in meta else None
    ref = np.loadtxt(trainer_txt, ndmin=2)
    x, _ = images(data, "t10k", len(ref))
    with torch.no_grad():
        probs = np.concatenate([model(model.preprocess(x[i:i + 1000].astype(np.float32), mean, std)).numpy()
                                for i in range(0, len(x), 1000)])
    mis = int((probs.argmax(1) != ref[:, 0].astype(int)).sum())
    print("torch %d %d %g" % (len(probs), mis, float(np.abs(probs - ref[:, 1:]).max())))
    z = np.load(npz_path)
    diff = [k for k in tensors if k + "" not in z.files or z[k].dtype != np.float32 or
            not np.array_equal(z[k], tensors[k])]
    diff += [k for k in z.files if k not in tensors]
    print("npz SAME" if not diff else "npz DIFFERENT %s" % diff)


def from_torch(nn_path, out_path, data):
    torch.manual_seed(3)
    model = nn_to_torch.build_model(nn_path)
    mean, std = prep_constants(model, data)
    x, y = images(data, "train")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for i in range(0, min(len(x), 2048), 64):
        xb = model.preprocess(x[i:i + 64].astype(np.float32), mean, std)
        loss, _ = model.loss(xb, y[i:i + 64].astype(np.int64))
        opt.zero_grad()
        loss.backward()
        opt.step()
    # 32 steps move running statistics with momentum 0.01 hardly at all: average them over the
    # training images instead (momentum None), so that inference mode predicts as well as it can.
    bns = [mod for mod in model.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    with torch.no_grad():
        for i in range(0, len(x) if bns else 0, 500):
            model(model.preprocess(x[i:i + 500].astype(np.float32), mean, std))
    model.eval()
    xt, yt = images(data, "t10k")
    with torch.no_grad():
        pred = np.concatenate([model(model.preprocess(xt[i:i + 1000].astype(np.float32), mean, std)).numpy().argmax(1)
                               for i in range(0, len(xt), 1000)])
    print("torch_accuracy %.2f" % (100.0 * float((pred == yt).mean())))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    # nn_to_torch's modules flatten NHWC as nnc does; a PyTorch model flattens NCHW
    # (nn.Flatten): write the linear after a flatten as such a model holds it.
    layers = model.spec.layers
    for prev, l in zip(layers, layers[1:]):
        if l.kind == "dense" and prev.kind == "flatten" and not nn_to_torch._is_flat(prev.in_shape):
            h, w, c = prev.in_shape
            wt = sd["mods.%s.weight" % l.name]
            sd["mods.%s.weight" % l.name] = wt.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(wt.shape[0], -1)
    write_safetensors(out_path, sd)


if __name__ == "__main__":
    {"to_torch": to_torch, "from_torch": from_torch}[sys.argv[1]](*sys.argv[2:])
