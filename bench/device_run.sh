#!/usr/bin/env bash
# bench/device_run.sh [RESULTS_DIR]
#
# One command for a fresh GPU machine with no network (Python with numba, numba-cuda, cupy, torch,
# pybind11, scikit-build-core, pytest, pytest-benchmark, tqdm and matplotlib preinstalled):
#   build   pip install --no-build-isolation --no-deps .   (for this GPU's architecture only)
#   tests   pytest tests, GPU tests included
#   sanitize-memcheck, sanitize-racecheck
#           compute-sanitizer over every CUDA C++ variant on small shapes (bench/sanitize.py)
#   bench   python -m pykern bench: the sweep, JSON and plot
#   bench-half
#           the tensor-core rungs in float16 (matmul at 4096 and 8192, conv2d's cases) against
#           the libraries' half-precision GEMM and convolution (cuBLAS, cuDNN through torch/CuPy)
#   compare python -m pykern compare: CPU vs GPU, JSON and plot
# then prints a summary table last (bench/device_summary.py). Everything goes to RESULTS_DIR (default
# bench/results/<device-name-slug>/); results files are only ever written by this script.
#
# Budget: under 9 minutes on an H100. Each step runs under `timeout` with its own budget, cut
# to what is left of the total once the later steps' minimum budgets are reserved. A step that
# fails or times out is recorded and the later steps still run.
#
# Environment:
#   PYTHON=python3             the interpreter
#   PYKERN_TOTAL_BUDGET=525    seconds for the whole run
#   PYKERN_DRY_RUN=1           no build: the source tree on PYTHONPATH, so the CPU parts of the
#                              pipeline run end to end on a machine without a GPU
#   OUT=<dir>                  the device tool's output folder: at most 8 files, no deep folders,
#                              so results.tar.gz (the whole folder), summary.txt, the JSONs and
#                              the plots are copied there, flat
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
TOTAL="${PYKERN_TOTAL_BUDGET:-525}"
DRY="${PYKERN_DRY_RUN:-0}"
T0=$(date +%s)
DEADLINE=$((T0 + TOTAL))

GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)"
SLUG="$(printf '%s' "${GPU_NAME:-no-gpu-$(hostname -s 2>/dev/null || echo host)}" | tr '[:upper:]' '[:lower:]' \
        | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')"
RESULTS="${1:-$REPO/bench/results/$SLUG}"
mkdir -p "$RESULTS" || { echo "device_run: cannot create $RESULTS" >&2; exit 2; }
RESULTS="$(cd "$RESULTS" && pwd)"
# Only the files this script writes are replaced; anything else in RESULTS_DIR is left alone.
for f in env.log build.log build-target.log tests.log tests-junit.xml sanitize-memcheck.log sanitize-racecheck.log \
         bench.log compare.log bench.json compare.json bench.png compare.png steps.tsv summary.txt summary.err \
         bench-half.log bench-half.json bench-half.png; do
  rm -f "${RESULTS:?}/$f"
done
# Python runs from an empty folder, so the source tree never shadows the installed package.
WORK="$(mktemp -d)"
STEPS="$RESULTS/steps.tsv"
: > "$STEPS"
if git -C "$REPO" rev-parse HEAD >/dev/null 2>&1; then
  PYKERN_GIT_COMMIT="$(git -C "$REPO" rev-parse HEAD)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo '+dirty')"
  export PYKERN_GIT_COMMIT
fi

# Minimum seconds each later step is guaranteed (the reserve a step leaves for the ones after it).
declare -A MIN=([tests]=60 [sanitize-memcheck]=30 [sanitize-racecheck]=30 [bench]=90 [bench-half]=30 [compare]=30
                [final]=15)

reserve_after() {  # the sum of the minimum budgets of the steps after $1
  local after=0 seen=0 s
  for s in build tests sanitize-memcheck sanitize-racecheck bench bench-half compare final; do
    if (( seen )); then after=$(( after + ${MIN[$s]:-0} )); fi
    [[ $s == "$1" ]] && seen=1
  done
  echo "$after"
}

budget() {  # budget STEP WANT: WANT seconds, or what is left after reserving the later steps (>= 10)
  local left=$(( DEADLINE - $(date +%s) - $(reserve_after "$1") ))
  if (( left < $2 )); then echo $(( left > 10 ? left : 10 )); else echo "$2"; fi
}

record() {  # record NAME STATUS SECONDS RC [NOTE]
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$STEPS"
}

step() {  # step NAME SECONDS CMD...: run CMD from $WORK under timeout, output to NAME.log
  local name=$1 secs=$2 t rc status
  shift 2
  t=$(date +%s)
  echo "== $name (budget ${secs}s)"
  ( cd "$WORK" && timeout --kill-after=10 "$secs" "$@" ) > "$RESULTS/$name.log" 2>&1
  rc=$?
  if (( rc == 124 || rc == 137 )); then status="TIMEOUT"; elif (( rc != 0 )); then status="FAILED(rc=$rc)"; else status="ok"; fi
  record "$name" "$status" "$(( $(date +%s) - t ))" "$rc"
  echo "   $status after $(( $(date +%s) - t ))s: $RESULTS/$name.log"
  return "$rc"
}

skip() {  # skip NAME WHY
  record "$1" "skipped" 0 "-" "$2"
  echo "== $1: skipped ($2)"
}

# --- environment ---------------------------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"; echo "repo: $REPO"; echo "commit: ${PYKERN_GIT_COMMIT:-unknown}"
  echo "python: $(command -v "$PY") $("$PY" --version 2>&1)"
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  command -v nvcc >/dev/null && nvcc --version
  "$PY" - <<'EOF' 2>&1
import importlib
for m in ("numpy", "numba", "numba_cuda", "cupy", "torch", "pytest", "pytest_benchmark", "tqdm", "matplotlib",
          "pybind11", "scikit_build_core"):
    try:
        print(f"{m}: {getattr(importlib.import_module(m), '__version__', 'installed')}")
    except Exception as e:
        print(f"{m}: missing ({type(e).__name__}: {e})")
EOF
} > "$RESULTS/env.log" 2>&1

# --- build -----------------------------------------------------------------------------------------
if [[ $DRY == 1 ]]; then
  skip build "PYKERN_DRY_RUN=1: source tree on PYTHONPATH"
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  # Build for this GPU only (half the compile time of the default 80;90a). Compute capability 9.0
  # builds sm_90a, the target wgmma needs (plain sm_90 has none: the wgmma rung would trap).
  ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ')"
  [[ $ARCH == 90 ]] && ARCH=90a
  [[ -n $ARCH ]] && export PYKERN_CUDA_ARCHITECTURES="$ARCH"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  step build "$(budget build 240)" bash -c "cd '$REPO' && '$PY' -m pip install --no-build-isolation --no-deps -v ."
  if grep -q "externally-managed-environment" "$RESULTS/build.log" 2>/dev/null; then
    # A system Python that refuses installs: install into a folder of our own instead.
    step build-target "$(budget build 240)" bash -c \
      "cd '$REPO' && '$PY' -m pip install --no-build-isolation --no-deps -v --target '$WORK/site' ." \
      && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if ! (cd "$WORK" && "$PY" -c "import pykern._cuda") >> "$RESULTS/build.log" 2>&1; then
    if ! (cd "$WORK" && "$PY" -c "import pykern") >/dev/null 2>&1; then
      # Keep going on the source tree: the tests, Numba and CPU parts still run and say why cuda does not.
      export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    fi
    record build-check "FAILED" 0 1 "pykern._cuda does not import: the cuda backend is unavailable below"
  fi
fi
(cd "$WORK" && "$PY" -c "import pykern, sys; print('pykern from', pykern.__file__); print(pykern.backends())") \
  >> "$RESULTS/env.log" 2>&1

# --- tests -----------------------------------------------------------------------------------------
step tests "$(budget tests 180)" "$PY" -m pytest "$REPO/tests" -q -p no:cacheprovider \
  --junitxml="$RESULTS/tests-junit.xml"

# --- sanitizers -----------------------------------------------------------------------------------
SAN="$(command -v compute-sanitizer 2>/dev/null)"
if [[ -z $SAN ]]; then
  for c in "$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/nvcc)")/compute-sanitizer" \
           /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer \
           /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
    if [[ -x $c ]]; then SAN="$c"; break; fi
  done
fi
if [[ -z $SAN ]]; then  # the pip wheel nvidia-cuda-sanitizer-api ships the binary too
  SAN="$("$PY" -c "import nvidia, os, glob; print(next(iter(sorted(f for p in nvidia.__path__ for f in glob.glob(os.path.join(p, '*', 'compute-sanitizer', 'compute-sanitizer')))), ''))" 2>/dev/null)"
fi
for tool in memcheck racecheck; do
  if [[ -n $SAN ]]; then
    S="$(budget "sanitize-$tool" 75)"
    step "sanitize-$tool" "$S" "$SAN" --tool "$tool" --error-exitcode 86 \
      "$PY" "$REPO/bench/sanitize.py" --time-budget "$(( S > 30 ? S - 15 : S / 2 ))"
  elif [[ $DRY == 1 ]]; then
    record "sanitize-$tool" "skipped" 0 "-" "compute-sanitizer not found (dry run: plan listed in sanitize-$tool.log)"
    (cd "$WORK" && "$PY" "$REPO/bench/sanitize.py" --list) > "$RESULTS/sanitize-$tool.log" 2>&1
  else
    skip "sanitize-$tool" "compute-sanitizer not found on PATH, in /usr/local/cuda*/bin or in the nvidia wheels"
  fi
done

# --- benchmark sweep and CPU vs GPU comparison -----------------------------------------------------
B="$(budget bench 220)"
step bench "$B" "$PY" -m pykern bench --json "$RESULTS/bench.json" --plot "$RESULTS/bench.png" \
  --time-budget "$(( B > 60 ? B - 30 : B * 2 / 3 ))"
# Only the rungs that take float16 run here (wmma, mma_sync, wgmma on sm_90a), each beside the
# libraries' float16 matmul and conv2d: issue 23's goals are mma_sync >= 70% of cuBLAS at 4096^3
# and wgmma >= 85% at 8192^3.
H="$(budget bench-half 60)"
step bench-half "$H" "$PY" -m pykern bench --op matmul --sizes 4096,8192 --op conv2d --dtype float16 \
  --json "$RESULTS/bench-half.json" --plot "$RESULTS/bench-half.png" --time-budget "$(( H > 30 ? H - 15 : H * 2 / 3 ))"
C="$(budget compare 60)"
step compare "$C" "$PY" -m pykern compare --json "$RESULTS/compare.json" --plot "$RESULTS/compare.png" \
  --time-budget "$(( C * 2 / 3 ))"

# --- summary, tarball, $OUT -------------------------------------------------------------------------
record total "-" "$(( $(date +%s) - T0 ))" "-" "budget ${TOTAL}s"
if ! (cd "$WORK" && PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$REPO/bench/device_summary.py" "$RESULTS") \
      > "$RESULTS/summary.txt" 2> "$RESULTS/summary.err"; then
  { echo "summary script failed (see summary.err); steps:"; cat "$STEPS"; } > "$RESULTS/summary.txt"
fi
[[ -s "$RESULTS/summary.err" ]] || rm -f "$RESULTS/summary.err"
tar -czf "$WORK/results.tar.gz" -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")" 2>/dev/null
if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT"
  cp "$WORK/results.tar.gz" "$OUT/"
  for f in summary.txt bench.json bench-half.json compare.json bench.png compare.png tests.log; do
    [[ -f "$RESULTS/$f" ]] && cp "$RESULTS/$f" "$OUT/"
  done
  echo "copied results.tar.gz and the summary, JSON, plots and test log to $OUT"
fi
rm -rf "$WORK"
echo
cat "$RESULTS/summary.txt"
# Exit status: non-zero if any step failed, so a caller can tell; every step ran regardless.
awk -F'\t' '$2 ~ /FAILED|TIMEOUT/ { bad = 1 } END { exit bad }' "$STEPS"
