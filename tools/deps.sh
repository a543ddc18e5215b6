#!/bin/sh
# Check the build's Debian packages; install the missing ones with apt-get when
# running as root, otherwise print the exact command and fail.
set -u
missing=""
need() { # need PACKAGE TEST...
    pkg=$1; shift
    if ! "$@" >/dev/null 2>&1; then missing="$missing $pkg"; fi
}
have_header() { printf '#include <%s>\nint main(void){return 0;}\n' "$1" | cc -x c -fsyntax-only - ${2:-}; }
need flex             command -v flex
need bison            command -v bison
need make             command -v make
need gcc              command -v cc
need pkg-config       command -v pkg-config
need zlib1g-dev       have_header zlib.h
need libpng-dev       have_header png.h
need libopenblas-dev  have_header cblas.h "$(pkg-config --cflags openblas 2>/dev/null)"
need libcriterion-dev have_header criterion/criterion.h
need clang            command -v clang
need libomp-dev       sh -c 'printf "#include <omp.h>\nint main(void){return 0;}\n" | clang -fopenmp -x c -fsyntax-only -'
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ]; then
    echo "nnc: installing missing packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && $cmd
    exit $?
fi
echo "nnc: missing packages:$missing" >&2
echo "nnc: install them with:  sudo apt-get update && sudo $cmd" >&2
exit 1
