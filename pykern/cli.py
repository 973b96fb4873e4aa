"""Command line: ``python -m pykern {info,demo}``."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from . import __version__
from ._backends import backends, simulator_enabled
from ._check import compare, tolerance_key
from ._dispatch import Unsupported, prepare
from ._registry import variants
from ._timing import time_prepared
from .ops import SPECS


def cmd_info(args) -> int:
    bk = backends()
    if args.json:
        print(json.dumps({
            "version": __version__,
            "backends": {n: {"available": a.available, "reason": a.reason} for n, a in bk.items()},
            "variants": [{k: v for k, v in var.as_dict().items() if k != "default"} | {"default": var.default}
                         for var in variants()],
        }, indent=2))
        return 0
    print(f"pykern {__version__}\n\nbackends:")
    for name, a in bk.items():
        print(f"  {name:6s} {'available  ' if a.available else 'unavailable'}  {a.reason}")
    print("\nvariants (* = backend default):")
    for var in variants():
        mark = "*" if var.default else " "
        print(f"  {var.op:7s} {var.backend:6s} {mark}{var.name:16s} {','.join(var.dtypes):24s} {var.technique}")
    return 0


def _rate(spec, case, dtype, seconds) -> float:
    if spec.rate_unit == "GB/s":
        return spec.bytes_moved(case, np.dtype(dtype).itemsize) / seconds / 1e9
    return spec.flops(case) / seconds / 1e9


def cmd_demo(args) -> int:
    """Run every available variant of every op once on a default size, check it, time it."""
    bk = backends()
    rows, skipped = [], []
    failures = 0
    ops = [args.op] if args.op else list(SPECS)
    for op in ops:
        spec = SPECS[op]
        for var in variants(op):
            if not bk[var.backend].available:
                skipped.append((var.key, bk[var.backend].reason))
                continue
            sim = var.backend == "numba" and simulator_enabled()
            case = spec.demo_case(simulator=sim)
            dtype = "float32" if "float32" in var.dtypes else var.dtypes[0]
            arrays, params = spec.make_inputs(case, dtype, np.random.default_rng(0))
            try:
                prepared = prepare(op, arrays, params, backend=var.backend, variant=var.name, poison=True)
            except Unsupported as e:
                skipped.append((var.key, str(e)))
                continue
            prepared.run()
            got = prepared.finish()
            a64 = {k: None if v is None else v.astype(np.float64) for k, v in arrays.items()}
            cmp = compare(got, spec.reference(a64, prepared.params), spec.magnitude(a64, prepared.params),
                          tolerance_key(dtype, got.dtype))
            failures += not cmp.ok
            timing = None if sim else time_prepared(prepared, var.backend, warmup=1, reps=args.reps)
            rows.append((var, dtype, spec.case_id(case), cmp, timing,
                         None if timing is None else _rate(spec, case, dtype, timing.median), spec.rate_unit))
            print(f"  ran {var.key} ({dtype}, {spec.case_id(case)})", file=sys.stderr, flush=True)
    print(f"{'variant':28s} {'dtype':8s} {'case':24s} {'check':5s} {'max rel err':>11s} "
          f"{'median':>10s} {'rate':>14s}")
    for var, dtype, cid, cmp, timing, rate, unit in rows:
        t = "sim" if timing is None else f"{timing.median * 1e3:8.3f}ms"
        r = "-" if rate is None else f"{rate:9.2f} {unit}"
        print(f"{var.key:28s} {dtype:8s} {cid:24s} {'ok' if cmp.ok else 'FAIL':5s} "
              f"{cmp.max_rel_err:11.2e} {t:>10s} {r:>14s}")
        if not cmp.ok:
            print("    " + cmp.message().replace("\n", "\n    "))
    if skipped:
        print("\nnot run here:")
        for key, reason in skipped:
            print(f"  {key:28s} {reason}")
    if simulator_enabled():
        print("\nnumba variants ran in the CUDA simulator on small sizes: correct results, no timings.")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pykern", description="pykern: compare GPU kernel variants")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="backends (available or why not) and every registered variant")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(fn=cmd_info)
    demo = sub.add_parser("demo", help="run, check and time every available variant on a default size")
    demo.add_argument("--op", choices=list(SPECS))
    demo.add_argument("--reps", type=int, default=5, help="timed repetitions per variant (median reported)")
    demo.set_defaults(fn=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)
