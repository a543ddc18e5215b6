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
# PyTorch's strongest configuration here uses Debian's OpenMP build of OpenBLAS, which
# shares libgomp's thread pool with PyTorch. It is unpacked under build/ (not installed:
# the trainers keep the system's OpenBLAS) and bench.py puts it first on the PyTorch
# process's library path. apt-get download needs no root.
blas_dir=build/openblas-openmp
if [ ! -e "$blas_dir/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0" ] && [ "$(uname -m)" = x86_64 ]; then
    tmp=$(mktemp -d) &&
        (cd "$tmp" && apt-get download libopenblas0-openmp >/dev/null 2>&1) &&
        mkdir -p "$blas_dir" && dpkg -x "$tmp"/libopenblas0-openmp_*.deb "$blas_dir" ||
        echo "bench: could not fetch libopenblas0-openmp (apt-get download); PyTorch uses the system's BLAS" >&2
    rm -rf "$tmp"
fi
# Without Debian's python3 at all, any python3 still runs the nnc side.
[ -x "$py" ] || py=python3
exec "$py" tools/bench.py "$@"
