"""Run every CUDA C++ variant once per dtype on a few small, non-tile-multiple cases, checked
against the float64 reference. Meant to run under compute-sanitizer:

    compute-sanitizer --tool memcheck  --error-exitcode 86 python bench/sanitize.py
    compute-sanitizer --tool racecheck --error-exitcode 86 python bench/sanitize.py

The sanitizer reports out-of-bounds accesses and shared-memory races; this script exits 1 when
a result is wrong or a launch raises, and 0 when every variant ran and matched. The cases are
small (the sanitizers slow kernels down ~100x) and deliberately not multiples of any tile size,
so every kernel runs its edge and tail paths. Every variant runs in its first dtype before any
runs in its other dtypes, so that ``--time-budget`` (stop starting runs after that many seconds,
leaving the sanitizer time to print its summary) still covers each variant once. ``--list``
prints the plan without running.
"""
from __future__ import annotations

import argparse
import sys
import time

import pykern as pk
from pykern._check import run_case
from pykern._device import ext
from pykern._dispatch import Unsupported
from pykern.ops import SPECS

# Per op, two small cases that straddle the tile sizes used by the variants (16, 32, 64, 128, ...).
CASES = {
    "matmul": [{"M": 67, "N": 45, "K": 33}, {"M": 130, "N": 97, "K": 71}],
    "relu": [{"shape": (1000,)}, {"shape": (3, 4099)}],
    "conv2d": [dict(N=2, C=5, H=9, W=11, K=7, R=3, S=3, padding=1, bias=True),
               dict(N=1, C=3, H=17, W=15, K=10, R=5, S=5, stride=2, padding=2, activation="relu")],
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op", help="comma-separated ops (default: all)")
    ap.add_argument("--list", action="store_true", help="print what would run, run nothing")
    ap.add_argument("--time-budget", type=float, metavar="SECONDS", help="start no run after this long")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    ops = args.op.split(",") if args.op else list(SPECS)
    every = [(v, i, dtype, case) for op in ops for v in pk.variants(op, "cuda")
             for i, dtype in enumerate(v.dtypes) for case in CASES[op]]
    plan = [(v, dtype, case) for v, i, dtype, case in sorted(every, key=lambda r: r[1] > 0)]
    print(f"sanitize: {len(plan)} runs of {len({v.key for v, _, _ in plan})} CUDA C++ variants", flush=True)
    if args.list:
        for v, dtype, case in plan:
            print(f"  {v.key:32s} {dtype:9s} {SPECS[v.op].case_id(case)}")
        return 0
    avail = pk.backends()["cuda"]
    if not avail.available:
        print(f"sanitize: nothing run: the cuda backend is unavailable: {avail.reason}")
        return 0 if not plan else 2
    failed = skipped = 0
    for i, (v, dtype, case) in enumerate(plan):
        label = f"{v.key} {dtype} {SPECS[v.op].case_id(case)}"
        if args.time_budget is not None and time.perf_counter() - t0 > args.time_budget:
            skipped += 1
            print(f"SKIP  {label}: time budget of {args.time_budget:.0f} s used up", flush=True)
            continue
        try:
            cmp = run_case(v, case, dtype, seed=i)
        except Unsupported as e:
            skipped += 1
            print(f"SKIP  {label}: {e}", flush=True)
            continue
        except Exception as e:  # after a sticky CUDA error every later launch fails too: keep going, report all
            failed += 1
            print(f"ERROR {label}: {type(e).__name__}: {e}", flush=True)
            continue
        failed += not cmp.ok
        print(f"{'ok   ' if cmp.ok else 'WRONG'} {label}" + ("" if cmp.ok else "\n  " + cmp.message().replace("\n", "\n  ")),
              flush=True)
    ext().synchronize()
    print(f"sanitize: {len(plan) - failed - skipped} ok, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
