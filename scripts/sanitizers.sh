#!/usr/bin/env bash
# The kernel and block tests against a CPU library built with AddressSanitizer and UBSan.
#
#   bash scripts/sanitizers.sh        (from the repository root, in the environment of the tests)
#
# The checkout is copied to a scratch folder and its kernels rebuilt there with
# -fsanitize=address,undefined; -fno-wrapv undoes Python's -fwrapv, without which UBSan cannot
# see signed overflow. Python itself is not instrumented, so the sanitizers' runtimes are
# preloaded. Any report fails the run (halt_on_error); leaks are not checked (CPython keeps
# memory until exit by design).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
tar -C "$root" --exclude=.git --exclude='.venv*' --exclude='*.so' -cf - . | tar -C "$scratch" -xf -
cd "$scratch"
flags="-fsanitize=address,undefined -fno-wrapv -fno-omit-frame-pointer -fno-sanitize-recover=all"
CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" python kernels/build_cpu.py > build.log 2>&1 \
    || { cat build.log; exit 1; }
library="$(ls autonn/_kernels_cpu*.so)"
nm -D "$library" | grep __asan_report > /dev/null \
    || { echo "sanitizers: $library is not instrumented"; exit 1; }
# The editable install's finder goes first on sys.meta_path (so that the folder holding a clone
# cannot shadow the package); here the scratch copy must be imported: a sitecustomize, which
# runs after the .pth files, takes that finder out again.
cat > sitecustomize.py <<'PY'
import sys
sys.meta_path[:] = [finder for finder in sys.meta_path
                    if not getattr(finder, "__module__", "").startswith("__editable__")]
PY
export PYTHONPATH="$scratch${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# python puts this folder first on sys.path: the instrumented copy is the one imported
python -c "import os, sys, autonn.kernels as k; lib = k.cpu_library().__file__
sys.exit(0 if lib.startswith(os.getcwd()) else 'sanitizers: imported ' + lib)"
python -m pytest -q -p no:cacheprovider -x tests/nn tests/test_kernels_build.py \
    tests/test_cpu_matmul.py -k "not nvcc and not cuda" "$@"
