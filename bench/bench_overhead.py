"""What a pykern call costs beyond its kernel: each op's public call next to the bare NumPy work.

    python bench/bench_overhead.py [--calls 2000] [--repeats 15] [--json PATH]

For every op with host variants, on small inputs where the dispatch is most of the cost: the
public call (``pk.relu(x)``, ``pk.relu(x, out=y)`` for ops that take ``out=``) and, on the same
arrays, the bare work, i.e. the backend's default variant called directly with the parameters the
dispatch would pass it (for relu that is ``np.maximum(x, 0, out=y)``). The difference is pykern's
overhead per call: validation, variant lookup, output allocation, the fork gate. Issue 20 set a
budget for two of them (relu on 1,000 float32, with and without ``out=``: 10 us; conv2d on a tiny
input: 15 us); the table says whether each was met in this run.

Timing: blocks of back-to-back calls timed with perf_counter, per-call time = block / calls; the
median and interquartile range over the blocks, calls and bare work alternating block by block so
that a burst of load from another process hits both. Run it from outside the repository root, on
an installed pykern, and on a quiet machine: on 2 shared cores the spread says how far to trust it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

# Per-call budgets from issue 20, in microseconds: (op, case id, with out=) -> budget.
BUDGETS_US = {("relu", "1000", False): 10.0, ("relu", "1000", True): 10.0, ("conv2d", "tiny", False): 15.0}


def _cases(pk, specs):
    """(op, case id, arrays, params) of each op: its smallest test case, plus the budgeted ones."""
    rng = np.random.default_rng(20)
    out = []
    for op, spec in specs.items():
        if not pk.variants(op, "numpy"):
            continue
        cases = {"smallest": spec.test_cases("numpy")[0]}
        if op == "relu":
            cases = {"1000": {"shape": (1000,)}}
        elif op == "conv2d":
            cases["tiny"] = {"N": 1, "C": 2, "H": 6, "W": 6, "K": 3, "R": 3, "S": 3}
        for cid, case in cases.items():
            arrays, params = spec.make_inputs(case, "float32", rng)
            out.append((op, cid, arrays, params))
    return out


def _time_pair(call, bare, calls, repeats):
    """Per-call seconds of ``call`` and ``bare``: blocks alternate; (median, iqr) of each."""
    from pykern._timing import summarize
    for f in (call, bare):  # warm-up: first-call imports, caches, BLAS threads
        for _ in range(min(calls, 200)):
            f()
    samples = ([], [])
    for _ in range(repeats):
        for f, s in zip((call, bare), samples):
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            s.append((time.perf_counter() - t0) / calls)
    return tuple(summarize(s) for s in samples)


def measure(calls: int = 2000, repeats: int = 15) -> list:
    """One row per (op, case, out=): call, bare work and overhead, in seconds."""
    import pykern as pk
    from pykern._dispatch import resolve
    from pykern.ops import SPECS
    rows = []
    for op, cid, arrays, params in _cases(pk, SPECS):
        fn = getattr(pk, op)
        problem = resolve(op, arrays, params)
        y = np.empty(problem.out_shape, problem.out_dtype)
        bare_fn, bare_params = problem.variant.fn, problem.params
        inputs = [arrays.get(name) for name in SPECS[op].inputs]

        if problem.variant.takes_problem:  # a compiled row: its launch, dims already computed
            def bare():
                bare_fn(problem, inputs, y)
        else:
            def bare():
                bare_fn(*inputs, y, **bare_params)

        for with_out in (False, True) if SPECS[op].in_place_ok else (False,):
            kwargs = {**params, "out": y} if with_out else params
            call_t, bare_t = _time_pair(lambda: fn(**arrays, **kwargs), bare, calls, repeats)
            budget = BUDGETS_US.get((op, cid, with_out))
            rows.append({"op": op, "case": cid, "out": with_out, "variant": problem.variant.key,
                         "shapes": {k: list(v.shape) for k, v in arrays.items() if v is not None},
                         "call_s": call_t.median, "call_iqr_s": call_t.iqr, "bare_s": bare_t.median,
                         "bare_iqr_s": bare_t.iqr, "overhead_s": call_t.median - bare_t.median,
                         "budget_s": None if budget is None else budget * 1e-6})
    return rows


def _print(rows) -> None:
    print(f"{'op':<24}{'case':<10}{'out=':<6}{'call us':>10}{'bare us':>10}{'overhead':>10}{'budget':>8}  "
          "default variant")
    for r in rows:
        budget = "" if r["budget_s"] is None else f"{r['budget_s'] * 1e6:.0f}"
        verdict = "" if r["budget_s"] is None else ("  met" if r["overhead_s"] <= r["budget_s"] else "  OVER")
        print(f"{r['op']:<24}{r['case']:<10}{'yes' if r['out'] else '':<6}{r['call_s'] * 1e6:>10.2f}"
              f"{r['bare_s'] * 1e6:>10.2f}{r['overhead_s'] * 1e6:>10.2f}{budget:>8}  {r['variant']}{verdict}")
    print("median per call over blocks of back-to-back calls; overhead = call - bare work")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000, help="calls per timed block (default 2000)")
    ap.add_argument("--repeats", type=int, default=15, help="timed blocks of each (default 15)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows, with the machine's description")
    args = ap.parse_args(argv)
    from pykern._install import require_built
    require_built("bench_overhead.py")  # never time a source tree's NumPy fallback
    if args.calls < 1 or args.repeats < 1:
        ap.error("--calls and --repeats must be >= 1")
    rows = measure(args.calls, args.repeats)
    _print(rows)
    if args.json:
        from pykern.benchmark.environment import environment
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"what": "pykern per-call overhead (bench/bench_overhead.py)",
                       "environment": environment(), "rows": rows}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
