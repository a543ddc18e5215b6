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
# shares libgomp's thread pool with PyTorch, and a preloaded tcmalloc (PyTorch's CPU tuning
# guide; jemalloc is there for --torch-malloc jemalloc). They are unpacked under build/ (not
# installed: the trainers keep the system's libraries) and bench.py puts them in the PyTorch
# process only. apt-get download needs no root.
# unpack DIR FILE PACKAGE...: unpack the packages into DIR unless DIR/FILE is there.
unpack() {
    dir=$1 file=$2; shift 2
    [ -e "$dir/$file" ] && return 0
    tmp=$(mktemp -d) &&
        (cd "$tmp" && apt-get download "$@" >/dev/null 2>&1) &&
        mkdir -p "$dir" && for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dir" || break; done &&
        [ -e "$dir/$file" ] ||
        echo "bench: could not fetch $* (apt-get download); PyTorch goes without it" >&2
    rm -rf "$tmp"
}
if [ "$(uname -m)" = x86_64 ]; then
    unpack build/openblas-openmp usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 libopenblas0-openmp
    unpack build/torch-malloc usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 libjemalloc2 libtcmalloc-minimal4
fi
# Without Debian's python3 at all, any python3 still runs the nnc side.
[ -x "$py" ] || py=python3
exec "$py" tools/bench.py "$@"
