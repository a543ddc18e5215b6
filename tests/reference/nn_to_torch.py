"""nn_to_torch - build a PyTorch equivalent of an nnc model file (models/*.nn).

Used by the reference tests (tests/reference/make_fixtures.py) and by the
benchmark. Run with Debian's /usr/bin/python3 (python3-torch, PyTorch 1.13).

API
---
build_model(path) -> NNModel
    Parse `path` and return an `NNModel` (a torch.nn.Module, float32, training
    mode). Parameters start as PyTorch's defaults (BN: gamma 1, beta 0), not
    as nnc's initializers; use load_nnc_params() for exact values.

parse_nn(path) -> Spec
    The parsed file: spec.name, spec.input (h, w, c), spec.prep (None,
    ('scale', f), ('normalize',) or ('channels', means, stds)), spec.layers (list of Layer: kind, name,
    index, in_shape, out_shape and the layer's options), spec.loss
    ('crossentropy' | 'mse'), spec.batch, spec.optimizer (dict),
    spec.tensors [(name, offset, count)] exactly as nnc's param_tensors[],
    spec.n_params, spec.n_state.

NNModel (torch.nn.Module)
    forward(x, masks=None) -> the last layer's output [n][classes]
        (probabilities when the model ends in softmax).
        x: NHWC tensor [n][h][w][c] (or [n][h*w*c]) of *preprocessed* inputs,
        the same floats nnc's train_batch receives (scale/normalize are not
        part of the module; see preprocess()).
        masks: optional {layer_index: tensor} of dropout masks; a mask holds
        n*size elements in NHWC flat order (as nnc's mask buffers) and the
        layer multiplies by it (values 0 or 1/(1-rate)). Layers without a
        given mask use torch's own random dropout in training mode; in eval
        mode dropout is off.
    forward_logits(x, masks=None) -> (out, z): z is the input of the final
        softmax when the model ends in one (else z is out).
    loss(x, labels, masks=None) -> (loss, out): the batch-mean loss as nnc
        differentiates it, l1/l2 penalties included (the optimizer's
        weight_decay=W is an l2 of W / 2 on every kernel, as in nnc).
        Crossentropy is fused with softmax: its gradient is (p - onehot)/n
        like nnc's, its value uses p clipped to [1e-7, 1-1e-7]. MSE: mean
        over classes and batch.
    data_loss(out, labels) -> the batch-mean loss without penalties (float).
    preprocess(raw, mean=None, std=None): raw pixels (0..255) -> model input
        ('scale F': raw * F; 'normalize': (raw - mean) / std, nnc takes both over
        the training set; when not given they are taken over `raw` itself).
    load_nnc_params(flat, state=None): copy nnc's flat parameter buffer
        (numpy/torch/list, N_PARAMS floats) into the module, converting conv
        HWIO -> OIHW and dense [in][out] -> [out][in]; `state` (N_STATE:
        per BN layer running mean then variance) likewise.
    export_grads() -> numpy float64 [N_PARAMS]: the .grad of every parameter
        back in nnc's flat layout (zeros where a grad is None).
    export_params(), export_state() -> numpy float64 arrays in nnc layout.
    dropout_layers() -> [(layer_index, rate, size_per_sample)].
    nnc_masks(dropout_key, n) -> {layer_index: float32 numpy mask}: the masks
        nnc's train_batch draws for that step key (see nnc_dropout_mask).

nnc_hash_uniform(key, index) and nnc_dropout_mask(step_key, layer_index, n,
size, rate) reimplement runtime/rng.c and the generated dropout exactly
(64-bit integer arithmetic in numpy).

Layout facts mirrored here: activations NHWC; conv kernels [kh][kw][cin][cout];
dense kernels [in][out]; flatten of NHWC is row-major (h, w, c), so inside the
module image layers run in NCHW and are permuted back to NHWC before any
flatten; BN momentum in torch is 1 - keras momentum; 'same' padding is
TensorFlow's (extra row/column at the bottom/right).
"""
import math
import re
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["build_model", "parse_nn", "NNModel", "nnc_hash_uniform", "nnc_dropout_mask", "layer_dropout_key", "Spec", "Layer"]

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
KIND_PREFIX = {
    "dense": "dense", "conv": "conv2d", "maxpool": "max_pooling2d", "avgpool": "average_pooling2d",
    "flatten": "flatten", "dropout": "dropout", "batchnorm": "batch_normalization", "activation": "activation",
    "globalavgpool": "global_average_pooling2d",
}


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------

class Layer:
    def __init__(self, kind, index, name, line):
        self.kind = kind
        self.index = index
        self.name = name
        self.line = line
        self.act = "linear"
        self.in_shape = None  # (h, w, c); flat vectors are (1, 1, c)
        self.out_shape = None
        self.units = 0
        self.filters = 0
        self.kh = self.kw = 0
        self.sh = self.sw = 1
        self.same = False
        self.pad = (0, 0, 0, 0)  # top, bottom, left, right
        self.rate = 0.0
        self.momentum = 0.99
        self.eps = 1e-3
        self.l1 = 0.0
        self.l2 = 0.0
        self.n_weights = 0
        self.n_bias = 0
        self.n_state = 0
        self.param_offset = 0
        self.state_offset = 0
        self.implicit = False

    def __repr__(self):
        return "Layer(%s #%d %s %s->%s act=%s)" % (self.kind, self.index, self.name, self.in_shape, self.out_shape,
                                                 self.act)


class Spec:
    def __init__(self):
        self.name = None
        self.input = (28, 28, 1)
        self.prep = None
        self.layers = []
        self.loss = "crossentropy"
        self.batch = 32
        self.epochs = None
        self.optimizer = {"kind": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": False}
        self.tensors = []
        self.n_params = 0
        self.n_state = 0


def _is_flat(s):
    return s[0] == 1 and s[1] == 1


def _size(s):
    return s[0] * s[1] * s[2]


def _number(tok):
    if "/" in tok:
        a, b = tok.split("/", 1)
        return float(a) / float(b)
    return float(tok)


def _is_number(tok):
    return re.fullmatch(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?(/[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?)?", tok) is not None \
        or re.fullmatch(r"\.[0-9]+([eE][-+]?[0-9]+)?", tok) is not None


def _dims(tok):
    m = re.fullmatch(r"[0-9]+(x[0-9]+)+", tok)
    return [int(v) for v in tok.split("x")] if m else None


def _tokens(line):
    line = line.split("#", 1)[0]
    # `k = v` -> `k=v`
    line = re.sub(r"\s*=\s*", "=", line)
    return line.split()


def _f32(v):
    return float(np.float32(v))


def _conv_axis(n, k, stride, same):
    if same:
        out = (n + stride - 1) // stride
        total = (out - 1) * stride + k - n
        before = total // 2 if total > 0 else 0
        after = max(total, 0) - before
        return out, before, after
    return ((n - k) // stride + 1 if n >= k else 0), 0, 0


def parse_nn(path):
    """Parse an nnc model file into a Spec (shapes, offsets, recipe)."""
    spec = Spec()
    base = re.sub(r"\.[^./]*$", "", path.rsplit("/", 1)[-1])
    spec.name = re.sub(r"[^A-Za-z0-9]", "_", base)
    counters = {}
    cur = spec.input
    in_train = False
    with open(path) as f:
        lines = f.read().split("\n")

    def add(kind, line, implicit=False):
        counters[kind] = counters.get(kind, 0) + 1
        l = Layer(kind, len(spec.layers), "%s_%d" % (KIND_PREFIX[kind], counters[kind]), line)
        l.in_shape = cur
        l.implicit = implicit
        spec.layers.append(l)
        return l

    def weight_opt(l, k, v):
        if k in ("init", "bias_init"):
            return True
        if k in ("l1", "l2"):
            setattr(l, k, _f32(_number(v)))
            return True
        return False

    for lineno, raw in enumerate(lines, 1):
        toks = _tokens(raw)
        if not toks:
            continue
        head, args = toks[0], toks[1:]
        if in_train:
            if head == "loss":
                spec.loss = "mse" if args[0] == "mse" else "crossentropy"
            elif head == "batch":
                spec.batch = int(args[0])
            elif head == "epochs":
                spec.epochs = int(args[0])
            elif head == "optimizer":
                kind = args[0]
                o = {"kind": kind}
                if kind == "sgd":
                    o.update(lr=0.01, momentum=0.0, nesterov=False)
                elif kind == "adam":
                    o.update(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7)
                elif kind == "rmsprop":
                    o.update(lr=0.001, rho=0.9, eps=1e-7)
                for a in args[1:]:
                    if a == "nesterov":
                        o["nesterov"] = True
                    elif "=" in a:
                        k, v = a.split("=", 1)
                        o[k] = _number(v)
                spec.optimizer = o
            continue
        if head == "model":
            spec.name = args[0]
        elif head == "input":
            spec.input = tuple(_dims(args[0]))
            cur = spec.input
        elif head == "normalize":
            opts = dict(a.split("=", 1) for a in args if "=" in a)
            if "mean" in opts:  # per channel, torchvision's Normalize after ToTensor
                spec.prep = ("channels", [_f32(v) for v in opts["mean"].split(",")],
                             [_f32(v) for v in opts["std"].split(",")])
            else:
                spec.prep = ("normalize",)
        elif head == "scale":
            spec.prep = ("scale", _f32(_number(args[0])))
        elif head == "train":
            in_train = True
        elif head == "dense":
            if not _is_flat(cur):
                l = add("flatten", lineno, implicit=True)
                l.out_shape = (1, 1, _size(cur))
                cur = l.out_shape
            l = add("dense", lineno)
            have_units = False
            for a in args:
                if not have_units and _is_number(a):
                    l.units = int(_number(a))
                    have_units = True
                elif a in ACTIVATIONS:
                    l.act = a
                elif "=" in a and weight_opt(l, *a.split("=", 1)):
                    pass
                else:
                    raise ValueError("%s:%d: unexpected '%s' in dense" % (path, lineno, a))
            l.out_shape = (1, 1, l.units)
            l.n_weights = _size(cur) * l.units
            l.n_bias = l.units
            cur = l.out_shape
        elif head == "conv":
            l = add("conv", lineno)
            have_filters = have_kernel = False
            i = 0
            while i < len(args):
                a = args[i]
                if not have_filters and _is_number(a):
                    l.filters = int(_number(a))
                    have_filters = True
                elif not have_kernel and (_dims(a) or _is_number(a)):
                    d = _dims(a) or [int(_number(a))] * 2
                    l.kh, l.kw = d[0], d[1]
                    have_kernel = True
                elif a == "stride" and i + 1 < len(args):
                    l.sh = l.sw = int(args[i + 1])
                    i += 1
                elif a.startswith("stride="):
                    l.sh = l.sw = int(a.split("=", 1)[1])
                elif a in ("same", "valid"):
                    l.same = a == "same"
                elif a == "pad" and i + 1 < len(args):
                    l.same = args[i + 1] == "same"
                    i += 1
                elif a.startswith("pad="):
                    l.same = a.split("=", 1)[1] == "same"
                elif a in ACTIVATIONS:
                    l.act = a
                elif "=" in a and weight_opt(l, *a.split("=", 1)):
                    pass
                else:
                    raise ValueError("%s:%d: unexpected '%s' in conv" % (path, lineno, a))
                i += 1
            oh, pt, pb = _conv_axis(cur[0], l.kh, l.sh, l.same)
            ow, pl, pr = _conv_axis(cur[1], l.kw, l.sw, l.same)
            l.pad = (pt, pb, pl, pr)
            l.out_shape = (oh, ow, l.filters)
            l.n_weights = l.kh * l.kw * cur[2] * l.filters
            l.n_bias = l.filters
            cur = l.out_shape
        elif head in ("maxpool", "avgpool"):
            l = add(head, lineno)
            l.kh = l.kw = 2
            have_stride = False
            have_window = False
            i = 0
            while i < len(args):
                a = args[i]
                if not have_window and (_dims(a) or _is_number(a)):
                    d = _dims(a) or [int(_number(a))] * 2
                    l.kh, l.kw = d[0], d[1]
                    have_window = True
                elif a == "stride" and i + 1 < len(args):
                    l.sh = l.sw = int(args[i + 1])
                    have_stride = True
                    i += 1
                elif a.startswith("stride="):
                    l.sh = l.sw = int(a.split("=", 1)[1])
                    have_stride = True
                else:
                    raise ValueError("%s:%d: unexpected '%s' in %s" % (path, lineno, a, head))
                i += 1
            if not have_stride:
                l.sh, l.sw = l.kh, l.kw
            oh = (cur[0] - l.kh) // l.sh + 1 if cur[0] >= l.kh else 0
            ow = (cur[1] - l.kw) // l.sw + 1 if cur[1] >= l.kw else 0
            l.out_shape = (oh, ow, cur[2])
            cur = l.out_shape
        elif head == "globalavgpool":
            l = add("globalavgpool", lineno)
            l.out_shape = (1, 1, cur[2])
            cur = l.out_shape
        elif head == "flatten":
            l = add("flatten", lineno)
            l.out_shape = (1, 1, _size(cur))
            cur = l.out_shape
        elif head == "dropout":
            l = add("dropout", lineno)
            l.rate = _f32(_number(args[0]))
            l.out_shape = cur
        elif head == "batchnorm":
            l = add("batchnorm", lineno)
            for a in args:
                k, v = a.split("=", 1)
                if k == "momentum":
                    l.momentum = _f32(_number(v))
                elif k == "eps":
                    l.eps = _f32(_number(v))
                else:
                    raise ValueError("%s:%d: unknown batchnorm option '%s'" % (path, lineno, k))
            l.momentum = _f32(l.momentum)
            l.eps = _f32(l.eps)
            l.out_shape = cur
            l.n_weights = cur[2]
            l.n_bias = cur[2]
            l.n_state = 2 * cur[2]
        elif head in ACTIVATIONS:
            l = add("activation", lineno)
            l.act = head
            l.out_shape = cur
        else:
            raise ValueError("%s:%d: unknown statement '%s'" % (path, lineno, head))

    # weight_decay=W: an l2 of W / 2 added to every kernel's, as nnc's checker does (in float)
    decay = _f32(spec.optimizer.get("weight_decay", 0.0))
    if decay > 0:
        for l in spec.layers:
            if l.kind in ("dense", "conv"):
                l.l2 = _f32(l.l2 + _f32(decay / 2))

    p = s = 0
    for l in spec.layers:
        l.param_offset = p
        l.state_offset = s
        if l.kind in ("dense", "conv"):
            spec.tensors.append((l.name + ".kernel", p, l.n_weights))
            spec.tensors.append((l.name + ".bias", p + l.n_weights, l.n_bias))
        elif l.kind == "batchnorm":
            spec.tensors.append((l.name + ".gamma", p, l.n_weights))
            spec.tensors.append((l.name + ".beta", p + l.n_weights, l.n_bias))
        p += l.n_weights + l.n_bias
        s += l.n_state
    spec.n_params = p
    spec.n_state = s
    return spec


# --------------------------------------------------------------------------
# nnc's dropout masks, bit for bit
# --------------------------------------------------------------------------

_M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(x):
    """splitmix64 of runtime/rng.c on a numpy uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def nnc_hash_uniform(key, index):
    """runtime/rng.c's nnc_hash_uniform(key, index) for an int key and an int or array of indices.
    Returns float64 values that are exactly the float32 results."""
    idx = np.asarray(index, dtype=np.uint64)
    h = _splitmix64(np.uint64(key & _M64) ^ _splitmix64(idx))
    return (h >> np.uint64(40)).astype(np.float64) * (1.0 / 16777216.0)


def layer_dropout_key(step_key, layer_index):
    """dropout_key() of the generated code: step key ^ (golden * (layer + 1)) mod 2^64."""
    return (step_key ^ (GOLDEN * (layer_index + 1))) & _M64


def nnc_dropout_mask(step_key, layer_index, n, size, rate):
    """The float32 mask [n * size] nnc's dropout layer `layer_index` uses for step key `step_key`."""
    rate32 = np.float32(rate)
    keep = np.float32(1.0) / (np.float32(1.0) - rate32)
    u = nnc_hash_uniform(layer_dropout_key(step_key, layer_index), np.arange(n * size, dtype=np.uint64))
    return np.where(u < float(rate32), np.float32(0.0), keep).astype(np.float32)


# --------------------------------------------------------------------------
# The torch module
# --------------------------------------------------------------------------

def _act(x, act):
    if act == "relu":
        return F.relu(x)
    if act == "sigmoid":
        return torch.sigmoid(x)
    if act == "tanh":
        return torch.tanh(x)
    if act == "softmax":
        return torch.softmax(x, dim=1)
    return x


class NNModel(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.mods = nn.ModuleDict()
        for l in spec.layers:
            if l.kind == "dense":
                self.mods[l.name] = nn.Linear(_size(l.in_shape), l.units)
            elif l.kind == "conv":
                self.mods[l.name] = nn.Conv2d(l.in_shape[2], l.filters, (l.kh, l.kw), stride=(l.sh, l.sw))
            elif l.kind == "batchnorm":
                cls = nn.BatchNorm1d if _is_flat(l.in_shape) else nn.BatchNorm2d
                self.mods[l.name] = cls(l.in_shape[2], eps=l.eps, momentum=1.0 - l.momentum)
        # the final softmax: the last layer's activation (dense N softmax or a softmax layer)
        last = spec.layers[-1]
        self.ends_in_softmax = last.act == "softmax"

    # -- preprocessing -----------------------------------------------------
    def preprocess(self, raw, mean=None, std=None):
        x = torch.as_tensor(raw).to(self._dtype())
        p = self.spec.prep
        if p is None:
            return x
        if p[0] == "scale":
            return x * p[1]
        if p[0] == "channels":  # raw is NHWC (or flat NHWC rows): channels vary fastest
            c = len(p[1])
            mean_c = torch.tensor(p[1], dtype=x.dtype)
            std_c = torch.tensor(p[2], dtype=x.dtype)
            return ((x.reshape(-1, c) / 255 - mean_c) / std_c).reshape(x.shape)
        if mean is None or std is None:
            mean, std = float(x.mean()), float(x.std(unbiased=False))
        return (x - mean) / std

    def _dtype(self):
        for prm in self.parameters():
            return prm.dtype
        return torch.float32

    # -- forward -----------------------------------------------------------
    def forward_logits(self, x, masks=None):
        spec = self.spec
        n = x.shape[0]
        h, w, c = spec.input
        image = not _is_flat(spec.input)
        if image:
            x = x.reshape(n, h, w, c).permute(0, 3, 1, 2)  # NHWC -> NCHW
        else:
            x = x.reshape(n, c)
        z = None
        for l in spec.layers:
            last = l is spec.layers[-1]
            if l.kind == "conv":
                pt, pb, pl, pr = l.pad
                if pt or pb or pl or pr:
                    x = F.pad(x, (pl, pr, pt, pb))
                x = self.mods[l.name](x)
            elif l.kind == "maxpool":
                x = F.max_pool2d(x, (l.kh, l.kw), stride=(l.sh, l.sw))
            elif l.kind == "avgpool":
                x = F.avg_pool2d(x, (l.kh, l.kw), stride=(l.sh, l.sw))
            elif l.kind == "globalavgpool":
                x = x.mean(dim=(2, 3))  # NCHW -> [n][c]
            elif l.kind == "flatten":
                if x.dim() == 4:
                    x = x.permute(0, 2, 3, 1)  # back to NHWC: flatten order (h, w, c) as nnc
                x = x.reshape(n, -1)
            elif l.kind == "dense":
                x = self.mods[l.name](x)
            elif l.kind == "batchnorm":
                x = self.mods[l.name](x)
            elif l.kind == "dropout":
                mask = None if masks is None else masks.get(l.index)
                if mask is not None:
                    mask = torch.as_tensor(mask).to(x.dtype)
                    if x.dim() == 4:
                        oh, ow, oc = l.out_shape
                        mask = mask.reshape(n, oh, ow, oc).permute(0, 3, 1, 2)
                    else:
                        mask = mask.reshape(x.shape)
                    x = x * mask
                else:
                    x = F.dropout(x, l.rate, self.training)
            if x.dim() == 4 and _is_flat(l.out_shape):
                x = x.reshape(n, -1)  # a 1x1 image is a flat vector in nnc (pooling or conv down to 1x1)
            if last and self.ends_in_softmax:
                z = x
            x = _act(x, l.act)
        return x, (z if z is not None else x)

    def forward(self, x, masks=None):
        return self.forward_logits(x, masks)[0]

    # -- loss --------------------------------------------------------------
    def data_loss(self, out, labels):
        labels = torch.as_tensor(labels, dtype=torch.long)
        if self.spec.loss == "mse":
            onehot = F.one_hot(labels, out.shape[1]).to(out.dtype)
            return float(((out - onehot) ** 2).mean())
        py = out.gather(1, labels[:, None]).clamp(1e-7, 1 - 1e-7)
        return float(-torch.log(py).mean())

    def penalty(self):
        total = 0.0
        for l in self.spec.layers:
            if l.kind in ("dense", "conv") and (l.l1 or l.l2):
                wt = self.mods[l.name].weight
                if l.l1:
                    total = total + l.l1 * wt.abs().sum()
                if l.l2:
                    total = total + l.l2 * (wt * wt).sum()
        return total

    def loss(self, x, labels, masks=None):
        labels = torch.as_tensor(labels, dtype=torch.long)
        out, z = self.forward_logits(x, masks)
        if self.spec.loss == "mse":
            onehot = F.one_hot(labels, out.shape[1]).to(out.dtype)
            loss = ((out - onehot) ** 2).mean()
        else:
            if self.ends_in_softmax:
                # nnc: dL/dz = (p - onehot)/n, value with p clipped
                fused = F.cross_entropy(z, labels)
                py = out.gather(1, labels[:, None]).clamp(1e-7, 1 - 1e-7)
                clipped = -torch.log(py).mean()
                loss = fused + (clipped - fused).detach()
            else:
                py = out.gather(1, labels[:, None]).clamp(1e-7, 1 - 1e-7)
                loss = -torch.log(py).mean()
        return loss + self.penalty(), out

    # -- nnc's flat layout -------------------------------------------------
    def _tensor_pairs(self):
        """(torch parameter, nnc offset, nnc shape, to_torch permutation or None) per tensor."""
        out = []
        for l in self.spec.layers:
            p = l.param_offset
            if l.kind == "dense":
                m = self.mods[l.name]
                out.append((m.weight, p, (_size(l.in_shape), l.units), (1, 0)))
                out.append((m.bias, p + l.n_weights, (l.units,), None))
            elif l.kind == "conv":
                m = self.mods[l.name]
                out.append((m.weight, p, (l.kh, l.kw, l.in_shape[2], l.filters), (3, 2, 0, 1)))
                out.append((m.bias, p + l.n_weights, (l.filters,), None))
            elif l.kind == "batchnorm":
                m = self.mods[l.name]
                out.append((m.weight, p, (l.n_weights,), None))
                out.append((m.bias, p + l.n_weights, (l.n_bias,), None))
        return out

    @staticmethod
    def _inverse(perm):
        inv = [0] * len(perm)
        for i, v in enumerate(perm):
            inv[v] = i
        return tuple(inv)

    def load_nnc_params(self, flat, state=None):
        flat = torch.as_tensor(np.asarray(flat, dtype=np.float64))
        assert flat.numel() == self.spec.n_params, "expected %d params, got %d" % (self.spec.n_params, flat.numel())
        with torch.no_grad():
            for prm, off, shape, perm in self._tensor_pairs():
                count = int(np.prod(shape))
                t = flat[off:off + count].reshape(shape)
                if perm is not None:
                    t = t.permute(*perm)
                prm.copy_(t.to(prm.dtype))
            if state is not None:
                st = torch.as_tensor(np.asarray(state, dtype=np.float64))
                for l in self.spec.layers:
                    if l.kind == "batchnorm":
                        c = l.in_shape[2]
                        m = self.mods[l.name]
                        m.running_mean.copy_(st[l.state_offset:l.state_offset + c].to(m.running_mean.dtype))
                        m.running_var.copy_(st[l.state_offset + c:l.state_offset + 2 * c].to(m.running_var.dtype))

    def _export(self, getter):
        flat = np.zeros(self.spec.n_params, dtype=np.float64)
        for prm, off, shape, perm in self._tensor_pairs():
            t = getter(prm)
            if t is None:
                continue
            t = t.detach()
            if perm is not None:
                t = t.permute(*self._inverse(perm))
            flat[off:off + t.numel()] = t.reshape(-1).double().cpu().numpy()
        return flat

    def export_grads(self):
        return self._export(lambda p: p.grad)

    def export_params(self):
        return self._export(lambda p: p)

    def export_state(self):
        st = np.zeros(self.spec.n_state, dtype=np.float64)
        for l in self.spec.layers:
            if l.kind == "batchnorm":
                c = l.in_shape[2]
                m = self.mods[l.name]
                st[l.state_offset:l.state_offset + c] = m.running_mean.double().cpu().numpy()
                st[l.state_offset + c:l.state_offset + 2 * c] = m.running_var.double().cpu().numpy()
        return st

    def dropout_layers(self):
        return [(l.index, l.rate, _size(l.out_shape)) for l in self.spec.layers if l.kind == "dropout"]

    def nnc_masks(self, dropout_key, n):
        return {i: nnc_dropout_mask(dropout_key, i, n, size, rate) for i, rate, size in self.dropout_layers()}


def build_model(path):
    """The torch.nn.Module equivalent of the nnc model file at `path` (float32, training mode)."""
    model = NNModel(parse_nn(path))
    model.train()
    return model


if __name__ == "__main__":
    for p in sys.argv[1:]:
        m = build_model(p)
        print(m.spec.name, m.spec.input, m.spec.prep, "params", m.spec.n_params, "state", m.spec.n_state)
        for l in m.spec.layers:
            print("  ", l)
        for t in m.spec.tensors:
            print("   tensor", t)
