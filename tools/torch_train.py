#!/usr/bin/python3
"""torch_train.py - a model file's recipe trained by PyTorch, for side-by-side time-to-accuracy.

    /usr/bin/python3 tools/torch_train.py MODEL.nn [--data DIR] [--epochs N] [--seed N] [--threads N]

The peer of an nnc trainer in the README's time-to-accuracy table
(tools/time_to_accuracy.py runs both). The same model (tests/reference/nn_to_torch.py),
the same recipe read from the model file's train block: loss, optimizer and its
settings, batch, epochs, schedule (phases, step, cosine, onecycle, with nnc's
formulas of runtime/optim.c), augmentation (rotation, shift, zoom,
sampled bilinearly with edge pixels extended, as runtime/augment.c does) and
preprocessing. Not the same random numbers: initialization, shuffling, dropout
and augmentation draws are PyTorch's own.

PyTorch in its strongest configuration on this machine (see tools/bench.py):
--threads threads (default: every core), channels_last weights (the inputs are
NHWC already), torch.set_flush_denormal(True); run it with tools/bench.sh's
OpenMP OpenBLAS on LD_LIBRARY_PATH and its tcmalloc in LD_PRELOAD
(tools/time_to_accuracy.py does).

Prints one line per epoch in the nnc trainer's format
    epoch  3/10  lr 0.01  loss 0.0415  acc 98.85%  test_loss 0.0422  test_acc 98.87%  4.9 s  12924 img/s
and `test accuracy X%` at the end.
"""
import argparse
import gzip
import math
import os
import re
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import nn_to_torch  # noqa: E402

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def find_data(given):
    """The trainer's search order: --data, $NNC_DATA, ./data/mnist, ../shared/data/mnist."""
    for d in (given, os.environ.get("NNC_DATA"), "data/mnist", os.path.join(ROOT, "..", "shared", "data", "mnist")):
        if d and os.path.exists(os.path.join(d, MNIST_FILES["train"][0] + ".gz")):
            return d
    sys.exit("torch_train.py: MNIST not found (give --data DIR)")


def read_idx(path):
    with gzip.open(path + ".gz", "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(d, part):
    images, labels = (read_idx(os.path.join(d, f)) for f in MNIST_FILES[part])
    return torch.from_numpy(images.copy()).reshape(-1, 28, 28, 1), torch.from_numpy(labels.astype(np.int64))


def parse_recipe(path):
    """The train block's schedule, epochs, seed and augment settings (nn_to_torch reads the rest)."""
    r = {"schedule": ("constant",), "epochs": 10, "seed": 1, "augment": {}, "weight_decay": 0.0}
    in_train = False
    with open(path) as f:
        for raw in f:
            toks = raw.split("#", 1)[0].split()
            if not toks:
                continue
            if toks[0] == "train":
                in_train = True
                continue
            if not in_train:
                continue
            kv = dict(t.split("=", 1) for t in toks[1:] if "=" in t)
            if toks[0] == "epochs":
                r["epochs"] = int(toks[1])
            elif toks[0] == "seed":
                r["seed"] = int(toks[1])
            elif toks[0] == "augment":
                r["augment"] = {k: float(v) for k, v in kv.items()}
            elif toks[0] == "optimizer":
                r["weight_decay"] = float(kv.get("weight_decay", 0.0))
            elif toks[0] == "schedule":
                kind = toks[1]
                if re.match(r"^[0-9]+:", kind):
                    phases = [(int(e), float(lr)) for e, lr in (t.split(":") for t in toks[1:])]
                    r["schedule"] = ("phases", phases)
                    r["epochs"] = sum(e for e, _ in phases)
                elif kind == "cosine":
                    r["schedule"] = ("cosine", float(kv.get("min_lr", 0.0)))
                elif kind == "onecycle":
                    r["schedule"] = ("onecycle", float(kv["max_lr"]))
                elif kind == "step":
                    r["schedule"] = ("step", int(kv.get("every", 1)), float(kv.get("factor", 0.1)))
    return r


def cosine_between(a, b, t):
    """Half a cosine from a at t = 0 down to b at t = 1 (runtime/optim.c)."""
    t = min(max(t, 0.0), 1.0)
    return b + (a - b) * 0.5 * (1 + math.cos(math.pi * t))


def schedule_lr(sched, lr, epochs, epoch):
    """runtime/optim.c's nnc_schedule_lr_at: the learning rate of a (0-based) epoch; one cycle
    takes a fractional epoch (epoch + step / steps) and moves every step."""
    last = epochs - 1 if epochs > 1 else 1
    kind = sched[0]
    if kind == "phases":
        for n, phase_lr in sched[1]:
            if epoch < n:
                return phase_lr
            epoch -= n
        return sched[1][-1][1]
    if kind == "cosine":
        return cosine_between(lr, sched[1], epoch / last)
    if kind == "onecycle":  # per step: epoch is fractional
        u = epoch / max(epochs, 1)
        if u <= 0.3:
            return cosine_between(sched[1], lr, 1.0 - u / 0.3)
        return cosine_between(sched[1], lr / 1e4, (u - 0.3) / 0.7)
    if kind == "step":
        return lr * sched[2] ** (epoch // sched[1])
    return lr


def augment(x, a, gen):
    """Random rotation (degrees), shift (fraction of the size) and zoom per image of an NCHW batch."""
    n = x.shape[0]
    rot = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(a.get("rotation", 0.0))
    sx = (torch.rand(n, generator=gen) * 2 - 1) * a.get("width_shift", a.get("shift", 0.0)) * 2
    sy = (torch.rand(n, generator=gen) * 2 - 1) * a.get("height_shift", a.get("shift", 0.0)) * 2
    z = 1 + (torch.rand(n, generator=gen) * 2 - 1) * a.get("zoom", 0.0)
    cos, sin = torch.cos(rot) * z, torch.sin(rot) * z
    theta = torch.stack([torch.stack([cos, -sin, sx], 1), torch.stack([sin, cos, sy], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    recipe = parse_recipe(a.model)
    epochs = a.epochs or recipe["epochs"]
    torch.manual_seed(a.seed if a.seed is not None else recipe["seed"])
    gen = torch.Generator().manual_seed(a.seed if a.seed is not None else recipe["seed"])

    d = find_data(a.data)
    train_raw, train_y = load(d, "train")
    test_raw, test_y = load(d, "test")
    model = nn_to_torch.build_model(a.model).to(memory_format=torch.channels_last)
    spec = model.spec
    mean, std = float(train_raw.float().mean()), float(train_raw.float().std(unbiased=False))
    train_x = model.preprocess(train_raw, mean, std).float()
    test_x = model.preprocess(test_raw, mean, std).float()

    o = spec.optimizer
    decayed = [p for p in model.parameters() if p.dim() > 1]  # kernels, as nnc's weight_decay
    others = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": decayed, "weight_decay": recipe["weight_decay"]}, {"params": others, "weight_decay": 0.0}]
    if o["kind"] == "adam":
        opt = torch.optim.Adam(groups, lr=o["lr"], betas=(o.get("beta1", 0.9), o.get("beta2", 0.999)),
                               eps=o.get("eps", 1e-7))
    elif o["kind"] == "rmsprop":
        opt = torch.optim.RMSprop(groups, lr=o["lr"], alpha=o.get("rho", 0.9), eps=o.get("eps", 1e-7))
    else:
        opt = torch.optim.SGD(groups, lr=o["lr"], momentum=o.get("momentum", 0.0), nesterov=bool(o.get("nesterov")))

    def loss_of(x, y):
        out, logits = model.forward_logits(x)
        if spec.loss == "mse":
            loss = F.mse_loss(out, F.one_hot(y, out.shape[1]).to(out.dtype))
        else:
            loss = F.cross_entropy(logits, y)
        p = model.penalty()
        return (loss + p if torch.is_tensor(p) else loss), out

    n, batch = train_x.shape[0], spec.batch
    h, w, c = spec.input
    for epoch in range(epochs):
        lr = schedule_lr(recipe["schedule"], o["lr"], epochs, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        total, correct, seen = 0.0, 0, 0
        steps = (n + batch - 1) // batch
        for k in range(steps):  # the last batch holds what is left, as nnc's
            if recipe["schedule"][0] == "onecycle":
                for g in opt.param_groups:
                    g["lr"] = schedule_lr(recipe["schedule"], o["lr"], epochs, epoch + k / steps)
            idx = order[k * batch:(k + 1) * batch]
            x = train_x[idx]
            if recipe["augment"]:
                x = augment(x.permute(0, 3, 1, 2), recipe["augment"], gen).permute(0, 2, 3, 1)
            y = train_y[idx]
            opt.zero_grad(set_to_none=True)
            loss, out = loss_of(x, y)
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            correct += int((out.argmax(1) == y).sum())
            seen += len(idx)
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.inference_mode():
            outs = torch.cat([model.forward_logits(test_x[s:s + 1000])[0] for s in range(0, len(test_x), 1000)])
        test_acc = float((outs.argmax(1) == test_y).float().mean())
        test_loss = float(F.nll_loss(torch.log(outs.clamp_min(1e-7)), test_y))
        print("epoch %2d/%d  lr %g  loss %.4f  acc %.2f%%  test_loss %.4f  test_acc %.2f%%  %.1f s  %.0f img/s"
              % (epoch + 1, epochs, lr, total / seen, 100.0 * correct / seen, test_loss, 100 * test_acc, seconds,
                 seen / seconds), flush=True)
    print("test accuracy %.2f%% (error %.2f%%)" % (100 * test_acc, 100 - 100 * test_acc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
