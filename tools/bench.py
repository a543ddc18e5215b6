#!/usr/bin/python3
"""bench.py - `make bench`: every model's nnc trainer against PyTorch, measured in one run.

    /usr/bin/python3 tools/bench.py [--seconds S] [--rounds R] [--threads N] [--no-torch] [--out build/bench.md]
                                    [--no-decode | --decode-only]

Builds nothing: `make bench` builds the trainers first (build/bin/<model>).
For each models/<name>.nn, in turn:

  nnc      build/bin/<name> --bench (see runtime/train.c, nnc_bench): synthetic
           data; steady-state training steps (forward, backward, optimizer
           update) and inference at the recipe's batch, each the median
           images/s of timed windows after a warm-up; the whole epoch loop
           (shuffle, uint8 -> float conversion, steps); the peak RSS. Once
           per thread count from 1 to --threads; training and inference
           figures are the best thread count's (on a loaded machine 1 thread
           can beat 2), the epoch figure comes with training's.
  PyTorch  the same model from tests/reference/nn_to_torch.py (build_model),
           the same batch and optimizer, synthetic data, timed the same way,
           at the same learning rate (the trainer's `bench train_lr`: 0, so
           that the weights stay as initialized on both sides; see nnc_bench).
           Its strongest configuration here: Debian's OpenMP OpenBLAS on its
           library path, flush_denormal, a warm-up of at least 10 steps; and
           several configurations screened briefly (1 or 2 threads, OpenBLAS's
           pool at 1 thread or as many as torch's, default or channels_last
           memory format); the best one for training and the best one for
           inference are then measured like nnc.

Last, the decode rate of image folders: MNIST's training set written once as PNG and as JPEG
(quality 95) folders under build/bench-folders/ (tests/tools/idx_to_folders.c; never committed),
loaded by build/tools/decode_bench (nnc_folder_load, the trainer's loader, 2 threads) in --rounds
rounds after an untimed one; images/s, median and range. Skipped, with the reason, without MNIST.

Each model is measured in --rounds rounds (3), nnc and PyTorch alternating;
the table gives each side's median over the rounds with its range. Running the
two sides back to back keeps each ratio's two sides close in time: on this
shared machine absolute numbers drift, ratios measured in one run are what
count.

The table goes to stdout and to build/bench.md (with the configurations tried).
Without torch (or without tests/reference/nn_to_torch.py) the PyTorch columns
are left out and the output says why.

PyTorch's loss: CrossEntropyLoss on the logits (the module's forward_logits
gives the input of the final softmax). That is PyTorch's idiomatic and fastest
form and does the same work as nnc's fused softmax-crossentropy gradient; the
extra softmax forward_logits also returns costs a few hundred FLOPs per image.
Without forward_logits: NLLLoss on the log of the (clamped) softmax output.
MSE models: MSELoss against one-hot labels, as nnc.

Peak FLOP/s: 2 cores x 2 FMA pipes x 16 lanes x 2 FLOP x ~3.75 GHz = ~480
GFLOP/s (see /work/shared/PERF-NOTES.md). Training FLOPs per image are taken as
3 x the forward multiply-adds x 2 (forward, input gradient, weight gradient).
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REFERENCE = os.path.join(ROOT, "tests", "reference", "nn_to_torch.py")
OPENMP_BLAS_DIR = os.path.join(ROOT, "build", "openblas-openmp", "usr", "lib", "x86_64-linux-gnu", "openblas-openmp")
# The allocators PyTorch's CPU tuning guide recommends preloading (Debian's packages, unpacked
# under build/torch-malloc/ by tools/bench.sh); "glibc" is the process's own malloc. tcmalloc is
# the default because it measured best here: in two runs of mnist_fast and vgg_bn on the Zen 4
# (2026-12-03), PyTorch trained mnist_fast at 5,200-6,200 img/s with tcmalloc, 3,100-3,600 with
# glibc and 2,100-3,000 with jemalloc, vgg_bn at 1,700-1,750, 1,400-1,900 and 1,050-1,300.
TORCH_MALLOC_DIR = os.path.join(ROOT, "build", "torch-malloc", "usr", "lib", "x86_64-linux-gnu")
TORCH_MALLOCS = {"jemalloc": "libjemalloc.so.2", "tcmalloc": "libtcmalloc_minimal.so.4", "glibc": None}
PEAK_GFLOPS = 480.0


def torch_library_env(env, malloc="tcmalloc"):
    """Set up env (a dict) for a PyTorch process in its strongest configuration here."""
    # Debian's OpenMP build of OpenBLAS (tools/bench.sh unpacks it under build/), first on the
    # library path of this process only: it then shares libgomp's pool with PyTorch instead
    # of running its own pthread pool beside it.
    if os.path.isdir(OPENMP_BLAS_DIR):
        env["LD_LIBRARY_PATH"] = OPENMP_BLAS_DIR + ":" + env.get("LD_LIBRARY_PATH", "")
    # glibc's malloc returns PyTorch's large activation buffers to the kernel and faults them
    # back in at every step, at a cost that depends on what the process allocated before (the
    # same model measured 2,823 and 7,977 img/s in two rows of one run); tcmalloc keeps them.
    lib = TORCH_MALLOCS[malloc] and os.path.join(TORCH_MALLOC_DIR, TORCH_MALLOCS[malloc])
    if lib and os.path.exists(lib):
        env["LD_PRELOAD"] = lib + (":" + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    return env

# The timing scheme, the same on both sides (runtime/train.c's BENCH_*).
WARMUP_STEPS = 3
WARMUP_SHARE = 0.15
WINDOWS = 7
MIN_WINDOWS = 3
SHARE_TRAIN = 0.45
SHARE_INFER = 0.20
# PyTorch's screening of configurations: this share of --seconds per configuration,
# and a lighter scheme, so that a hopeless configuration (2 threads on a loaded
# machine can be 10x slower) costs a few steps, not seconds.
SCREEN_SHARE_TRAIN = 0.12
SCREEN_SHARE_INFER = 0.06
SCREEN_WARMUP_STEPS = 2
SCREEN_WINDOWS = 3
SCREEN_MIN_WINDOWS = 1
POOL_BATCHES = 8
# PyTorch's measured runs warm up for at least this many steps (oneDNN's primitives).
TORCH_WARMUP_STEPS = 10
# Each model is measured ROUNDS times, nnc and PyTorch alternating; the table
# gives each side's median over the rounds and its spread (min-max).
ROUNDS = 3


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The nnc side
# --------------------------------------------------------------------------

def parse_bench_lines(text):
    """`bench KEY VALUE...` lines -> {KEY: "VALUE..."}."""
    out = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "bench":
            out[parts[1]] = parts[2].strip()
    return out


def run_nnc(binary, seconds, threads, env=None):
    cmd = [binary, "--bench", "--bench-seconds", "%g" % seconds, "--threads", str(threads)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    b = parse_bench_lines(p.stdout)
    for key in ("batch", "train_img_s", "infer_img_s", "max_rss_kb", "optimizer", "input", "classes"):
        if key not in b:
            raise RuntimeError("%s printed no 'bench %s' line" % (binary, key))
    return b


def forward_macs(name, nnc):
    """Forward multiply-adds per image: the generated file's header (exact), else `nnc --summary`."""
    try:
        with open(os.path.join(ROOT, "generated", name + ".c")) as f:
            head = f.read(4096)
        m = re.search(r"Forward pass: ([0-9]+) multiply-adds per image", head)
        if m:
            return int(m.group(1))
    except OSError:
        pass
    try:
        p = subprocess.run([nnc, "--summary", os.path.join(ROOT, "models", name + ".nn")], capture_output=True,
                           text=True)
        m = re.search(r"Forward pass: ([0-9.]+) M multiply-adds per image", p.stdout)
        if m:
            return int(float(m.group(1)) * 1e6)
    except OSError:
        pass
    return None


def parse_optimizer(text):
    """'sgd lr=0.01 momentum=0 nesterov=0' -> {'kind': 'sgd', 'lr': 0.01, ...}."""
    words = text.split()
    opt = {"kind": words[0]}
    for w in words[1:]:
        k, v = w.split("=", 1)
        opt[k] = float(v)
    return opt


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------

def cpu_description():
    model, family, cpu_model, flags = platform.processor() or "?", None, None, ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name" and model in ("?", "", "x86_64"):
                    model = v
                elif k == "cpu family" and family is None:
                    family = int(v)
                elif k == "model" and cpu_model is None:
                    cpu_model = int(v)
                elif k == "flags" and not flags:
                    flags = v
    except OSError:
        pass
    desc = model
    if family is not None:
        # AMD family 0x1A is Zen 5, 0x19 Zen 3/4, 0x17 Zen 1/2.
        zen = {0x1A: "Zen 5", 0x19: "Zen 3/4", 0x17: "Zen 1/2"}.get(family) if "AMD" in model else None
        desc += " (family %d model %d%s)" % (family, cpu_model or 0, ", " + zen if zen else "")
    simd = "AVX-512" if "avx512f" in flags.split() else "AVX2" if "avx2" in flags.split() else "no AVX2"
    return desc, simd


def machine_line():
    desc, simd = cpu_description()
    cores = os.cpu_count()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = ", %.1f GiB RAM" % (kb / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg()[0]
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return ("Machine: %s, %d cores, %s%s, Linux %s; %s; a shared machine: compare the ratios, measured back to "
            "back, not the absolutes; load average %.2f at the start"
            % (desc, cores, simd, mem, platform.release(), now, load))


def software_line(torch_info):
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cc = "cc ?"
    parts = ["nnc trainers: %s, -O3 -march=native -fopenmp" % cc]
    if torch_info:
        parts.append("PyTorch %s (oneDNN), /usr/bin/python3, BLAS %s, allocator %s, flush_denormal %s" % (
            torch_info.get("version", "?"), torch_info.get("blas", "?"), torch_info.get("malloc", "?"),
            torch_info.get("flush_denormal", "?")))
    parts.append("OPENBLAS_CORETYPE=%s" % os.environ.get("OPENBLAS_CORETYPE", "(unset)"))
    return "Software: " + "; ".join(parts)


# --------------------------------------------------------------------------
# The PyTorch side: a worker process, fed one JSON request per line
# --------------------------------------------------------------------------

# A trainer built for AVX2 without AVX-512 (-march=x86-64-v3) runs as it would on a machine without
# AVX-512, and so does its peer: oneDNN's kernels, ATen's vectorized ones and OpenBLAS's capped at AVX2
# (oneDNN reads the variable when it starts: a worker of its own). Against PyTorch's AVX-512 kernels
# the row would compare two instruction sets, not two frameworks.
AVX2_PEER_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Haswell"}
AVX2_PEER_TEXT = " ".join("%s=%s" % kv for kv in AVX2_PEER_ENV.items())  # for the log and the table's notes
AVX2_MARCHES = ("x86-64-v3", "haswell")


class TorchWorker:
    """tools/bench.py --torch-worker in a child process, so that its thread pools
    are configured from the start and torch never loads into the process that
    launches the nnc trainers."""

    def __init__(self, reference, threads, malloc, isa=None):
        env = dict(os.environ)
        # One OpenMP pool sized for the machine; torch.set_num_threads picks 1 or 2
        # per configuration and OpenBLAS's pool is set through its API to match.
        env["OMP_NUM_THREADS"] = str(threads)
        env["OPENBLAS_NUM_THREADS"] = str(threads)
        env.pop("MKL_NUM_THREADS", None)
        if isa == "avx2":
            env.update(AVX2_PEER_ENV)
        torch_library_env(env, malloc)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--torch-worker",
                                      "--reference", reference, "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.hello = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            return {"error": "the PyTorch worker exited (status %s)" % self.proc.returncode}
        return json.loads(line)

    def request(self, req):
        if self.proc.poll() is not None:
            return {"error": "the PyTorch worker is not running"}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def measure(step, batch, budget, warmup_steps=WARMUP_STEPS, max_windows=WINDOWS, min_windows=MIN_WINDOWS,
            now=time.perf_counter):
    """The scheme of runtime/train.c's bench_measure: warm up (at least
    warmup_steps steps and WARMUP_SHARE of the budget), take the pace of the
    warm-up steps after the first, spend the rest on max_windows windows of
    whole steps (fewer, down to min_windows, when one step is longer than a
    window). Returns {median, min, max, windows, steps} in images/s."""
    i = 0
    start = now()
    step(i)
    i += 1
    pace_start = now()
    while i < max(warmup_steps, 2) or now() - start < WARMUP_SHARE * budget:
        step(i)
        i += 1
    per_step = max((now() - pace_start) / (i - 1), 1e-9)
    left = budget - (now() - start)
    steps = int(left / max_windows / per_step)
    windows = max_windows
    if steps < 1:
        steps = 1
        windows = min(max(int(left / per_step), min_windows), max_windows)
    rates = []
    for _ in range(windows):
        t0 = now()
        for _ in range(steps):
            step(i)
            i += 1
        rates.append(steps * batch / max(now() - t0, 1e-9))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "windows": windows,
            "steps": steps}


def loaded_blas():
    """The BLAS library this process mapped (the OpenMP or the pthread OpenBLAS)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line and "/" in line}
    except OSError:
        return "?"
    return ", ".join(sorted(p for p in paths if "libopenblas" in p or "libblas" in p)) or "?"


def loaded_malloc():
    """The preloaded allocator this process mapped, or glibc's malloc."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "malloc" in line and "/" in line}
    except OSError:
        return "?"
    return ", ".join(sorted(os.path.basename(p) for p in paths)) or "glibc malloc"


def torch_worker_main(reference, threads):
    """Answer one JSON request per stdin line with one JSON line on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the reference module prints must not corrupt the protocol

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        import ctypes
        import importlib.util

        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means "no PyTorch here"
        reply({"error": "import torch failed: %s" % e})
        return 0
    try:
        spec = importlib.util.spec_from_file_location("nn_to_torch", reference)
        ref = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ref)
        build_model = ref.build_model
    except Exception as e:  # noqa: BLE001
        reply({"error": "cannot load %s: %s" % (os.path.relpath(reference, ROOT), e), "version": torch.__version__})
        return 0

    blas_set = None
    for lib in ("libopenblas.so.0", "libopenblas.so"):
        try:
            blas_set = ctypes.CDLL(lib).openblas_set_num_threads
            break
        except (OSError, AttributeError):
            pass
    # Denormals cost oneDNN and OpenBLAS dearly and change no result here.
    denormal = torch.set_flush_denormal(True)
    reply({"version": torch.__version__, "openblas_api": blas_set is not None, "flush_denormal": denormal,
           "blas": loaded_blas(), "malloc": loaded_malloc()})

    def make_optimizer(params, o):
        kind = o["kind"]
        if kind == "sgd":
            return torch.optim.SGD(params, lr=o["lr"], momentum=o.get("momentum", 0.0),
                                   nesterov=bool(o.get("nesterov", 0)))
        if kind == "adam":
            return torch.optim.Adam(params, lr=o["lr"], betas=(o.get("beta1", 0.9), o.get("beta2", 0.999)),
                                    eps=o.get("eps", 1e-7))
        if kind == "rmsprop":
            return torch.optim.RMSprop(params, lr=o["lr"], alpha=o.get("rho", 0.9), eps=o.get("eps", 1e-7))
        raise ValueError("unknown optimizer '%s'" % kind)

    def make_loss(model, kind):
        """(loss(x, labels), description); see the module docstring."""
        penalty = getattr(model, "penalty", None)

        def with_penalty(loss):
            p = penalty() if penalty else 0.0
            return loss + p if torch.is_tensor(p) else loss

        if kind == "mse":
            def mse(x, y):
                out = model(x)
                return with_penalty(F.mse_loss(out, F.one_hot(y, out.shape[1]).to(out.dtype)))
            return mse, "MSELoss"
        if hasattr(model, "forward_logits") and getattr(model, "ends_in_softmax", False):
            def ce(x, y):
                return with_penalty(F.cross_entropy(model.forward_logits(x)[1], y))
            return ce, "CrossEntropyLoss on logits"

        def nll(x, y):
            return with_penalty(F.nll_loss(torch.log(model(x).clamp_min(1e-7)), y))
        return nll, "NLLLoss on log(softmax output)"

    def configs(has_conv):
        out = []
        for t in range(1, threads + 1):
            for b in sorted({1, t}) if blas_set else [None]:
                for cl in ([False, True] if has_conv else [False]):
                    out.append({"threads": t, "blas": b, "channels_last": cl})
        return out

    def config_name(c):
        s = "%dt" % c["threads"]
        if c["blas"] is not None:
            s += "/blas%d" % c["blas"]
        return s + ("/cl" if c["channels_last"] else "")

    def run(req):
        h, w, c = (int(v) for v in req["input"].split("x"))
        batch, classes = req["batch"], req["classes"]
        seconds = req["seconds"]
        torch.manual_seed(req["seed"])
        raw = torch.randint(0, 256, (POOL_BATCHES, batch, h, w, c), dtype=torch.uint8)
        labels = torch.randint(0, classes, (POOL_BATCHES, batch), dtype=torch.long)
        probe = build_model(req["path"])
        prep = getattr(probe, "preprocess", None)
        xs = prep(raw) if prep else raw.float() / 255.0
        xs = [xs[k].float().contiguous() for k in range(POOL_BATCHES)]  # NHWC, as nnc's train_batch takes
        has_conv = any(p.dim() == 4 for p in probe.parameters())
        loss_desc = make_loss(probe, req["loss"])[1]
        del probe

        def setup(cfg):
            torch.set_num_threads(cfg["threads"])
            if blas_set and cfg["blas"] is not None:
                blas_set(cfg["blas"])
            torch.manual_seed(req["seed"])
            model = build_model(req["path"])
            model = model.to(memory_format=torch.channels_last if cfg["channels_last"] else torch.contiguous_format)
            return model

        def bench_train(cfg, budget, **scheme):
            model = setup(cfg)
            model.train()
            opt = make_optimizer(model.parameters(), req["optimizer"])
            loss_fn = make_loss(model, req["loss"])[0]

            def step(i):
                k = i % POOL_BATCHES
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(xs[k], labels[k])
                loss.backward()
                opt.step()
            r = measure(step, batch, budget, **scheme)
            if not torch.isfinite(loss_fn(xs[0], labels[0])):
                r["note"] = "non-finite loss"
            return r

        def bench_infer(cfg, budget, **scheme):
            model = setup(cfg)
            model.eval()

            def step(i):
                model(xs[i % POOL_BATCHES])
            with torch.inference_mode():
                return measure(step, batch, budget, **scheme)

        if req.get("configs"):
            # A later round: measure the configurations an earlier round picked.
            best_t, best_i = req["configs"]["train"], req["configs"]["infer"]
            tried = None
        else:
            tried = []
            screen = {"warmup_steps": SCREEN_WARMUP_STEPS, "max_windows": SCREEN_WINDOWS,
                      "min_windows": SCREEN_MIN_WINDOWS}
            for cfg in configs(has_conv):
                t = bench_train(cfg, SCREEN_SHARE_TRAIN * seconds, **screen)
                i = bench_infer(cfg, SCREEN_SHARE_INFER * seconds, **screen)
                tried.append({"config": config_name(cfg), "cfg": cfg, "train": t["median"], "infer": i["median"]})
            best_t = max(tried, key=lambda r: r["train"])["cfg"]
            best_i = max(tried, key=lambda r: r["infer"])["cfg"]
        # oneDNN builds its primitives in the first steps of a configuration: a longer warm-up than nnc's.
        train = bench_train(best_t, SHARE_TRAIN * seconds, warmup_steps=TORCH_WARMUP_STEPS)
        infer = bench_infer(best_i, SHARE_INFER * seconds, warmup_steps=TORCH_WARMUP_STEPS)
        torch.set_num_threads(threads)
        out = {"train": train, "infer": infer, "train_config": config_name(best_t),
               "infer_config": config_name(best_i), "configs": {"train": best_t, "infer": best_i}, "loss": loss_desc}
        if tried is not None:
            out["tried"] = [{k: r[k] for k in ("config", "train", "infer")} for r in tried]
        return out

    for line in sys.stdin:
        req = json.loads(line)
        try:
            reply(run(req))
        except Exception as e:  # noqa: BLE001 - report it for this model, keep serving the others
            reply({"error": "%s: %s" % (type(e).__name__, e)})
    return 0


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------

def fmt_rate(v):
    if v is None:
        return "n/a"
    return "{:,.0f}".format(v) if v >= 100 else "%.1f" % v


def fmt_spread(d, what):
    """'median (min-max)' of one side's rounds."""
    if d.get(what) is None:
        return "n/a"
    if what + "_min" not in d:
        return fmt_rate(d[what])
    return "%s (%s-%s)" % (fmt_rate(d[what]), fmt_rate(d[what + "_min"]), fmt_rate(d[what + "_max"]))


def fmt_ratio(a, b):
    return "**%.2f**" % (a / b) if a and b else "n/a"


def render(rows, with_torch, torch_note, machine, software, seconds, threads, rounds):
    lines = [machine, "", software, ""]
    head = ["model", "batch", "fwd MMAC/img", "nnc train img/s"]
    if with_torch:
        head += ["PyTorch train img/s", "train nnc/PyTorch"]
    head += ["nnc GFLOP/s", "% of 480 peak", "nnc epoch img/s", "nnc infer img/s"]
    if with_torch:
        head += ["PyTorch infer img/s", "infer nnc/PyTorch"]
    head += ["nnc peak RSS MB", "nnc threads (train; infer)"]
    if with_torch:
        head += ["PyTorch config (train; infer)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|")
    for r in rows:
        if "error" in r:
            lines.append("| %s | %s |" % (r["name"], r["error"]) + " |" * (len(head) - 2))
            continue
        gflops = r["gflops"]
        cells = [r["name"], str(r["batch"]), "%.2f" % (r["macs"] / 1e6) if r["macs"] else "n/a",
                 fmt_spread(r, "train")]
        t = r.get("torch") or {}
        if with_torch:
            cells += [fmt_spread(t, "train"), fmt_ratio(r["train"], t.get("train"))]
        cells += ["%.1f" % gflops if gflops else "n/a", "%.1f%%" % (100 * gflops / PEAK_GFLOPS) if gflops else "n/a",
                  fmt_rate(r.get("epoch")), fmt_spread(r, "infer")]
        if with_torch:
            cells += [fmt_spread(t, "infer"), fmt_ratio(r["infer"], t.get("infer"))]
        cells += ["%.0f" % (r["rss_kb"] / 1024), "%dt; %dt" % (r["train_threads"], r["infer_threads"])]
        if with_torch:
            cells += ["%s; %s" % (t["train_config"], t["infer_config"]) if "train_config" in t
                      else t.get("error", "n/a")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["",
              "nnc: `build/bin/<model> --bench --bench-seconds %g --threads N` for N = 1..%d; train and infer are "
              "the best N's, epoch is train's N. Each model is measured in %d rounds, nnc and PyTorch "
              "alternating: each img/s cell is the median of the rounds with their range (min-max) in brackets, "
              "and the ratio is of the two medians. Within a round: synthetic data, the median images/s of "
              "%d timed windows after a warm-up; train = forward + backward + optimizer update at the recipe's batch, "
              "infer = forward only; the steady-state steps update at learning rate 0 (all the optimizer's arithmetic, "
              "weights as initialized: trained for thousands of steps on a few batches of noise a model degenerates, "
              "e.g. into all-zero gradients and denormal Adam moments, which no real run sees); "
              "epoch = the trainer's own epoch loop (shuffle, uint8 -> float conversion, steps, updates at the "
              "recipe's learning rate) over a synthetic set, as its img/s log line. "
              "GFLOP/s = train img/s x 3 x forward MACs x 2. Peak RSS includes a 60,000-image synthetic training set (47 MB), like a real run's MNIST."
              % (seconds, threads, rounds, WINDOWS)]
    if with_torch:
        lines += ["",
                  "PyTorch: the same model (tests/reference/nn_to_torch.py), batch and optimizer (learning rate 0 "
                  "too), synthetic data, loss %s; the same timing scheme. Configurations screened per model: `Nt` = "
                  "torch.set_num_threads(N), `blasM` = OpenBLAS's pool at M threads (OMP_NUM_THREADS=%d for the "
                  "process), `cl` = channels_last; screened in the first round, the best for training and the best "
                  "for inference were then measured in every round, after a warm-up of at least %d steps (oneDNN "
                  "builds its primitives in the first ones), with torch.set_flush_denormal(True) and Debian's "
                  "OpenMP OpenBLAS (libopenblas0-openmp, unpacked under build/ by tools/bench.sh and first on the "
                  "PyTorch process's library path, so that it shares libgomp's pool instead of running a pthread "
                  "pool beside it; the software line says which BLAS the process mapped). Beside a trainer built "
                  "for AVX2 (-march=%s), PyTorch runs capped at AVX2 too, in a process of its own: %s "
                  "(and the trainer with the same OPENBLAS_CORETYPE)."
                  % (rows_loss(rows), threads, TORCH_WARMUP_STEPS, " or ".join(AVX2_MARCHES),
                     AVX2_PEER_TEXT)]
    else:
        lines += ["", "PyTorch columns skipped: %s." % torch_note]
    return "\n".join(lines) + "\n"


def rows_loss(rows):
    kinds = sorted({r["torch"]["loss"] for r in rows if r.get("torch") and "loss" in r["torch"]})
    return " / ".join(kinds) if kinds else "CrossEntropyLoss on logits"


def render_details(rows):
    lines = ["", "## Details", "",
             "Spread (min-max over the rounds), nnc's last round per thread count, and every PyTorch "
             "configuration's screening figure (train; infer images/s).", ""]
    for r in rows:
        if "error" in r:
            continue
        s = "- %s: nnc train %s-%s, infer %s-%s" % (r["name"], fmt_rate(r["train_min"]), fmt_rate(r["train_max"]),
                                                    fmt_rate(r["infer_min"]), fmt_rate(r["infer_max"]))
        if r.get("epoch"):
            s += ", epoch of %s images %s-%s" % ("{:,}".format(r["epoch_images"]), fmt_rate(r["epoch_min"]),
                                                fmt_rate(r["epoch_max"]))
        s += "; per thread count (train; infer; epoch): " + ", ".join(
            "%dt %s; %s; %s" % (t, fmt_rate(float(b["train_img_s"])), fmt_rate(float(b["infer_img_s"])),
                                fmt_rate(float(b["epoch_img_s"])) if "epoch_img_s" in b else "n/a")
            for t, b in sorted(r["runs"].items()))
        t = r.get("torch") or {}
        if "tried" in t:
            s += "; PyTorch train %s-%s, infer %s-%s; screened: %s" % (
                fmt_rate(t["train_min"]), fmt_rate(t["train_max"]), fmt_rate(t["infer_min"]),
                fmt_rate(t["infer_max"]),
                ", ".join("%s %s; %s" % (c["config"], fmt_rate(c["train"]), fmt_rate(c["infer"]))
                          for c in t["tried"]))
        elif "error" in t:
            s += "; PyTorch: %s" % t["error"]
        lines.append(s)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# One model: rounds of nnc and PyTorch, alternating
# --------------------------------------------------------------------------

def spread(values):
    """{median, min, max} of one side's per-round figures."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def nnc_round(binary, seconds, threads, env=None):
    """nnc at every thread count from 1 to threads; per workload the best count's figure.
    Training and inference each take their best thread count (on a loaded machine
    1 thread can beat 2); the epoch rate comes from training's run (its short epochs
    are too noisy to pick by)."""
    runs = {t: run_nnc(binary, seconds, t, env) for t in range(1, threads + 1)}
    best = {w: max(runs, key=lambda t: float(runs[t][w + "_img_s"])) for w in ("train", "infer")}
    best["epoch"] = best["train"]
    figures = {w: float(runs[t][w + "_img_s"]) for w, t in best.items() if w + "_img_s" in runs[t]}
    return runs, best, figures


def bench_model(row, name, binary, worker, a, nnc_env=None):
    """Fill row with each side's median and spread over a.rounds alternating rounds."""
    nnc_figures, torch_rounds, configs = [], [], None
    for _ in range(a.rounds):
        runs, best, figures = nnc_round(binary, a.seconds, a.threads, nnc_env)
        nnc_figures.append(figures)
        if worker and not (torch_rounds and "error" in torch_rounds[-1]):
            b = runs[a.threads]
            t = worker.request({"path": os.path.join(ROOT, "models", name + ".nn"), "input": b["input"],
                                "classes": int(b["classes"]), "batch": int(b["batch"]), "loss": b.get("loss"),
                                "optimizer": dict(parse_optimizer(b["optimizer"]), lr=float(b.get("train_lr", 0))),
                                "seconds": a.seconds, "seed": 1, "configs": configs})
            torch_rounds.append(t)
            configs = t.get("configs")
    b = runs[a.threads]
    row.update(batch=int(b["batch"]), macs=forward_macs(name, os.path.join(ROOT, "build", "nnc")),
               rss_kb=max(int(r["max_rss_kb"]) for r in runs.values()), runs=runs,
               epoch_images=int(b.get("epoch_images", 0)))
    for what in ("train", "infer", "epoch"):
        values = [f[what] for f in nnc_figures if what in f]
        if values:
            sp = spread(values)
            row.update({what: sp["median"], what + "_min": sp["min"], what + "_max": sp["max"],
                        what + "_threads": best[what]})
    row["gflops"] = row["train"] * 3 * row["macs"] * 2 / 1e9 if row["macs"] else None
    if not torch_rounds:
        return
    if "error" in torch_rounds[-1]:
        row["torch"] = {"error": torch_rounds[-1]["error"]}
        return
    t = {"train_config": torch_rounds[0]["train_config"], "infer_config": torch_rounds[0]["infer_config"],
         "loss": torch_rounds[0]["loss"], "tried": torch_rounds[0]["tried"]}
    for what in ("train", "infer"):
        sp = spread([r[what]["median"] for r in torch_rounds])
        t.update({what: sp["median"], what + "_min": sp["min"], what + "_max": sp["max"]})
    row["torch"] = t


# --------------------------------------------------------------------------
# Decoding image folders: MNIST's training set as PNG and JPEG files
# --------------------------------------------------------------------------

DECODE_DIR = os.path.join(ROOT, "build", "bench-folders")
DECODE_FORMATS = (("PNG", "png", []), ("JPEG, quality 95", "jpg", ["95"]))


def sh(cmd, **kw):
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                         (p.stderr or p.stdout).strip()))
    return p.stdout


def decode_folders():
    """build/bench-folders/{png,jpg}: MNIST's 60,000 training images as image folders, written once
    (tests/tools/idx_to_folders.c from MNIST's IDX files) and kept for later runs; never in git."""
    mnist = subprocess.run(["sh", "tests/tools/find_mnist.sh"], cwd=ROOT, capture_output=True, text=True)
    if mnist.returncode != 0:
        raise RuntimeError((mnist.stderr or "no MNIST").strip())
    os.makedirs(DECODE_DIR, exist_ok=True)
    tool = os.path.join(DECODE_DIR, "idx_to_folders")
    idx = os.path.join(DECODE_DIR, "mnist")
    for _, ext, quality in DECODE_FORMATS:
        stamp = os.path.join(DECODE_DIR, ext, ".complete")
        if os.path.exists(stamp):
            continue
        if not os.path.exists(tool):
            sh(["cc", "-std=c11", "-O2", "-o", tool, "tests/tools/idx_to_folders.c", "-lpng", "-ljpeg"])
        if not os.path.exists(os.path.join(idx, "train-images-idx3-ubyte")):
            sh(["sh", "tests/tools/mnist_subset.sh", mnist.stdout.strip(), idx, "60000", "10000"])
        log("bench: writing MNIST's training set as %s folders in %s (once)" % (ext, os.path.relpath(DECODE_DIR, ROOT)))
        sh(["rm", "-rf", os.path.join(DECODE_DIR, ext)])
        sh([tool, idx, os.path.join(DECODE_DIR, ext), ext] + quality)
        open(stamp, "w").close()


def bench_decode(rounds, threads):
    """Rows {format, images, seconds, rate (median of rounds), rate_min, rate_max} or {format, error}."""
    tool = os.path.join(ROOT, "build", "tools", "decode_bench")
    decode_folders()
    rows = []
    for label, ext, _ in DECODE_FORMATS:
        split = os.path.join(DECODE_DIR, ext, "train")
        # One untimed load first: the files come from the page cache in every timed round, as they do
        # for a trainer run again on the same folders (a cold first read measures the disk instead).
        out = sh([tool, split, "28", "28", "1", str(threads), str(rounds + 1)])
        runs = [(int(n), float(t)) for _, n, t in (l.split() for l in out.splitlines() if l.startswith("decode "))]
        runs = runs[1:]
        rates = [n / t for n, t in runs]
        sp = spread(rates)
        rows.append({"format": label, "images": runs[0][0], "seconds": statistics.median(t for _, t in runs),
                     "rate": sp["median"], "rate_min": sp["min"], "rate_max": sp["max"]})
    return rows


def render_decode(rows, note, rounds, threads):
    lines = ["", "Decoding an image folder (MNIST's training set written as files by tests/tools/idx_to_folders.c "
             "into build/bench-folders/): nnc_folder_load, the trainer's loader, on %d threads; listing, reading "
             "and decoding into the uint8 array, the median of %d rounds after an untimed one (files in the page "
             "cache), range in brackets (`build/tools/decode_bench`)." % (threads, rounds), ""]
    if note:
        return "\n".join(lines + ["Skipped: %s." % note]) + "\n"
    lines += ["| format | images | seconds | images/s |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %s | %.2f | %s |" % (r["format"], "{:,}".format(r["images"]), r["seconds"],
                                                   fmt_spread(r, "rate")))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="nnc against PyTorch, every model, one run (see the module docstring)")
    ap.add_argument("--seconds", type=float, default=3.0, help="each side's time budget per model (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                    help="nnc's threads and the most PyTorch tries (default: the cores)")
    ap.add_argument("--rounds", type=int, default=ROUNDS,
                    help="alternating rounds of nnc and PyTorch per model (default %d)" % ROUNDS)
    ap.add_argument("--models", nargs="*", help="model names (default: every models/*.nn)")
    ap.add_argument("--variant", action="append", default=[], metavar="MODEL:MARCH|MODEL:bf16",
                    help="one more row: MODEL's trainer built with -march=MARCH (build/MARCH/bin/MODEL), "
                         "e.g. vgg_bn:x86-64-v3 for a CPU with AVX2 and no AVX-512; or compiled with "
                         "`nnc --precision bf16` (build/bf16/bin/MODEL)")
    ap.add_argument("--no-torch", action="store_true", help="leave out PyTorch")
    ap.add_argument("--no-decode", action="store_true",
                    help="leave out the decode rate of PNG and JPEG folders (MNIST's training set as files)")
    ap.add_argument("--decode-only", action="store_true", help="only the decode rate, no model")
    ap.add_argument("--torch-malloc", choices=sorted(TORCH_MALLOCS), default="tcmalloc",
                    help="the allocator preloaded into the PyTorch process (default tcmalloc, "
                         "the fastest and steadiest here; glibc = none)")
    ap.add_argument("--reference", default=DEFAULT_REFERENCE, help="the nn_to_torch.py that builds the modules")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench.md"))
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        return torch_worker_main(a.reference, a.threads)

    if a.decode_only:
        a.variant, a.no_torch = [], True
    names = [] if a.decode_only else a.models or sorted(
        f[:-3] for f in os.listdir(os.path.join(ROOT, "models")) if f.endswith(".nn"))
    # (row label, model, trainer binary, the peer's instruction set): every model as built, then the variants.
    entries = [(name, name, os.path.join(ROOT, "build", "bin", name), None) for name in names]
    for v in a.variant:
        model, _, build = v.partition(":")
        if not build:
            ap.error("--variant needs MODEL:MARCH or MODEL:bf16, not '%s'" % v)
        how = "precision bf16" if build == "bf16" else "-march=" + build
        peer_isa = "avx2" if build in AVX2_MARCHES else None
        entries.append(("%s (%s)" % (model, how), model, os.path.join(ROOT, "build", build, "bin", model), peer_isa))
    nnc = os.path.join(ROOT, "build", "nnc")
    machine = machine_line()

    worker, torch_note, torch_info = None, "", None
    if a.no_torch:
        torch_note = "--no-torch was given"
    elif not os.path.exists(a.reference):
        torch_note = "%s does not exist" % os.path.relpath(a.reference, ROOT)
    else:
        log("bench: starting PyTorch (%s)" % sys.executable)
        worker = TorchWorker(a.reference, a.threads, a.torch_malloc)
        if "error" in worker.hello:
            torch_note = worker.hello["error"]
            worker.close()
            worker = None
        else:
            torch_info = worker.hello
    if torch_note:
        log("bench: PyTorch columns skipped: " + torch_note)

    avx2_worker = None  # started for the first AVX2 row
    rows = []
    for k, (label, name, binary, peer_isa) in enumerate(entries, 1):
        t_model = time.monotonic()
        row = {"name": label}
        rows.append(row)
        peer, nnc_env = worker, None
        if peer_isa == "avx2":
            # The trainer's own OpenBLAS calls (dense layers) take AVX2 kernels too.
            nnc_env = dict(os.environ, OPENBLAS_CORETYPE=AVX2_PEER_ENV["OPENBLAS_CORETYPE"])
            if worker and not avx2_worker:
                log("bench: starting PyTorch capped at AVX2 (%s)" % AVX2_PEER_TEXT)
                avx2_worker = TorchWorker(a.reference, a.threads, a.torch_malloc, isa="avx2")
                if "error" in avx2_worker.hello:
                    log("bench: PyTorch capped at AVX2 did not start: " + avx2_worker.hello["error"])
            peer = avx2_worker if worker else None
        try:
            bench_model(row, name, binary, peer, a, nnc_env)
        except (RuntimeError, OSError) as e:
            row["error"] = str(e)
            log("bench: [%d/%d] %s: %s" % (k, len(entries), label, e))
            continue
        msg = "bench: [%d/%d] %s: nnc train %s (%dt), infer %s (%dt) img/s" % (
            k, len(entries), label, fmt_rate(row["train"]), row["train_threads"], fmt_rate(row["infer"]),
            row["infer_threads"])
        t = row.get("torch") or {}
        if "error" in t:
            msg += "; PyTorch: %s" % t["error"]
        elif t:
            msg += "; PyTorch train %s (%s), infer %s (%s)" % (fmt_rate(t["train"]), t["train_config"],
                                                              fmt_rate(t["infer"]), t["infer_config"])
        log(msg + " [%.0f s, %d rounds]" % (time.monotonic() - t_model, a.rounds))
    for w in (worker, avx2_worker):
        if w:
            w.close()

    decode_rows, decode_note = [], ""
    if a.no_decode:
        decode_note = "--no-decode was given"
    else:
        try:
            decode_rows = bench_decode(a.rounds, 2)
            log("bench: decoding: " + ", ".join("%s %s images/s" % (r["format"], fmt_rate(r["rate"]))
                                                 for r in decode_rows))
        except (RuntimeError, OSError) as e:
            decode_note = str(e)
            log("bench: decoding skipped: " + decode_note)

    with_torch = worker is not None
    machine += "; load average %.2f at the end" % os.getloadavg()[0]
    table = render(rows, with_torch, torch_note, machine, software_line(torch_info), a.seconds, a.threads,
                   a.rounds) if rows else machine + "\n"
    table += render_decode(decode_rows, decode_note, a.rounds, 2)
    sys.stdout.write("\n" + table)
    sys.stdout.flush()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("# nnc against PyTorch\n\n" + table + render_details(rows))
    log("bench: written to %s" % os.path.relpath(a.out, ROOT))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
