#!/usr/bin/env bash
# Builds pykern._cuda_sim with -fsanitize=address,undefined (PYKERN_SIM_SANITIZE=1) into a
# throwaway directory and runs the CUDA C++ tests against it: out-of-bounds global or
# dynamic-shared-memory accesses, use-after-free and undefined behaviour in the kernels and
# launchers then stop the test with a report. Uses the current Python environment (its pytest,
# numpy, numba); skips nvcc (PYKERN_NO_CUDA=1). Its own build directory (build/sanitize) keeps
# the normal build's objects intact.
#   usage: csrc/sim/sanitize.sh [extra pytest arguments]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
target="$(mktemp -d)/site"
trap 'rm -rf "$(dirname "$target")"' EXIT
start=$(date +%s)
PYKERN_SIM_SANITIZE=1 PYKERN_NO_CUDA=1 python -m pip install -q --no-build-isolation --no-deps \
  --target "$target" --config-settings=build-dir="$repo/build/sanitize" "$repo"
built=$(date +%s)
echo "sanitize: build took $((built - start))s"
# The interpreter is not instrumented, so the runtimes must be loaded first; leak checking
# would report the interpreter's own allocations.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYKERN_CUDA_SIM=1 PYTHONPATH="$target"
# From outside the repository, so `import pykern` is the instrumented build, not the sources.
cd "$(dirname "$target")"
# An editable install's import hook outranks PYTHONPATH: the tests would then run the
# uninstrumented build and report it clean. (scikit-build-core's hook steps aside for the build
# directory named in SKBUILD_EDITABLE_SKIP.)
where="$(python -c 'import pykern; print(pykern.__file__)')"
case "$where" in
  "$target"/*) ;;
  *) echo "sanitize: the tests would import pykern from $where, not the instrumented build; with an editable"
     echo "install, set SKBUILD_EDITABLE_SKIP to its build directory (e.g. $repo/build/<wheel tag>)"
     exit 2 ;;
esac
python -m pytest -q -p no:cacheprovider --rootdir="$repo" \
  "$repo/tests/test_cuda_sim.py" "$repo/tests/test_cuda_sim_ptx.py" "$repo/tests/test_cuda_sim_tma.py" \
  "$repo/tests/test_cuda_sim_wgmma.py" \
  "$repo/tests/test_matmul_cuda.py" "$repo/tests/test_conv2d_cuda.py" \
  "$repo/tests/test_correctness.py" -k "cuda or sim" "$@"
echo "sanitize: tests took $(($(date +%s) - built))s"
