"""Command line: ``pykern {info,demo,bench,compare}`` (also ``python -m pykern ...``).

Exit status: 0 when everything asked for ran and was right; 1 when a variant is wrong or
crashed; 2 for bad arguments or an output that cannot be written; 3 when nothing ran (every
selected target skipped, with the reasons printed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from . import __version__
from ._backends import backends, cuda_simulator_enabled, on_simulator, simulator_enabled
from ._check import compare, tolerance_key
from ._dispatch import Unsupported, prepare
from ._registry import variants
from ._timing import backend_clock, measure, summarize
from .ops import SPECS


def columns(rows: list, right=(), indent: str = "  ") -> list:
    """Text lines of a table whose column widths come from its cells (variant names such as
    gemm_col2im_threads and ops such as conv2d_backward_weight are longer than any fixed width
    that fits the rest); ``right``: indices of right-aligned columns; the last cell runs free."""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]

    def cell(i: int, text: str, last: bool) -> str:
        if i in right:
            return text.rjust(widths[i])
        return text if last else text.ljust(widths[i])
    return [(indent + "  ".join(cell(i, c, i == len(r) - 1) for i, c in enumerate(r))).rstrip() for r in rows]


def cmd_info(args) -> int:
    from ._install import HERE, built_extensions, has_extension
    bk = backends()
    built = built_extensions()
    cuda_built = built["_cuda"] == "built" if built else has_extension(HERE)
    if args.json:
        print(json.dumps({
            "version": __version__,
            "location": HERE,
            "extension_built": cuda_built,
            "extensions": built,  # None: a source tree that was never built
            "backends": {n: {"available": a.available, "reason": a.reason} for n, a in bk.items()},
            "variants": [{k: v for k, v in var.as_dict().items() if k != "default"} | {"default": var.default}
                         for var in variants()],
        }, indent=2))
        return 0
    if built is None:
        how = "a source tree that was never built" + ("" if cuda_built else ": no pykern._cuda")
    else:
        how = "; ".join(f"pykern.{name}: {status}" for name, status in built.items())
    print(f"pykern {__version__} from {HERE} ({how})\n\nbackends:")
    print("\n".join(columns([[name, "available" if a.available else "unavailable", a.reason]
                             for name, a in bk.items()])))
    print("\nvariants (* = backend default):")
    print("\n".join(columns([[var.op, var.backend, ("*" if var.default else " ") + var.name, ",".join(var.dtypes),
                              var.technique] for var in variants()])))
    return 0


def _rate(spec, case, dtype, seconds) -> float:
    if spec.rate_unit == "GB/s":
        return spec.bytes_moved(case, np.dtype(dtype).itemsize) / seconds / 1e9
    return spec.flops(case) / seconds / 1e9


# Seconds of timed runs after which the demo stops timing a variant (once it has 3 runs): a tour
# of every rung must not wait 10 s on the naive CPU matmul at 2048^3. A variant whose checked run
# alone took longer is timed once: on the host that run is its time (its output was written
# beforehand, by the poisoning, so it pays no page faults; a warm-up would change under 1% of
# a run this long, and cost the tour another run: 1.8 s for the naive matmul here); on a GPU
# once more, the checked run being its warm-up.
DEMO_BUDGET_S = 1.0


def _time_demo(prepared, backend: str, reps: int, slow: bool = False):
    """Up to ``reps`` timed runs of the prepared kernel after one warm-up, fewer (at least 3, or
    ``reps`` if smaller) once DEMO_BUDGET_S has passed, on the backend's clock, with the cache
    flush of ``pykern bench`` before each (on a GPU; see pykern/_timing.py). ``slow``: one run, no
    warm-up (the checked run before it was one)."""
    from .benchmark import flusher
    from .benchmark.plan import device_of
    timing, _ = measure(prepared.run, backend_clock(backend), sync=prepared.sync,
                        flush=flusher(device_of(backend))[0], warmup=0 if slow else 1,
                        min_reps=1 if slow else min(3, reps), max_reps=1 if slow else reps, budget_s=DEMO_BUDGET_S)
    return timing


def cmd_demo(args) -> int:
    """Run every available variant of every op once on a default size, check it, time it."""
    bk = backends()
    rows, skipped = [], []
    failures = 0
    ops = [args.op] if args.op else list(SPECS)
    references = {}  # (op, case id, dtype) -> (reference, magnitude): the same inputs for every variant
    inputs = {}  # (op, case id, dtype) -> (arrays, params) from make_inputs
    for op in ops:
        spec = SPECS[op]
        for var in variants(op):
            if not bk[var.backend].available:
                skipped.append((var.key, bk[var.backend].reason))
                continue
            sim = on_simulator(var.backend)
            case = spec.demo_case(simulator=sim)
            dtype = "float32" if "float32" in var.dtypes else var.dtypes[0]
            key = (op, spec.case_id(case), dtype)
            if key not in inputs:  # drawn once per case (64 MiB for relu): each variant gets a copy
                inputs[key] = spec.make_inputs(case, dtype, np.random.default_rng(0))
            arrays = {k: None if v is None else v.copy(order="K") for k, v in inputs[key][0].items()}
            params = dict(inputs[key][1])
            try:
                prepared = prepare(op, arrays, params, backend=var.backend, variant=var.name, poison=True)
            except Unsupported as e:
                skipped.append((var.key, str(e)))
                continue
            t0 = time.perf_counter()
            prepared.run()
            prepared.sync()
            checked_s = time.perf_counter() - t0
            got = prepared.finish()
            if key not in references:
                a64 = {k: None if v is None else v.astype(np.float64) for k, v in arrays.items()}
                references[key] = spec.reference(a64, prepared.params), spec.magnitude(a64, prepared.params)
            cmp = compare(got, *references[key], tolerance_key(dtype, got.dtype))
            failures += not cmp.ok
            slow = checked_s > DEMO_BUDGET_S
            if sim:
                timing = None
            elif slow and var.backend == "numpy":
                timing = summarize([checked_s])
            else:
                timing = _time_demo(prepared, var.backend, args.reps, slow=slow)
            rows.append((var, dtype, spec.case_id(case), cmp, timing,
                         None if timing is None else _rate(spec, case, dtype, timing.median), spec.rate_unit))
            print(f"  ran {var.key} ({dtype}, {spec.case_id(case)})", file=sys.stderr, flush=True)
    from .benchmark.run import noisy
    table = [["variant", "dtype", "case", "check", "max rel err", "median", "IQR", "rate"]]
    notes = {}  # table row -> lines printed under it
    for var, dtype, cid, cmp, timing, rate, unit in rows:
        table.append([var.key, dtype, cid, "ok" if cmp.ok else "FAIL", f"{cmp.max_rel_err:.2e}",
                      "sim" if timing is None else f"{timing.median * 1e3:.3f}ms",
                      "-" if timing is None else f"{100 * timing.spread:.1f}%",
                      "-" if rate is None else f"{rate:.2f} {unit}"])
        # the flags `pykern bench` prints, by the same rule
        flag = None if timing is None else noisy(timing.spread)
        notes[len(table) - 1] = ([f"    ! {flag}: do not trust this time"] if flag else []) + \
            ([] if cmp.ok else ["    " + cmp.message().replace("\n", "\n    ")])
    for i, line in enumerate(columns(table, right={4, 5, 6, 7}, indent="")):
        print(line)
        for note in notes.get(i, []):
            print(note)
    if skipped:
        print("\nnot run here:")
        by_reason = {}  # one line per reason: a missing backend would repeat it per variant
        for key, reason in skipped:
            by_reason.setdefault(reason, []).append(key)
        for reason, keys in by_reason.items():
            print(f"  {', '.join(keys)}\n    because: {reason}")
    if simulator_enabled():
        print("\nnumba variants ran in the CUDA simulator on small sizes: correct results, no timings.")
    if cuda_simulator_enabled() and bk["cuda"].available:
        print("\ncuda variants ran in pykern's CUDA C++ simulator (PYKERN_CUDA_SIM=1) on small sizes: "
              "correct results, no timings.")
    return 1 if failures else 0


EXIT_NOTHING_RAN = 3


def check_output_path(path: str, what: str) -> None:
    """Refuse an output path before a sweep, not after it: the folder must exist (it is not
    created) and take a new file; ValueError saying why otherwise."""
    full = os.path.abspath(path)
    folder = os.path.dirname(full)
    if os.path.isdir(full):
        raise ValueError(f"{what}: {path!r} is a directory; give a file name")
    if not os.path.isdir(folder):
        why = "is not a directory" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"{what}: the folder {folder!r} {why} (create it first)")
    try:  # a real write: os.access says yes to root on a read-only file system
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".pykern-probe-"):
            pass
    except OSError as e:
        raise ValueError(f"{what}: cannot write to the folder {folder!r} ({e.strerror or e})") from None
    if os.path.exists(full) and not os.access(full, os.W_OK):
        raise ValueError(f"{what}: {path!r} exists and is not writable")


def check_plot_path(path: str) -> None:
    check_output_path(path, "--plot")
    from .benchmark import pyplot
    try:
        pyplot()
    except RuntimeError as e:
        raise ValueError(f"--plot: {e}") from None
    from matplotlib.backend_bases import FigureCanvasBase
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    kinds = FigureCanvasBase.get_supported_filetypes()
    if ext not in kinds:
        raise ValueError(f"--plot: matplotlib cannot write {('.' + ext) if ext else 'a file without an extension'}; "
                         f"use one of {', '.join('.' + k for k in sorted(kinds))}")


def _check_outputs(args) -> None:
    if args.json:
        check_output_path(args.json, "--json")
    if args.plot:
        check_plot_path(args.plot)


def _outputs(doc, args, plot) -> int:
    from .benchmark import write_json
    status = 0
    if args.json:
        write_json(doc, args.json)
        print(f"\nwrote {args.json}")
    if args.plot:
        try:
            plot(doc, args.plot)
            print(f"wrote {args.plot}")
        except RuntimeError as e:
            print(f"no plot: {e}", file=sys.stderr)
            status = 2
    return status


def cmd_bench(args) -> int:
    """Check, then time, every selected variant and baseline: median, IQR, rate, % of the
    measured ceiling, ratio to the baseline. Exit status 1 when a variant is wrong or errors."""
    from . import benchmark as bench
    if args.scheduler:
        return _bench_cluster(args)
    try:
        _check_outputs(args)
        ops, sizes = bench.select(args.selection)
        doc = bench.sweep(ops, args.backend, args.variant, sizes, args.dtype,
                          with_baselines=not args.no_baselines, max_reps=args.reps,
                          time_budget=args.time_budget, quick=args.quick, seed=args.seed,
                          progress=not args.no_progress)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(bench.bench_table(doc))
    status = _outputs(doc, args, bench.plot_bench)
    ran = [r for r in doc["entries"] if r["kind"] == "variant" and r["status"] != "skipped"]
    if not ran:
        print("error: nothing ran: no selected variant can run here with these options "
              "(the reasons are listed above)", file=sys.stderr)
        return EXIT_NOTHING_RAN
    bad = any(r["status"] in ("wrong", "error") for r in ran)
    return 1 if bad else status


def _bench_cluster(args) -> int:
    """``bench --scheduler``: the sweep on each distinct device of a Dask cluster (pykern/dask/bench.py)."""
    from . import benchmark as bench
    try:
        if args.plot:
            raise ValueError("--plot: a cluster run has no plot yet; --json keeps every device's results")
        _check_outputs(args)
        ops, sizes = bench.select(args.selection)
        try:
            from .dask.bench import cluster_sweep, cluster_table
            import distributed  # noqa: F401
        except ImportError as e:
            raise ValueError(f"--scheduler needs dask and distributed: {e}") from None
        doc = cluster_sweep(args.scheduler, ops, args.backend, args.variant, sizes, args.dtype,
                            with_baselines=not args.no_baselines, max_reps=args.reps, time_budget=args.time_budget,
                            quick=args.quick, seed=args.seed, progress=not args.no_progress)
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(cluster_table(doc))
    status = _outputs(doc, args, None)
    ran = [r for d in doc["devices"] for r in d["doc"]["entries"]
           if r["kind"] == "variant" and r["status"] != "skipped"]
    if not ran:
        print("error: nothing ran on any device (the reasons are in --json)", file=sys.stderr)
        return EXIT_NOTHING_RAN
    return 1 if any(r["status"] in ("wrong", "error") for r in ran) else status


def cmd_compare(args) -> int:
    """CPU (NumPy default variant) vs GPU (cuda default, else numba) per size, data on the device
    and copies counted, and where the GPU starts to win."""
    from . import benchmark as bench
    try:
        _check_outputs(args)
        ops, sizes = bench.select(args.selection)
        doc = bench.compare_sweep(ops, sizes, args.dtype, quick=args.quick,
                                  seed=args.seed, progress=not args.no_progress, time_budget=args.time_budget)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(bench.compare_table(doc))
    status = _outputs(doc, args, bench.plot_compare)
    if not any(r.get(f"{side}_kernel_s") for res in doc["ops"] for r in res["rows"] for side in ("cpu", "gpu")):
        print("error: nothing ran (the reasons are listed above)", file=sys.stderr)
        return EXIT_NOTHING_RAN
    wrong = any(r.get(f"{side}_ok") is False for res in doc["ops"] for r in res["rows"] for side in ("cpu", "gpu"))
    return 1 if wrong else status


def _at_least_one(text: str) -> int:
    """argparse type for a repetition count: an int >= 1 (0 runs has no median to report)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {n}")
    return n


class _InOrder(argparse.Action):
    """Keeps --op and --sizes in the order given, in one list: a plain --sizes belongs to the
    --op before it (pykern.benchmark.select)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, (getattr(namespace, self.dest, None) or []) + [(self.const, values)])


def _sweep_flags() -> argparse.ArgumentParser:
    """The flags ``bench`` and ``compare`` share (argparse ``parents=``)."""
    from .benchmark import SELECTION_HELP, SIZE_FORMS
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--op", action=_InOrder, dest="selection", const="op", metavar="OPS",
                   help=f"comma-separated ops (default all: {','.join(SPECS)}); may be repeated, "
                        "each followed by its own --sizes")
    p.add_argument("--sizes", action=_InOrder, dest="selection", const="sizes", metavar="SIZES",
                   help=SELECTION_HELP + " Forms, per op: "
                   + "; ".join(f"{op} {forms}" for op, forms in SIZE_FORMS.items())
                   + " (default: each op's benchmark cases, in its spec in pykern/ops/)")
    p.add_argument("--json", metavar="PATH", help="write the results and the environment as JSON")
    p.add_argument("--plot", metavar="PATH", help="plot the results (needs matplotlib)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="start nothing new after this long (what is left is listed as skipped)")
    p.add_argument("--quick", action="store_true", help="short timings, and small ceilings in bench (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def build_parser(prog: str = "pykern") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="pykern: compare GPU kernel variants",
                                epilog="exit status: 0 all ran and were right, 1 a variant was wrong or "
                                       "crashed, 2 bad arguments or unwritable output, 3 nothing ran")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="backends (available or why not) and every registered variant")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(fn=cmd_info)
    demo = sub.add_parser("demo", help="run, check and time every available variant on a default size")
    demo.add_argument("--op", choices=list(SPECS))
    demo.add_argument("--reps", type=_at_least_one, default=5,
                      help="timed repetitions per variant (median and IQR reported); fewer, at least 3, "
                           f"once a variant's runs pass {DEMO_BUDGET_S:g} s")
    demo.set_defaults(fn=cmd_demo)

    shared = _sweep_flags()
    bench = sub.add_parser("bench", parents=[shared],
                           help="check then time variants and baselines: median, IQR, rate, "
                                "%% of measured ceiling, ratio to the baseline")
    bench.add_argument("--backend", help="comma-separated backends: numpy,numba,cuda (default all available)")
    bench.add_argument("--variant", help="comma-separated variant names (baselines still run, for the ratio)")
    bench.add_argument("--dtype", default="auto",
                       help="float32, float64, float16, bfloat16, or auto: float32 where a variant takes it, "
                            "else its first dtype (default auto)")
    bench.add_argument("--reps", type=_at_least_one, default=30, help="at most this many timed runs per entry (default 30)")
    bench.add_argument("--no-baselines", action="store_true", help="skip the library baselines")
    bench.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the sweep on every distinct device (CPU model, GPU name) of the Dask cluster "
                            "at ADDRESS (tcp://host:8786), one device at a time, and compare them, the CPU as 1x; "
                            "needs pip install \"pykern[dask]\"")
    bench.set_defaults(fn=cmd_bench)

    comp = sub.add_parser("compare", parents=[shared],
                          help="CPU vs GPU per size, with and without host<->device copies, "
                               "and the size where the GPU starts to win")
    comp.add_argument("--dtype", default="float32", help="input dtype (default float32)")
    comp.set_defaults(fn=cmd_compare)
    return p


def main(argv=None, prog: str = "pykern") -> int:
    """The ``pykern`` console script; ``python -m pykern`` passes its own ``prog``."""
    args = build_parser(prog).parse_args(argv)
    try:
        status = args.fn(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
    except BrokenPipeError:
        # The reader went away (``pykern info | head``): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not print a second traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # what a shell reports for a process ended by SIGPIPE
    return status
