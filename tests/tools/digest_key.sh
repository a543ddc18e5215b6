#!/bin/sh
# tests/tools/digest_key.sh - the kind of machine whose training digests
# tests/digests/KEY.txt holds, as ARCH-ISA-CORETYPE: `uname -m`; avx512f, avx2
# or base, the widest vector set /proc/cpuinfo lists (what -march=native builds
# for); and $OPENBLAS_CORETYPE lowercased, or auto when unset (OpenBLAS then
# picks its kernel for the CPU). Floating-point results differ between kinds.
set -eu
isa=base
for f in avx512f avx2; do
    if grep -qw "$f" /proc/cpuinfo 2>/dev/null; then isa=$f; break; fi
done
coretype=$(printf '%s' "${OPENBLAS_CORETYPE:-auto}" | tr 'A-Z' 'a-z')
echo "$(uname -m)-$isa-$coretype"
