#!/usr/bin/env python3
"""tools/mpi_scaling.py - the README's "On several machines" table.

On this machine, for every model: one epoch of the first N_TRAIN MNIST
training images (synthetic CIFAR-format images for an RGB 32x32 model) as
1 process x 2 threads (build/bin/MODEL) and as 2 processes x 1 thread
(mpirun -np 2 build/bin-mpi/MODEL), alternating, ROUNDS rounds each; the
epoch's images a second is what the trainer's log prints. The cell is the
median of the rounds, with their range; the ratio is of the medians.

Then, on paper, from the measured one-process step time and the measured
bytes a step exchanges (the trainer's "MPI: a training step exchanged" line),
the scaling efficiency on 2..16 machines of 10 and 100 Gb/s (one process a
machine, the model compiled with --slices N), with the model of the exchange
nnc uses (see runtime/dist.c): the gradient is summed in parts (an
all-to-all, then an allgather: each process receives 2 (N - 1) / N of the
gradient's 4 bytes a parameter, in 2 (N - 1) messages); batchnorm's
statistics and the losses are gathered whole (N - 1 blocks of a slice's, in
N - 1 ring hops each). Steps do not overlap computation with communication.

Usage: python3 tools/mpi_scaling.py [--rounds 3] [--images 12800] [MODEL...]
(run `make all mpi` first; MNIST is found as the trainers find it)
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root"]
# The networks on paper: bandwidth in bytes/s, one message's latency in seconds.
NETWORKS = [("10 Gb/s", 10e9 / 8, 30e-6), ("100 Gb/s", 100e9 / 8, 3e-6)]
MACHINES = [2, 4, 8, 16]
GOOD_EFFICIENCY = 0.8


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, **kw).stdout


def make_data(tmp, n_train):
    mnist = sh(["sh", "tests/tools/find_mnist.sh"]).strip()
    sh(["sh", "tests/tools/mnist_subset.sh", mnist, os.path.join(tmp, "mnist"), str(n_train), "512"])
    cifar = os.path.join(tmp, "cifar")
    os.makedirs(cifar)
    sh(["cc", "-std=c11", "-O2", "-o", os.path.join(tmp, "cifar_synth"), "tests/tools/cifar_synth.c"])
    sh([os.path.join(tmp, "cifar_synth"), cifar, str(n_train // 5), "1"])
    return {"mnist": os.path.join(tmp, "mnist"), "cifar": cifar}


def is_cifar(model):
    with open(os.path.join(ROOT, "models", model + ".nn")) as f:
        return re.search(r"^\s*input\s+32x32x3", f.read(), re.M) is not None


def epoch(cmd, tmp):
    """Run one training epoch; returns (images a second, the log)."""
    out = sh(cmd + ["--epochs", "1", "--no-history", "--save", os.path.join(tmp, "w.nncw")],
             env=dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"))
    m = re.search(r"^epoch .* ([0-9.]+) img/s$", out, re.M)
    if not m:
        sys.exit("no epoch line in:\n" + out)
    return float(m.group(1)), out


def measure(model, data, rounds, tmp):
    one, two, log = [], [], ""
    for _ in range(rounds):
        rate, _ = epoch([f"build/bin/{model}", "--data", data, "--threads", "2"], tmp)
        one.append(rate)
        rate, log = epoch(MPIRUN + ["-np", "2", f"build/bin-mpi/{model}", "--data", data, "--threads", "1"], tmp)
        two.append(rate)
    m = re.search(r"exchanged (\d+) bytes out and (\d+) in per process, in (\d+) exchanges", log)
    params = int(re.search(r": (\d+) parameters;", log).group(1))
    batch = int(re.search(r"batch (\d+),", log).group(1))
    return {"one": one, "two": two, "received": int(m.group(2)), "exchanges": int(m.group(3)),
            "params": params, "batch": batch}


def cell(rates):
    return f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"


def comm_seconds(r, n, bandwidth, latency):
    """A step's communication on n machines, from what 2 processes exchanged (see the docstring)."""
    gradient = 4 * r["params"]
    others = r["received"] - gradient  # one slice's batchnorm statistics, loss and right answers
    others_exchanges = r["exchanges"] - 2
    return (2 * (n - 1) * latency + 2 * (n - 1) / n * gradient / bandwidth
            + others_exchanges * (n - 1) * latency + (n - 1) * others / bandwidth)


def efficiency(r, step_seconds, n, bandwidth, latency):
    """One step on n machines: each computes 1/n of the batch, then they exchange."""
    compute = step_seconds / n
    return compute / (compute + comm_seconds(r, n, bandwidth, latency))


def batch_for(r, step_seconds, n, bandwidth, latency):
    """The global batch at which n machines reach GOOD_EFFICIENCY (the step time grows with the batch)."""
    per_image = step_seconds / r["batch"]
    # compute / (compute + comm) >= e  <=>  compute >= comm * e / (1 - e), compute = B * per_image / n
    comm = comm_seconds(r, n, bandwidth, latency)
    return int(comm * GOOD_EFFICIENCY / (1 - GOOD_EFFICIENCY) * n / per_image + 0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=12800)
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    models = a.models or sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "models")) if f.endswith(".nn"))
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(tmp, a.images)
        results = {}
        for model in models:
            results[model] = measure(model, data["cifar" if is_cifar(model) else "mnist"], a.rounds, tmp)
            r = results[model]
            print(f"measured {model}: 1x2 {cell(r['one'])}, 2x1 {cell(r['two'])} img/s", file=sys.stderr)

    print(f"On this machine: one epoch of {a.images:,} images, images/s, median of {a.rounds} alternating rounds "
          "(range)\n")
    print("| model | 1 process x 2 threads | 2 processes x 1 thread | ratio | bytes a step, each way, per process "
          "| exchanges a step |")
    print("|---|---|---|---|---|---|")
    for model, r in results.items():
        ratio = statistics.median(r["two"]) / statistics.median(r["one"])
        print(f"| {model} | {cell(r['one'])} | {cell(r['two'])} | {ratio:.2f} | {r['received']:,} | {r['exchanges']} |")

    print("\nOn paper: scaling efficiency (the one-process step at the recipe's batch, shared by N machines, which "
          "then exchange)\n")
    header = " | ".join(f"{n} x {net}" for net, _, _ in NETWORKS for n in MACHINES)
    print(f"| model | step (1 process) | {header} | batch for {GOOD_EFFICIENCY:.0%} on 8 x 10 Gb/s |")
    print("|---|---|" + "---|" * (len(NETWORKS) * len(MACHINES)) + "---|")
    for model, r in results.items():
        step = r["batch"] / statistics.median(r["one"])
        cells = [f"{efficiency(r, step, n, bw, lat):.0%}" for _, bw, lat in NETWORKS for n in MACHINES]
        need = batch_for(r, step, 8, NETWORKS[0][1], NETWORKS[0][2])
        print(f"| {model} | {step * 1e3:.1f} ms (batch {r['batch']}) | " + " | ".join(cells) + f" | {need:,} |")


if __name__ == "__main__":
    main()
