"""The compiled CPU ladder (pykern._cpu) against NumPy, side by side in one run: matmul's rungs
against np.matmul (GFLOP/s) on 1 and 2 threads, and relu / relu_backward against a copy of the
same bytes (GB/s), each also as a share of this machine's ceilings measured in the same run
(pykern/benchmark/ceilings.py: peak FMA throughput and STREAM bandwidth, on each thread count).

    python bench/bench_cpu_ladder.py [--sizes 512,1024,2048] [--threads 1,2] [--runs 3]
                                     [--relu-mib 64] [--json bench/results/cpu/cpu_ladder.json]

It imports the *installed* pykern and refuses to run without pykern._cpu: from a source tree the
compiled variants are absent and every figure would silently time something else. Every entry
is checked against the float64 reference before it is timed. Threads: each thread count is set
with threadpoolctl on NumPy's BLAS, which is also what pykern's compiled kernels read
(pykern/cpu/_compiled.py), so both sides get the same count. naive and blocked are one-thread
rungs: they run at the first thread count only. Each run times every entry once, round robin
(median of its repetitions) after a pause (--pause: OpenBLAS's worker threads spin for a while
after each call, and would otherwise take the cores of the entry after np.matmul), so a burst of
load from other processes hits all of them; the
report gives min / median / max over the runs, the ratio to np.matmul (or to the copy) per
run, and the CPU share other processes took during each run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


import pykern as pk  # noqa: E402  (the installed copy: main() refuses one without pykern._cpu)
from pykern._check import compare  # noqa: E402
from pykern._dispatch import prepare  # noqa: E402
from pykern._timing import host_clock, measure  # noqa: E402
from pykern.benchmark.ceilings import measure_ceilings, rate_on  # noqa: E402
from pykern.benchmark.environment import OtherLoad, environment, load_summary  # noqa: E402
from pykern.cpu import _compiled  # noqa: E402
from pykern.ops import SPECS  # noqa: E402

RUNGS = ("naive", "blocked", "simd", "threaded")
ONE_THREAD_ONLY = ("naive", "blocked")  # they never thread: timed at the first thread count only


def _checked(op, arrays, params, variant):
    """A prepared call of ``variant`` (None: the library baseline), checked once."""
    spec = SPECS[op]
    if variant is None:
        return None
    p = prepare(op, arrays, params, backend="numpy", variant=variant)
    p.run()
    got = p.finish()
    cmp = compare(got, spec.reference(arrays, params), spec.magnitude(arrays, params), str(got.dtype))
    if not cmp.ok:
        sys.exit(f"bench_cpu_ladder: {op}/{variant} fails the reference: {cmp.message()}")
    return p.run


def _matmul_entries(n, threads, first_threads, rng):
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    c = np.empty((n, n), np.float32)
    entries = {"np.matmul": lambda: np.matmul(a, b, out=c)}
    for r in RUNGS:
        if r in ONE_THREAD_ONLY and threads != first_threads:
            continue
        entries[r] = _checked("matmul", {"a": a, "b": b}, {}, r)
    return entries, 2.0 * n ** 3, "np.matmul"


def _relu_entries(mib, rng):
    n = (mib << 20) // 4
    x = rng.standard_normal(n).astype(np.float32)
    dy = rng.standard_normal(n).astype(np.float32)
    y = np.empty_like(x)
    return {
        "copy": (lambda: np.copyto(y, x), 2 * x.nbytes),
        "np.maximum": (lambda: np.maximum(x, np.float32(0), out=y), 2 * x.nbytes),
        "relu/simd": (_checked("relu", {"x": x}, {}, "simd"), 2 * x.nbytes),
        "relu_backward/simd": (_checked("relu_backward", {"dy": dy, "x": x}, {}, "simd"), 3 * x.nbytes),
        "relu_backward/bit_mask": (_checked("relu_backward", {"dy": dy, "x": x}, {}, "bit_mask"), 3 * x.nbytes),
    }


def _time_runs(entries: dict, runs: int, reps: int, pause: float) -> tuple[dict, list]:
    """{name: [median seconds per run]}, [other processes' CPU share per run]."""
    times = {k: [] for k in entries}
    loads = []
    for _ in range(runs):
        with OtherLoad() as load:
            for name, fn in entries.items():
                time.sleep(pause)  # OpenBLAS's workers spin after a call: let them sleep first
                t, _ = measure(fn, host_clock, warmup=1, min_reps=1, max_reps=reps, budget_s=1.0)
                times[name].append(t.median)
        loads.append(load.share)
    return times, loads


def _summary(values: list) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _pct(rates: list, ceiling) -> dict:
    """min / median / max of ``rates`` as % of ``ceiling`` (None where it could not be measured)."""
    return None if not ceiling else _summary([100.0 * r / ceiling for r in rates])


def _fmt_rate(rate) -> str:
    return "unavailable" if rate is None else f"{rate:.1f}"


def _fmt_pct(p) -> str:
    return "  -" if p is None else f"{p['median']:3.0f}%"


def _fmt_loads(loads) -> str:
    """Other processes' CPU share per run, as the tables print it ('?' where unknown)."""
    return ", ".join("?" if s is None else f"{100 * s:.0f}%" for s in loads)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512,1024,2048", help="matmul squares, float32")
    ap.add_argument("--threads", default="1,2", help="thread counts (BLAS's and pykern's alike)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5, help="timed calls per entry per run, at most (1 s budget)")
    ap.add_argument("--relu-mib", type=int, default=64, help="relu's input size in MiB (float32)")
    ap.add_argument("--pause", type=float, default=0.3,
                    help="seconds of sleep before each entry, so that the previous one's spinning threads "
                         "(OpenBLAS's keep a core busy for a while after each call) do not take its cores")
    ap.add_argument("--json", help="write every run's figures and the environment here")
    args = ap.parse_args(argv)
    from pykern._install import require_built
    require_built("bench_cpu_ladder.py", ("_cpu",))  # never time a source tree's NumPy fallback
    from threadpoolctl import threadpool_limits

    sizes = [int(s) for s in args.sizes.split(",") if s]
    thread_counts = [int(t) for t in args.threads.split(",") if t]
    rng = np.random.default_rng(0)
    out = {"command": "python bench/bench_cpu_ladder.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "isa": _compiled.isa(), "environment": environment(), "loadavg_before": os.getloadavg(),
           "matmul": [], "relu": [], "ceilings": {}}
    t_start = time.time()
    print(f"pykern {pk.__file__}; compiled kernels: {_compiled.isa()} path; load average {os.getloadavg()}")
    for th in thread_counts:
        with threadpool_limits(th):
            assert _compiled.threads() == th, "pykern's thread count must follow BLAS's"
            # measured on 1 and th threads: rate_on(ceiling, n) is the one an n-thread entry stands against
            ceilings = measure_ceilings({"cpu:compute:float32", "cpu:memory"})
            out["ceilings"][str(th)] = ceilings
            peak, bandwidth = ceilings["cpu:compute:float32"], ceilings["cpu:memory"]
            print(f"\nceilings, {th} thread(s): peak FMA {_fmt_rate(rate_on(peak, th))} GFLOP/s float32 "
                  f"({peak.get('how') or peak.get('reason')}); memory {_fmt_rate(rate_on(bandwidth, th))} GB/s "
                  f"({bandwidth.get('how') or bandwidth.get('reason')})")
            for n in sizes:
                entries, flops, base = _matmul_entries(n, th, thread_counts[0], rng)
                times, loads = _time_runs(entries, args.runs, args.reps, args.pause)
                rows = {}
                for name, ts in times.items():
                    gflops = [flops / t / 1e9 for t in ts]
                    ratio = [tb / t for t, tb in zip(ts, times[base])]
                    rows[name] = {"gflops": _summary(gflops), "vs_np_matmul": _summary(ratio), "seconds": ts,
                                  "pct_of_peak": _pct(gflops, rate_on(peak, 1 if name in ONE_THREAD_ONLY else th))}
                out["matmul"].append({"n": n, "dtype": "float32", "threads": th, "others_cpu_share": loads,
                                      "entries": rows})
                print(f"\nmatmul {n}^3 float32, {th} thread(s); other processes' CPU share per run: "
                      + _fmt_loads(loads))
                for name, r in rows.items():
                    g, v = r["gflops"], r["vs_np_matmul"]
                    print(f"  {name:10s} {g['min']:7.1f} {g['median']:7.1f} {g['max']:7.1f} GFLOP/s   "
                          f"x np.matmul {v['min']:.2f} {v['median']:.2f} {v['max']:.2f}   "
                          f"{_fmt_pct(r['pct_of_peak'])} of peak FMA")
            entries = _relu_entries(args.relu_mib, rng)
            times, loads = _time_runs({k: f for k, (f, _) in entries.items()}, args.runs, args.reps, args.pause)
            rows = {}
            for name, ts in times.items():
                nbytes = entries[name][1]
                gbps = [nbytes / t / 1e9 for t in ts]
                rows[name] = {"gbps": _summary(gbps),
                              "vs_copy": _summary([(nbytes / t) / (entries["copy"][1] / tc)
                                                   for t, tc in zip(ts, times["copy"])]),
                              "seconds": ts, "bytes": nbytes, "pct_of_bandwidth": _pct(gbps, rate_on(bandwidth, th))}
            out["relu"].append({"mib": args.relu_mib, "dtype": "float32", "threads": th, "others_cpu_share": loads,
                                "entries": rows})
            print(f"\nrelu at {args.relu_mib} MiB float32, {th} thread(s) (GB/s read+write; x the copy's GB/s); "
                  "other processes' CPU share per run: "
                  + _fmt_loads(loads))
            for name, r in rows.items():
                g, v = r["gbps"], r["vs_copy"]
                print(f"  {name:24s} {g['min']:6.1f} {g['median']:6.1f} {g['max']:6.1f} GB/s   "
                      f"x copy {v['min']:.2f} {v['median']:.2f} {v['max']:.2f}   "
                      f"{_fmt_pct(r['pct_of_bandwidth'])} of the memory ceiling")
    out["loadavg_after"] = os.getloadavg()
    out["wall_s"] = time.time() - t_start
    shares = [s for block in out["matmul"] + out["relu"] for s in block["others_cpu_share"] if s is not None]
    out["load"] = load_summary(max(shares) if shares else None)
    if out["load"]["warning"]:
        print("\n" + out["load"]["warning"])
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
