#!/bin/sh
# `make bench`: run tools/bench.py (nnc's trainers against PyTorch, every model,
# one run) with Debian's python3, whose PyTorch is python3-torch. When torch is
# missing: install it with apt-get when running as root, otherwise go on
# without it (bench.py then leaves out the PyTorch columns and says why).
# Arguments are passed on to bench.py (see its --help).
set -u
cd "$(dirname "$0")/.." || exit 1
py=/usr/bin/python3
has_torch() { [ -x "$py" ] && "$py" -c 'import torch' >/dev/null 2>&1; }
if ! has_torch; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench: PyTorch missing for $py; installing python3-torch with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch >&2 ||
            echo "bench: installing python3-torch failed" >&2
    else
        echo "bench: PyTorch missing for $py (install it with: sudo apt-get install python3-torch)" >&2
    fi
fi
# Without Debian's python3 at all, any python3 still runs the nnc side.
[ -x "$py" ] || py=python3
exec "$py" tools/bench.py "$@"
