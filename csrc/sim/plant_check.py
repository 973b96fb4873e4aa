#!/usr/bin/env python3
"""Plants bugs in the real kernels/**/*.cu and shows that the CUDA tests, run in the simulator,
fail exactly the variants each bug breaks.

tests/test_cuda_sim.py proves the simulator catches bug *kinds* on small kernels of its own
(csrc/sim/planted.cu); this script asks the stronger question about the production kernels and
the production test suite. It copies the committed tree (git archive HEAD) to a temporary
directory, edits one line per bug, builds only pykern._cuda_sim there (PYKERN_NO_CUDA=1), runs
the CUDA tests against it, and reports, per bug, which variants failed. It exits non-zero when
a bug goes unnoticed, or when a variant the bugs do not touch fails. Bugs that break the same
variant cannot share a build (one would hide whether the other was caught), so the bugs come in
rounds, each planted, built (incrementally, in one build directory) and tested on its own.

Each edit names the exact text it replaces, so when a kernel changes the script stops with
"planted text not found" instead of silently planting nothing; update the text then.

    python csrc/sim/plant_check.py          # a few minutes on 2 cores (each round ~30 s to build)
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# (bug, file, original text, planted text, variants the bug must break)
PLANTS = [
    ("missing __syncthreads (smem_tiled)", "kernels/matmul/smem_tiled.cu",
     "    __syncthreads();\n    // as[ty][k] is one address per warp",
     "    // PLANTED: __syncthreads() removed\n    // as[ty][k] is one address per warp",
     {"matmul/cuda/smem_tiled"}),
    ("cp.async wait count off by one (double_buffer)", "kernels/matmul/warptile.cu",
     "    cp_async_wait<STAGES - 2>();\n    // Everyone's part of k-tile kt",
     "    cp_async_wait<STAGES - 1>();  // PLANTED\n    // Everyone's part of k-tile kt",
     # im2col_gemm's GEMM is double_buffer on an sm_80+ device
     {"matmul/cuda/double_buffer", "conv2d/cuda/im2col_gemm"}),
    ("missing __syncwarp before reading back wmma stores", "kernels/matmul/wmma.cu",
     "wmma::mem_row_major);\n    __syncwarp();",
     "wmma::mem_row_major);\n    // PLANTED: __syncwarp() removed",
     {"matmul/cuda/wmma_fp16", "matmul/cuda/wmma_bf16"}),
    ("relu store bound i <= n", "kernels/relu.cu",
     "  if (i < n) y[i] = relu1(x[i]);",
     "  if (i <= n) y[i] = relu1(x[i]);  // PLANTED",
     # vectorized runs the naive kernel on its head and tail
     {"relu/cuda/naive", "relu/cuda/vectorized"}),
    ("im2col bound i > total", "kernels/conv2d/im2col_gemm.cu",
     "  if (i >= static_cast<int64_t>(g.C) * g.RS * g.PQ) return;",
     "  if (i > static_cast<int64_t>(g.C) * g.RS * g.PQ) return;  // PLANTED",
     {"conv2d/cuda/im2col_gemm"}),
]

# The bugs of the mma.sync machinery (kernels/mma_tile.cuh, kernels/tile.cuh), which matmul's and
# conv2d's mma_sync rungs share, so each must break both; then conv2d's own staging of x. They
# share variants, so one round each.
MMA_BOTH = {"matmul/cuda/mma_sync", "conv2d/cuda/mma_sync"}
MMA_SYNC_PLANTS = [
    ("mma_sync: tiles stored swizzled, a read by ldmatrix without the swizzle", "kernels/mma_tile.cuh",
     "ldmatrix<4, false>(af[i], a_s + swizzled_offset(w.wr + i * 16 + frag_row, kk + frag_col, BK));",
     "ldmatrix<4, false>(af[i], a_s + (w.wr + i * 16 + frag_row) * BK + kk + frag_col);  // PLANTED",
     MMA_BOTH),
    # Consistent on write and read, so every result stays right: only the simulator's count of
    # ldmatrix bank conflicts (test_ldmatrix_reads_are_bank_conflict_free and conv2d's
    # test_mma_sync_ldmatrix_reads_are_bank_conflict_free) can see it. It also breaks the wgmma
    # rung's fallback copies, which write the TMA's 128B swizzle through swizzled_offset for the
    # descriptors to read: there the reader is the hardware's rule, so the results go wrong.
    ("mma_sync: a swizzle by row % 4, leaving ldmatrix 2-way bank conflicts", "kernels/tile.cuh",
     "return r * s_ld + (((c >> 3) ^ (r & 7)) << 3) + (c & 7);",
     "return r * s_ld + (((c >> 3) ^ (r & 3)) << 3) + (c & 7);  // PLANTED",
     MMA_BOTH | {"matmul/cuda/wgmma"}),
    ("mma_sync: wrong fragment index (b registers of two n8 tiles crossed)", "kernels/mma_tile.cuh",
     "bf[j][0] = r[0], bf[j][1] = r[1], bf[j + 1][0] = r[2], bf[j + 1][1] = r[3];",
     "bf[j][0] = r[0], bf[j][1] = r[2], bf[j + 1][0] = r[1], bf[j + 1][1] = r[3];  // PLANTED",
     MMA_BOTH),
    ("mma_sync: cp.async wait one stage short", "kernels/mma_tile.cuh",
     "    cp_async_wait<STAGES - 2>();\n    __syncthreads();  // k-tile kt is everyone's now",
     "    cp_async_wait<STAGES - 1>();  // PLANTED\n    __syncthreads();  // k-tile kt is everyone's now",
     MMA_BOTH),
    ("conv2d mma_sync: gathered x tile stored without the swizzle", "kernels/conv2d/mma_sync.cu",
     "T* dst = bs + swizzled_offset(row, chunk * V, BN);",
     "T* dst = bs + row * BN + chunk * V;  // PLANTED",
     {"conv2d/cuda/mma_sync"}),
    ("conv2d mma_sync: a run copied although it passes the input row's end", "kernels/conv2d/mma_sync.cu",
     "iw >= 0 && iw < g.W - (V - 1)",
     "iw >= 0 && iw < g.W  /* PLANTED */",
     {"conv2d/cuda/mma_sync"}),
]

# The wgmma rung's pipeline (kernels/matmul/wgmma.cu): the simulator poisons a stage that the
# producer refills under an in-flight wgmma, so releasing a stage early must fail the rung's tests.
WGMMA_PLANTS = [
    ("wgmma: wait_group 2 where the ring releases stage kt - 1 after wait_group 1", "kernels/matmul/wgmma.cu",
     "    wgmma_wait<1>();\n    wgmma_fence_operand(acc);\n    if (kt > 0)",
     "    wgmma_wait<2>();  // PLANTED\n    wgmma_fence_operand(acc);\n    if (kt > 0)",
     {"matmul/cuda/wgmma"}),
    ("wgmma: the stage released right after the commit, before any wait_group", "kernels/matmul/wgmma.cu",
     "    wgmma_commit();\n    wgmma_wait<1>();\n    wgmma_fence_operand(acc);\n"
     "    if (kt > 0) mbarrier_arrive(&empty[(kt - 1) % Cfg::STAGES]);",
     "    wgmma_commit();\n    mbarrier_arrive(&empty[kt % Cfg::STAGES]);  // PLANTED\n    wgmma_wait<1>();\n"
     "    wgmma_fence_operand(acc);",
     {"matmul/cuda/wgmma"}),
]

ROUNDS = [PLANTS] + [[plant] for plant in MMA_SYNC_PLANTS + WGMMA_PLANTS]

TESTS = ["tests/test_correctness.py", "tests/test_matmul_cuda.py", "tests/test_conv2d_cuda.py"]


def failed_variants(report: str) -> set[str]:
    """Variant keys of the failed tests: from the generated test ids (op/cuda/name) and the
    op-specific files (test_<op>_cuda.py::test_...[name-...] or [...-name-dtype])."""
    keys = set()
    for line in report.splitlines():
        if not line.startswith("FAILED "):
            continue
        m = re.search(r"((?:relu|matmul|conv2d)/cuda/\w+)", line)
        if m:
            keys.add(m.group(1))
            continue
        m = re.search(r"test_(matmul|conv2d)_cuda\.py::test_(mma_sync|wgmma)_", line)
        if m:  # one rung's own tests, parametrized by shape, not by variant
            keys.add(f"{m.group(1)}/cuda/{m.group(2)}")
            continue
        m = re.search(r"test_(matmul|conv2d)_cuda\.py::\w+\[([^\]]*)\]", line)
        if m:
            op, params = m.group(1), m.group(2).split("-")
            from_names = [p for p in params if re.fullmatch(r"[a-z][a-z0-9_]*", p) and not p.startswith("float")
                          and not p.startswith("bfloat") and p not in ("y16", "y4")]
            keys.update(f"{op}/cuda/{p}" for p in from_names[:1])
            if "every_tile" in line:
                keys.add("conv2d/cuda/implicit_gemm")
    return keys


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pykern-plant-"))
    try:
        return run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path) -> int:
    start = time.time()
    pristine, src = work / "pristine", work / "src"
    pristine.mkdir()
    subprocess.run(f"git -C {REPO} archive HEAD | tar -x -C {pristine}", shell=True, check=True)
    shutil.copytree(pristine, src)
    planted_paths = sorted({path for plants in ROUNDS for _, path, _, _, _ in plants})
    ok = True
    for n, plants in enumerate(ROUNDS):
        # Every file any round plants is rewritten each round (planted or restored), so its new
        # mtime makes the incremental build recompile what the last round left planted.
        texts = {path: (pristine / path).read_text() for path in planted_paths}
        for bug, path, old, new, _ in plants:
            if texts[path].count(old) != 1:
                print(f"plant_check: planted text not found exactly once in {path} for '{bug}':\n{old}")
                return 2
            texts[path] = texts[path].replace(old, new)
        for path, text in texts.items():
            (src / path).write_text(text)
        round_start = time.time()
        site = work / f"site{n}"
        env = dict(os.environ, PYKERN_NO_CUDA="1")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                        "--target", str(site), "--config-settings=build-dir=" + str(REPO / "build" / "plant"),
                        str(src)], check=True, env=env)
        built = time.time()
        env = dict(os.environ, PYKERN_CUDA_SIM="1", PYTHONPATH=str(site))
        # An editable install's import hook outranks PYTHONPATH: the tests would then run the
        # unplanted pykern and report every bug missed.
        where = subprocess.run([sys.executable, "-c", "import pykern; print(pykern.__file__)"], cwd=work, env=env,
                               capture_output=True, text=True, check=False).stdout.strip()
        if not where.startswith(str(site)):
            print(f"plant_check: the tests would import pykern from {where or '(nowhere)'}, not the planted build "
                  f"in {site}; run this with a Python where pykern is not installed in editable mode")
            return 2
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda",
                               "--rootdir", str(src), *[str(src / t) for t in TESTS]],
                              check=False, cwd=work, env=env, capture_output=True, text=True)
        failed = failed_variants(proc.stdout)
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:]
        print(f"plant_check round {n + 1}/{len(ROUNDS)}: build {built - round_start:.0f}s, "
              f"tests {time.time() - built:.0f}s: {summary}")
        round_expected = set()
        for bug, _, _, _, expected in plants:
            round_expected |= expected
            missed = expected - failed
            print(f"  {'caught' if not missed else 'MISSED'}: {bug}: failing {sorted(expected & failed)}"
                  + (f"; not failing {sorted(missed)}" if missed else ""))
            ok &= not missed
        extra = failed - round_expected
        if extra:
            print(f"  UNEXPECTED failures in variants no bug of this round touches: {sorted(extra)}")
            ok = False
    print(f"plant_check: {sum(len(r) for r in ROUNDS)} bugs in {len(ROUNDS)} rounds, {time.time() - start:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
