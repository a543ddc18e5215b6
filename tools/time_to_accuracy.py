#!/usr/bin/python3
"""time_to_accuracy.py - whole-process seconds until a trainer's test accuracy first reaches each threshold.

    /usr/bin/python3 tools/time_to_accuracy.py [--thresholds 99.0 99.3 99.5] [--json] -- COMMAND ARGS...

Runs COMMAND (an nnc trainer, or tools/torch_train.py), reads its standard output
as it comes and stamps each `epoch ... test_acc X%` line with the seconds since
COMMAND was started: process start-up, data loading, training and each epoch's
evaluation included, as `time COMMAND` would count them. Prints one line per
threshold (the first epoch reaching it, and when) and the whole run's time and
final accuracy. Both sides of the README's time-to-accuracy table are measured by
this same clock.

A python COMMAND (torch_train.py) runs with Debian's OpenMP OpenBLAS first on its
library path and tcmalloc preloaded when tools/bench.sh has unpacked them under
build/ (PyTorch's best configuration; see tools/bench.py).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

from bench import torch_library_env  # noqa: E402 - PyTorch's OpenMP OpenBLAS and tcmalloc, as in make bench

EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/\d+.*test_acc ([0-9.]+)%")
FINAL_LINE = re.compile(r"^test accuracy ([0-9.]+)%")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--thresholds", type=float, nargs="+", default=[99.0, 99.3, 99.5])
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the command to time after --")
    env = dict(os.environ)
    if "python" in os.path.basename(cmd[0]):
        torch_library_env(env)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    reached, epochs, final = {}, [], None
    for line in proc.stdout:
        now = time.monotonic() - start
        sys.stderr.write("%7.1f s  %s" % (now, line))
        m = EPOCH_LINE.match(line)
        if m:
            epoch, acc = int(m.group(1)), float(m.group(2))
            epochs.append((epoch, acc, now))
            for t in a.thresholds:
                if acc >= t and t not in reached:
                    reached[t] = (epoch, now)
        m = FINAL_LINE.match(line)
        if m:
            final = float(m.group(1))
    status = proc.wait()
    total = time.monotonic() - start
    if status != 0:
        sys.exit("time_to_accuracy.py: %s exited with status %d" % (" ".join(cmd), status))
    result = {"command": " ".join(cmd), "seconds": round(total, 1), "final_accuracy": final,
              "reached": {"%.1f" % t: ({"epoch": reached[t][0], "seconds": round(reached[t][1], 1)}
                                       if t in reached else None) for t in a.thresholds}}
    if a.json:
        print(json.dumps(result))
        return 0
    for t in a.thresholds:
        r = reached.get(t)
        print("%.1f%%: %s" % (t, "epoch %d, %.1f s" % r if r else "not reached"))
    print("whole run: %.1f s, final test accuracy %s%%" % (total, final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
