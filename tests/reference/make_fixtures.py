"""make_fixtures - PyTorch reference results for the reference tests: tests/test_reference_*.c (the
seed models) and tests/layers/KIND/reference.c (each kind's model).

Run from the repository root with Debian's python3-torch:

    /usr/bin/python3 tests/reference/make_fixtures.py        (make reference)
    /usr/bin/python3 tests/reference/make_fixtures.py tests/layers/conv/conv.nn ...   (only these)

For every model with a reference test, models/NAME.nn with tests/test_reference_NAME.c and every
tests/layers/KIND/KIND.nn, it builds the PyTorch equivalent (nn_to_torch.py), fills
parameters, BN running statistics and a batch of N inputs by formulas that C
reproduces bit for bit (nnc_hash_uniform of runtime/rng.c, rounded to float32),
uses nnc's own dropout masks for a fixed step key, runs one training step
(forward in training mode, loss, backward) in float64 and writes
tests/reference/fixtures/<model>.txt:

    model NAME
    n N
    n_params P
    n_state S
    dropout_key K
    labels N l0 l1 ...
    input COUNT KEY CENTER HALF          x[j] = (float)(CENTER + HALF * (2u - 1)), u = nnc_hash_uniform(KEY, j)
    param OFFSET COUNT KEY CENTER HALF   one line per parameter tensor, same formula over k in [0, COUNT)
    state OFFSET COUNT KEY CENTER HALF   BN running mean / variance before the step (if any)
    loss L                               batch-mean data loss (penalties excluded)
    probs N*CLASSES                      then that many values: the training-mode output [n][classes]
    infer N*CLASSES                      then the inference-mode output after the step (updated statistics)
    grad NAME OFFSET COUNT MAXABS K      then K lines `index value` (index in nnc's flat layout), K <= 128,
                                         index_k = OFFSET + k * COUNT / K + k % (COUNT / K)
    newstate OFFSET COUNT MAXABS K       then K lines `index value`: running statistics after the step
    end

and tests/reference/fixtures/optim.txt: three steps of SGD (plain, momentum 0.9,
Nesterov), Adam and RMSprop from torch.optim on a 16-element vector with
gradients of magnitude ~1e-2 (hyperparameters rounded to float32 as nnc holds them):

    n 16 steps 3
    p0 v0 .. v15                    the starting parameters (float32 values)
    grad1 .. / grad2 .. / grad3 ..  the gradient of each step (float32 values)
    optimizer NAME KIND LR MOMENTUM NESTEROV BETA1 BETA2 RHO EPS STRICT
    after1 .. / after2 .. / after3 ..   PyTorch's parameters after each step (float64)
    ...
    end
"""
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from nn_to_torch import build_model, nnc_hash_uniform  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "fixtures")
N = 4
DROPOUT_KEY = 12345
INPUT_KEY = 0x1A2B3C
PARAM_KEY = 0x5EED0000
STATE_KEY = 0x57A7E000
MAX_SAMPLES = 128


def fill(count, key, center, half):
    """(float)(center + half * (2u - 1)) in float64 arithmetic, as the C test computes it."""
    u = nnc_hash_uniform(key, np.arange(count, dtype=np.uint64))
    return (center + half * (2.0 * u - 1.0)).astype(np.float32).astype(np.float64)


def fmt(v):
    return "%.17g" % v


def param_formula(spec, t, name, count):
    """(key, center, half) for parameter tensor t."""
    key = PARAM_KEY + t
    layer = next(l for l in spec.layers if name.startswith(l.name + "."))
    if name.endswith(".kernel"):
        if layer.kind == "conv":
            fan_in = layer.kh * layer.kw * layer.in_shape[2]
        else:
            fan_in = layer.in_shape[0] * layer.in_shape[1] * layer.in_shape[2]
        return key, 0.0, math.sqrt(3.0 / fan_in)  # variance 1/fan_in (LeCun uniform)
    if name.endswith(".gamma"):
        return key, 1.0, 0.2
    return key, 0.0, 0.1  # bias, beta


def samples(offset, count):
    """Up to MAX_SAMPLES evenly spaced indices, each shifted within its gap by its rank so that a stride that is a
    multiple of a row (dense [in][out], conv [..][cout]) does not sample one output column only."""
    k = min(count, MAX_SAMPLES)
    gap = count // k
    return [offset + i * count // k + i % gap for i in range(k)]


def model_fixture(path):
    model = build_model(path).double()
    spec = model.spec
    h, w, c = spec.input
    lines = ["model " + spec.name, "n %d" % N, "n_params %d" % spec.n_params, "n_state %d" % spec.n_state,
             "dropout_key %d" % DROPOUT_KEY]

    labels = [(j * 7 + 1) % spec.layers[-1].out_shape[2] for j in range(N)]
    lines.append("labels %d %s" % (N, " ".join(str(v) for v in labels)))

    in_count = N * h * w * c
    x = fill(in_count, INPUT_KEY, 0.0, 1.0)
    lines.append("input %d %d %s %s" % (in_count, INPUT_KEY, fmt(0.0), fmt(1.0)))

    params = np.zeros(spec.n_params)
    for t, (name, off, count) in enumerate(spec.tensors):
        key, center, half = param_formula(spec, t, name, count)
        params[off:off + count] = fill(count, key, center, half)
        lines.append("param %d %d %d %s %s" % (off, count, key, fmt(center), fmt(half)))

    state = np.zeros(spec.n_state)
    for l in spec.layers:
        if l.kind == "batchnorm":
            ch = l.in_shape[2]
            key = STATE_KEY + 2 * l.index
            state[l.state_offset:l.state_offset + ch] = fill(ch, key, 0.0, 0.1)
            lines.append("state %d %d %d %s %s" % (l.state_offset, ch, key, fmt(0.0), fmt(0.1)))
            state[l.state_offset + ch:l.state_offset + 2 * ch] = fill(ch, key + 1, 1.0, 0.2)
            lines.append("state %d %d %d %s %s" % (l.state_offset + ch, ch, key + 1, fmt(1.0), fmt(0.2)))

    model.load_nnc_params(params, state)
    masks = {i: torch.from_numpy(m.astype(np.float64)) for i, m in model.nnc_masks(DROPOUT_KEY, N).items()}
    xt = torch.from_numpy(x.reshape(N, h, w, c))

    model.train()
    model.zero_grad()
    loss, out = model.loss(xt, labels, masks)
    loss.backward()
    data_loss = model.data_loss(out.detach(), labels)
    grads = model.export_grads()
    new_state = model.export_state()
    probs = out.detach().numpy().reshape(-1)

    model.eval()
    with torch.no_grad():
        infer = model(xt).numpy().reshape(-1)

    lines.append("loss %s" % fmt(data_loss))
    lines.append("probs %d" % probs.size)
    lines.extend("%.10g" % v for v in probs)
    lines.append("infer %d" % infer.size)
    lines.extend("%.10g" % v for v in infer)
    summary = []
    for name, off, count in spec.tensors:
        g = grads[off:off + count]
        idx = samples(off, count)
        maxabs = float(np.abs(g).max())
        lines.append("grad %s %d %d %s %d" % (name, off, count, "%.10g" % maxabs, len(idx)))
        lines.extend("%d %.9g" % (i, grads[i]) for i in idx)
        summary.append((name, maxabs))
    if spec.n_state:
        idx = samples(0, spec.n_state)
        lines.append("newstate 0 %d %.10g %d" % (spec.n_state, float(np.abs(new_state).max()), len(idx)))
        lines.extend("%d %.9g" % (i, new_state[i]) for i in idx)
    lines.append("end")

    dest = os.path.join(OUT, spec.name + ".txt")
    with open(dest, "w") as f:
        f.write("\n".join(lines) + "\n")
    dead = [name for name, m in summary if m == 0.0]
    print("%-14s loss %.6f  max prob %.3f  %6d bytes%s" % (spec.name, data_loss, probs.max(), os.path.getsize(dest),
                                                          ("  ZERO GRADS: " + ", ".join(dead)) if dead else ""))


# --------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------

OPT_N = 16
OPT_STEPS = 3

# name, nnc kind (0 sgd, 1 adam, 2 rmsprop), lr, momentum, nesterov, beta1, beta2, rho, eps, strict.
# strict 1: the C test also compares the displacement p_t - p_0 at 1e-4 of its largest entry.
# Keras's Adam (nnc) divides by sqrt(v) + eps, PyTorch's by sqrt(v) + eps * sqrt(1 - beta2^t) (bias-corrected
# form): with eps = 1e-7 and gradients ~1e-2 that moves a step by up to ~1.5e-3 of its size (1.5e-5 in the
# parameters, within the 1e-4 parameter tolerance but not the strict one), so Adam is also run with eps 1e-10,
# where the two coincide to ~1e-6, for the strict check.
OPTIMIZERS = [
    ("sgd", 0, 0.5, 0.0, 0, 0.0, 0.0, 0.0, 0.0, 1),
    ("sgd_momentum", 0, 0.5, 0.9, 0, 0.0, 0.0, 0.0, 0.0, 1),
    ("sgd_nesterov", 0, 0.5, 0.9, 1, 0.0, 0.0, 0.0, 0.0, 1),
    ("adam", 1, 0.01, 0.0, 0, 0.9, 0.999, 0.0, 1e-7, 0),
    ("adam_eps1e-10", 1, 0.01, 0.0, 0, 0.9, 0.999, 0.0, 1e-10, 1),
    ("rmsprop", 2, 0.01, 0.0, 0, 0.0, 0.0, 0.9, 1e-7, 1),
]


def f32(v):
    return float(np.float32(v))


def optim_fixture():
    p0 = fill(OPT_N, 0x0B7100, 0.0, 1.0)
    grads = [fill(OPT_N, 0x0B7101 + s, 0.0, 0.02) for s in range(OPT_STEPS)]
    lines = ["n %d steps %d" % (OPT_N, OPT_STEPS)]
    lines.append("p0 " + " ".join(fmt(v) for v in p0))
    for s in range(OPT_STEPS):
        lines.append("grad%d %s" % (s + 1, " ".join(fmt(v) for v in grads[s])))
    for name, kind, lr, mom, nest, b1, b2, rho, eps, strict in OPTIMIZERS:
        # the hyperparameters nnc sees are float32
        lr, mom, b1, b2, rho, eps = (f32(v) for v in (lr, mom, b1, b2, rho, eps))
        p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        if kind == 0:
            opt = torch.optim.SGD([p], lr=lr, momentum=mom, nesterov=bool(nest))
        elif kind == 1:
            opt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps)
        else:
            opt = torch.optim.RMSprop([p], lr=lr, alpha=rho, eps=eps)
        lines.append("optimizer %s %d %s %s %d %s %s %s %s %d" % (name, kind, fmt(lr), fmt(mom), nest, fmt(b1),
                                                                 fmt(b2), fmt(rho), fmt(eps), strict))
        for s in range(OPT_STEPS):
            p.grad = torch.tensor(grads[s], dtype=torch.float64)
            opt.step()
            lines.append("after%d %s" % (s + 1, " ".join(fmt(v) for v in p.detach().numpy())))
    lines.append("end")
    dest = os.path.join(OUT, "optim.txt")
    with open(dest, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%-14s %d optimizers x %d steps  %6d bytes" % ("optim", len(OPTIMIZERS), OPT_STEPS, os.path.getsize(dest)))


def tested_models():
    """The seed models that have a reference test, then every kind's model (tests/layers/KIND/KIND.nn)."""
    seeds = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "models")) if f.endswith(".nn"))
    paths = [os.path.join(ROOT, "models", m + ".nn") for m in seeds
             if os.path.exists(os.path.join(ROOT, "tests", "test_reference_%s.c" % m))]
    layers = os.path.join(ROOT, "tests", "layers")
    for kind in sorted(os.listdir(layers)):
        path = os.path.join(layers, kind, kind + ".nn")
        if os.path.exists(path):
            paths.append(path)
    return paths


def main(args):
    torch.set_num_threads(1)  # one reduction order: the same fixture bytes on every run
    os.makedirs(OUT, exist_ok=True)
    for path in args or tested_models():
        model_fixture(path)
    if not args:
        optim_fixture()


if __name__ == "__main__":
    main(sys.argv[1:])
