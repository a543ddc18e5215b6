#!/bin/sh
# tools/deps.sh [build|test] - check the Debian packages nnc needs by building and
# linking what the build really uses, not by finding a header: Debian's reference
# BLAS (libblas-dev) also provides a <cblas.h>, and a header check once passed on
# a machine without libopenblas-dev, whose `-lopenblas` then failed to link.
#
#   build  what `make` and `make train` need (default)
#   test   that, plus what `make test` needs: Criterion, clang with OpenMP,
#          the aarch64 cross compiler and qemu (the portability and inference
#          tests), the Cortex-M4 cross compiler with its C library, and the
#          interop test's readers: python3-torch, python3-onnx, and node with
#          npm, which installs onnxruntime-node under $BUILD/node; and Open MPI
#          (mpicc, mpirun) for the several-process tests
#   mpi    build's, plus Open MPI: what `make mpi` needs
#
# Missing packages are installed with apt-get when running as root; otherwise the
# exact command is printed and the script fails.
#
# The probes compile with the flags the Makefile passes in (CC, BLAS_CFLAGS,
# BLAS_LIBS), so a probe that passes means the real build will link.
set -u
profile=${1:-build}
CC=${CC:-cc}
probe_dir=$(mktemp -d "${TMPDIR:-/tmp}/nnc-deps.XXXXXX") || exit 1
trap 'rm -rf "$probe_dir"' EXIT INT TERM

blas_cflags() { echo "${BLAS_CFLAGS:-$(pkg-config --cflags openblas 2>/dev/null)}"; }
blas_libs() { echo "${BLAS_LIBS:-$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)}"; }

# probe NAME COMPILER FLAGS... : build $probe_dir/NAME.c with the given command
# line; the program is then run when it was linked for this machine.
probe() {
    name=$1; compiler=$2; shift 2
    # shellcheck disable=SC2086 # the flags are word lists on purpose
    "$compiler" "$probe_dir/$name.c" -o "$probe_dir/$name" "$@" >"$probe_dir/$name.log" 2>&1 || return 1
    case " $* " in *" -c "*) return 0 ;; esac
    "$probe_dir/$name" >>"$probe_dir/$name.log" 2>&1
}

write() { cat >"$probe_dir/$1.c"; }
# probe_cross: the same, linked for another machine, so not run here.
probe_cross() {
    name=$1; compiler=$2; shift 2
    "$compiler" "$probe_dir/$name.c" -o "$probe_dir/$name" "$@" >"$probe_dir/$name.log" 2>&1
}

write zlib <<'EOF'
#include <zlib.h>
int main(void) { return crc32(0L, (const Bytef *)"nnc", 3) == 0; }
EOF
write png <<'EOF'
#include <png.h>
int main(void) { return png_access_version_number() == 0; }
EOF
# libjpeg(-turbo): image folders' JPEG files, decoded from memory as image.c does.
write jpeg <<'EOF'
#include <stdio.h>
#include <jpeglib.h>
int main(void)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    static const unsigned char soi[2] = {0xff, 0xd8};
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, soi, sizeof soi);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
EOF
# OpenBLAS itself: cblas_sgemm from the header the build includes, and
# openblas_set_num_threads, which only OpenBLAS defines (the trainer calls it).
write openblas <<'EOF'
#include <cblas.h>
void openblas_set_num_threads(int);
int main(void)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {0};
    openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    return c[3] != 4.0f;
}
EOF
write openmp <<'EOF'
#include <omp.h>
int main(void)
{
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += 1;
    return n != omp_get_max_threads();
}
EOF
write criterion <<'EOF'
#include <criterion/criterion.h>
Test(deps, criterion_links) { cr_assert(1); }
EOF
# What the generated code includes, built for another architecture: a whole
# static aarch64 program (the inference test runs one under qemu), and an
# object for a Cortex-M4F with newlib's headers.
write aarch64 <<'EOF'
#include <math.h>
#include <stdint.h>
#include <string.h>
typedef float v16 __attribute__((vector_size(16 * sizeof(float))));
float f(const float *p) { v16 v; memcpy(&v, p, sizeof v); return sqrtf(v[0]) + (float)INT32_MAX; }
int main(int argc, char **argv) { (void)argv; return (int)expf((float)argc) == 0; }
EOF
# Open MPI (the several-process tests): an in-place allgather, the exchange
# runtime/dist.c makes, between two processes started by mpirun.
write mpi <<'EOF'
#include <mpi.h>
int main(int argc, char **argv)
{
    int provided, rank, size, v[2] = {0, 0}, counts[2] = {1, 1}, displs[2] = {0, 1};
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    v[rank] = rank + 1;
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, v, counts, displs, MPI_INT, MPI_COMM_WORLD);
    MPI_Finalize();
    return size != 2 || v[0] != 1 || v[1] != 2 || provided < MPI_THREAD_SERIALIZED;
}
EOF
probe_mpi() {
    mpicc "$probe_dir/mpi.c" -o "$probe_dir/mpi" >"$probe_dir/mpi.log" 2>&1 &&
        mpirun --allow-run-as-root --oversubscribe -np 2 "$probe_dir/mpi" >>"$probe_dir/mpi.log" 2>&1
}
write cortex_m4 <<'EOF'
#include <math.h>
#include <stdint.h>
float f(const uint8_t *p) { return expf((float)p[0]) + sqrtf((float)p[1]); }
EOF

missing=""
need() { # need PACKAGE... -- CHECK... : the packages are missing unless CHECK succeeds
    pkgs=""
    while [ "$1" != "--" ]; do pkgs="$pkgs $1"; shift; done
    shift
    if ! "$@" >/dev/null 2>&1; then missing="$missing$pkgs"; fi
}

need make             -- command -v make
need gcc              -- command -v "$CC"
need pkg-config       -- command -v pkg-config
need flex             -- command -v flex
need bison            -- command -v bison
need zlib1g-dev       -- probe zlib "$CC" -lz
need libpng-dev       -- probe png "$CC" -lpng
need libjpeg-dev      -- probe jpeg "$CC" -ljpeg
need libopenblas-dev  -- probe openblas "$CC" $(blas_cflags) $(blas_libs)
need gcc              -- probe openmp "$CC" -fopenmp
if [ "$profile" = test ]; then
    need libcriterion-dev -- probe criterion "$CC" -lcriterion
    need clang libomp-dev -- probe openmp clang -fopenmp
    need gcc-aarch64-linux-gnu libc6-dev-arm64-cross -- \
        probe_cross aarch64 aarch64-linux-gnu-gcc -std=c11 -Wall -Wextra -Werror -O2 -static -lm
    need qemu-user -- command -v qemu-aarch64
    need gcc-arm-none-eabi libnewlib-arm-none-eabi -- \
        probe cortex_m4 arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror -mcpu=cortex-m4 -mthumb -mfloat-abi=hard \
        -mfpu=fpv4-sp-d16 -Os -c
    need python3-torch python3-numpy -- /usr/bin/python3 -c 'import torch, numpy'
    need python3-onnx -- /usr/bin/python3 -c 'import onnx'
    need nodejs npm -- command -v npm
fi
if [ "$profile" = test ] || [ "$profile" = mpi ]; then
    need libopenmpi-dev openmpi-bin -- probe_mpi
fi

# onnxruntime-node, the ONNX runtime the interop test runs exported models in: from npm into
# $BUILD/node (not committed), once npm is there. --ignore-scripts: its install script would
# download a GPU build; the CPU runtime ships inside the package. The probe loads the native
# runtime. A failure is not fatal: the interop test then says it skipped onnxruntime.
ORT_VERSION=1.30.0
ort_ok() { NODE_PATH="$1/node_modules" node -e 'require("onnxruntime-node").InferenceSession' >/dev/null 2>&1; }
if [ "$profile" = test ] && command -v npm >/dev/null 2>&1 && ! ort_ok "${BUILD:-build}/node"; then
    node_dir=${BUILD:-build}/node
    echo "nnc: installing onnxruntime-node@$ORT_VERSION into $node_dir (npm)"
    mkdir -p "$node_dir" && [ -f "$node_dir/package.json" ] ||
        echo '{"name": "nnc-test-tools", "private": true}' >"$node_dir/package.json"
    npm install --prefix "$node_dir" --ignore-scripts --no-audit --no-fund "onnxruntime-node@$ORT_VERSION" >&2 &&
        ort_ok "$node_dir" ||
        echo "nnc: warning: onnxruntime-node did not install; the interop test will skip its ONNX runtime checks" >&2
fi

[ -z "$missing" ] && exit 0
# One name once, in a stable order.
missing=$(printf '%s\n' $missing | sort -u | tr '\n' ' ' | sed 's/ $//')
cmd="apt-get install -y --no-install-recommends $missing"
if [ "${2:-}" = --installed ]; then
    echo "nnc: still failing after installing: $missing; the probes said:" >&2
    cat "$probe_dir"/*.log >&2 2>/dev/null
    exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "nnc: installing missing packages: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && $cmd || exit 1
    # Probe again: a package that installed but still does not link is a real problem.
    # The BLAS flags the Makefile passed were read before OpenBLAS was there.
    rm -rf "$probe_dir"
    unset BLAS_CFLAGS BLAS_LIBS
    exec sh "$0" "$profile" --installed
fi
echo "nnc: missing packages: $missing" >&2
echo "nnc: install them with:  sudo apt-get update && sudo $cmd" >&2
exit 1
