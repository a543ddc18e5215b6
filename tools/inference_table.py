#!/usr/bin/python3
"""inference_table.py - the README's deployment table: for every model, the
inference C that `nnc --emit=inference` writes, measured.

    /usr/bin/python3 tools/inference_table.py [--images N] [--models m1 m2 ...]

For each models/<name>.nn: trains one epoch on a subset of MNIST (the weights'
values do not change the figures), writes the inference C, and reports

  flash     text + data of the Cortex-M4F object (arm-none-eabi-gcc -Os
            -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16): weights and code
  RAM       <NAME>_SCRATCH_BYTES plus the deepest stack of a predict call
            (-fstack-usage: predict + forward + the largest layer function and its block)
  time      per image on this machine, gcc -O3 -march=native, one thread: the
            classifying loop alone, median of 3 runs over N images, beside the
            trainer's own infer_batch at batch 1 (one thread) over the same images

Needs build/ (make), arm-none-eabi-gcc, MNIST where the trainers find it.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os"]


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, **kw).stdout


def timed(cmd, runs=3):
    """The median over runs of the seconds the program reports for its classifying loop."""
    times = []
    for _ in range(runs):
        p = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(float(re.search(r"seconds ([0-9.]+)", p.stderr).group(1)))
    return statistics.median(times)


def stack_bytes(su_path, prefix):
    frames = {}
    for line in open(su_path):
        name, size = line.split("\t")[0].split(":")[-1], int(line.split("\t")[1])
        frames[name.split(".")[0]] = max(size, frames.get(name.split(".")[0], 0))
    layers = [n for n in frames if n.startswith(prefix + "_") and n not in (prefix + "_predict", prefix + "_forward")
              and "_block" not in n]
    deepest = 0
    for layer in layers:
        blocks = [frames[n] for n in frames if n.startswith(layer + "_block")]
        deepest = max(deepest, frames[layer] + max(blocks, default=0))
    return frames.get(prefix + "_predict", 0) + frames.get(prefix + "_forward", 0) + deepest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--models", nargs="*")
    a = ap.parse_args()
    names = a.models or sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "models")) if f.endswith(".nn"))
    mnist = sh(["sh", "tests/tools/find_mnist.sh"]).strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        sh(["sh", "tests/tools/mnist_subset.sh", mnist, data, "2048", str(a.images)])
        images = os.path.join(data, "t10k-images-idx3-ubyte")
        for name in names:
            work = os.path.join(tmp, name)
            os.makedirs(work)
            w = os.path.join(work, "w.nncw")
            sh(["build/bin/" + name, "--data", data, "--epochs", "1", "--save", w, "--no-history"])
            c = os.path.join(work, "net.c")
            sh(["build/nnc", "--emit=inference", "--weights", w, "models/%s.nn" % name, "-o", c])
            header = open(os.path.join(work, "net.h")).read()
            scratch = int(re.search(r"NET_SCRATCH_BYTES (\d+)", header).group(1))
            obj = os.path.join(work, "net_m4.o")
            sh(["arm-none-eabi-gcc", "-std=c99", "-fstack-usage", "-c", c, "-o", obj] + M4, )
            size = sh(["arm-none-eabi-size", obj]).splitlines()[1].split()
            flash = int(size[0]) + int(size[1])
            stack = stack_bytes(os.path.join(ROOT, "net_m4.su") if os.path.exists(os.path.join(ROOT, "net_m4.su"))
                                else obj[:-2] + ".su", "net")
            run = os.path.join(work, "infer_run")
            sh(["gcc", "-std=c99", "-O3", "-march=native", "-I" + work, '-DINFER_H="net.h"', "-DPREFIX=net",
                "-DPREFIX_UPPER=NET", "tests/tools/infer_run.c", c, "-o", run, "-lm"])
            trainer = os.path.join(work, "trainer_run")
            sh(["sh", "tests/tools/build_trainer_run.sh", "build", name, trainer])
            t_infer = timed([run, images]) / a.images
            t_trainer = timed([trainer, w, images, str(a.images), "1"]) / a.images
            rows.append((name, flash, scratch, stack, t_infer, t_trainer))
            print("%s: flash %d, scratch %d + stack %d, %.1f us/image (trainer at batch 1: %.1f us)"
                  % (name, flash, scratch, stack, t_infer * 1e6, t_trainer * 1e6), file=sys.stderr)
    print("| model | flash (Cortex-M4F) | RAM: scratch + stack | time per image | trainer, batch 1 |")
    print("|---|---:|---:|---:|---:|")
    for name, flash, scratch, stack, ti, tt in rows:
        print("| %s | %s B | %s + %s B | %.0f us | %.0f us |" % (name, format(flash, ","), format(scratch, ","),
                                                              format(stack, ","), ti * 1e6, tt * 1e6))


if __name__ == "__main__":
    main()
