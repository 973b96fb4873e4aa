"""conv2d on the CPU: pykern's host variants (NumPy and compiled) against torch.nn.functional.conv2d
(oneDNN), side by side in one run, on the DeepBench ResNet layers at N=8 (float32), or with
--layers digits / seed on those of bench/train_cnn.py's models at their batch sizes; with --op,
the same for either gradient against torch.nn.grad.conv2d_input / conv2d_weight.

    pytest bench/bench_conv2d_cpu.py --benchmark-group-by=param:layer   # pytest-benchmark
    python bench/bench_conv2d_cpu.py [--op OP] [--layers resnet|digits|seed] [--reps 15] [--runs 3]
                                     [--json PATH] [--profile] [--malloc-default] [--variants A,B]

Every entry is checked before it is timed: each implementation against the float64 reference on
the first image of the batch, under the project's tolerance policy. torch is an optional
benchmark dependency (CPU build: ``pip install torch``); without it its entries skip with the
reason. Both sides get the same number of threads: torch.set_num_threads(n) with n the thread
count of NumPy's BLAS (threadpoolctl where installed, else the machine's cores).

Allocation: torch allocates its output on every call and the NumPy variants allocate their
workspaces; glibc serves a block of >= 128 KiB with a fresh mmap by default, so every call would
also time page faults of freshly zeroed pages (a 26 MB output: ~15 ms, more than the convolution).
Unless --malloc-default is given, this file raises glibc's mmap and trim thresholds (mallopt) so
that repeated allocations reuse the heap, for both sides alike, as they do in a long-running
process. Timing: each implementation runs in blocks of back-to-back calls (its worker threads
stay awake), the blocks of all implementations alternating after a pause (so that the previous
library's spinning threads have gone to sleep), and the median is reported; the CPU time other
processes took during the run is printed, since it skews everything on 2 cores.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import math
import os
import statistics
import sys
import time

import numpy as np

import pykern.cpu.conv2d as conv  # noqa: E402
from pykern._check import compare  # noqa: E402
from pykern._dispatch import Unsupported, prepare, resolve  # noqa: E402
from pykern._registry import variants  # noqa: E402
from pykern._timing import host_clock, measure, summarize  # noqa: E402
from pykern.benchmark.environment import OtherLoad, git_checkout  # noqa: E402
from pykern.cpu import _compiled
from pykern.ops import SPECS  # noqa: E402

try:
    import torch
except ImportError as e:  # optional: the pykern side still runs
    torch, TORCH_MISSING = None, f"torch is not installed ({e}); pip install torch (the CPU build)"
else:
    TORCH_MISSING = None

# What this file times, for bench/conftest.py's --bench-op / --bench-backend selection.
BENCH_OPS = ("conv2d",)
BENCH_BACKENDS = ("numpy",)
OPS = ("conv2d", "conv2d_backward_input", "conv2d_backward_weight")
SPEC = SPECS["conv2d"]
DTYPE = "float32"
BATCH = 8
# DeepBench ResNet layers (H=W, C, K, R=S, pad, stride), kept apart from the test cases.
LAYERS = {
    "resnet_56x56_c64": dict(N=BATCH, C=64, H=56, W=56, K=64, R=3, S=3, padding=1),
    "resnet_28x28_c128": dict(N=BATCH, C=128, H=28, W=28, K=128, R=3, S=3, padding=1),
    "resnet_14x14_c256": dict(N=BATCH, C=256, H=14, W=14, K=256, R=3, S=3, padding=1),
    "resnet_7x7_c512": dict(N=BATCH, C=512, H=7, W=7, K=512, R=3, S=3, padding=1),
    "resnet_first_7x7s2": dict(N=BATCH, C=3, H=224, W=224, K=64, R=7, S=7, padding=3, stride=2),
}
# The layers of bench/train_cnn.py's models at their batch sizes (--layers): the small digits
# CNN's two (batch 32), and the seed model's three (batch 64).
LAYER_SETS = {
    "resnet": LAYERS,
    "digits": {"digits_16x16_c1": dict(N=32, C=1, H=16, W=16, K=16, R=3, S=3, padding=1),
               "digits_8x8_c16": dict(N=32, C=16, H=8, W=8, K=32, R=3, S=3, padding=1)},
    "seed": {"seed_48x48_c3": dict(N=64, C=3, H=48, W=48, K=64, R=3, S=3, padding=1),
             "seed_24x24_c64": dict(N=64, C=64, H=24, W=24, K=128, R=3, S=3, padding=1),
             "seed_12x12_c128": dict(N=64, C=128, H=12, W=12, K=256, R=3, S=3, padding=1)},
}
# The float64 reference is the spec, not a contender: far too slow to time at these sizes; so are
# the compiled ladder's scalar rungs (seconds per layer), which --variants can still name.
SLOW = ("reference", "direct")
PYKERN = [v.name for v in variants("conv2d", "numpy") if v.name not in SLOW]
# "pykern:default": what a call without variant= runs, layer by layer: the default variant, or
# where a shape rule (ROUTES) sends that layer, another; the JSON names it per layer ("routed").
ROUTED = "default"
DEFAULT = next(v.name for v in variants("conv2d", "numpy") if v.default)
IMPLS = [f"pykern:{name}" for name in PYKERN] + ["torch"]
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>


def blas_threads() -> tuple[int, str]:
    """Threads NumPy's BLAS uses, and how that was found."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1, "os.cpu_count() (threadpoolctl not installed)"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return os.cpu_count() or 1, "os.cpu_count() (threadpoolctl found no BLAS)"
    b = blas[0]
    return b["num_threads"], f"threadpoolctl: {b.get('internal_api')} {b.get('version')} ({b.get('architecture')})"


def tune_malloc() -> str:
    libc = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(libc)
        ok = lib.mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 and lib.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError, TypeError):
        ok = False
    return ("glibc mmap/trim thresholds raised to 1 GiB (big allocations reuse the heap)" if ok
            else "mallopt unavailable: allocator defaults (page faults may be timed)")


class Layer:
    """One layer's inputs, its pykern launches and its torch call, checked before timing."""

    def __init__(self, name: str, case: dict, seed: int = 0, op: str = "conv2d"):
        self.name, self.case, self.op, self.spec = name, case, op, SPECS[op]
        self.arrays, self.params = self.spec.make_inputs(case, DTYPE, np.random.default_rng(seed))
        self.flops = self.spec.flops(case)
        self._checked = {}

    def runner(self, impl: str):
        """A zero-argument callable that runs ``impl`` once on this layer's data, after checking
        its result on the first image; raises Unsupported / RuntimeError when it cannot run."""
        if impl not in self._checked:
            self._checked[impl] = self._check(impl)
        return self._launcher(impl, self.arrays)[0]

    def _launcher(self, impl, arrays):
        """(run, result): run() computes into the array that result() returns."""
        if impl == "torch":
            if torch is None:
                raise RuntimeError(TORCH_MISSING)
            p = self.spec.normalize(self.params)
            t = {k: None if v is None else torch.from_numpy(v) for k, v in arrays.items()}
            geo = (p["stride"], p["padding"], p["dilation"], p["groups"])
            out = {}
            if self.op == "conv2d":
                def run():
                    out["y"] = torch.nn.functional.conv2d(t["x"], t["w"], t["bias"], *geo)
            elif self.op == "conv2d_backward_input":
                shape = (arrays["dy"].shape[0],) + tuple(self.params["x_shape"][1:])
                def run():
                    out["y"] = torch.nn.grad.conv2d_input(shape, t["w"], t["dy"], *geo)
            else:
                def run():
                    out["y"] = torch.nn.grad.conv2d_weight(t["x"], tuple(self.params["w_shape"]), t["dy"], *geo)
            return run, lambda: out["y"].numpy()
        name = impl.split(":", 1)[1]
        prepared = prepare(self.op, arrays, self._params(arrays), backend="numpy",
                           variant=None if name == ROUTED else name, poison=True)
        return prepared.run, prepared.finish

    def routed(self) -> str:
        """The variant a call without ``variant=`` runs on this layer (the default, or the one a
        shape rule of pykern/cpu/_compiled.py ROUTES names)."""
        return resolve(self.op, self.arrays, self._params(self.arrays), backend="numpy").variant.name

    def _params(self, arrays):
        """The op's parameters for ``arrays`` (a gradient's x_shape follows dy's batch)."""
        if "x_shape" in self.params:
            return dict(self.params, x_shape=(arrays["dy"].shape[0],) + tuple(self.params["x_shape"][1:]))
        return self.params

    def _check(self, impl):
        """The first image through ``impl`` against the float64 reference (tolerance policy)."""
        first = {k: v if v is None or k == "w" else v[:1] for k, v in self.arrays.items()}  # (1, ...) batches
        run, result = self._launcher(impl, first)
        run()
        got = result()
        a64 = {k: None if v is None else v.astype(np.float64) for k, v in first.items()}
        params = self._params(first)
        p = self.spec.normalize(params)
        shape = getattr(self.spec, "shape_param", None)
        if shape:
            p[shape] = tuple(params[shape])
        cmp = compare(got, self.spec.reference(a64, p), self.spec.magnitude(a64, p), DTYPE)
        if not cmp.ok:
            raise AssertionError(f"{impl} on {self.name}: {cmp.message()}")
        return cmp


# --- pytest-benchmark -------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # the script mode needs no pytest
    pytest = None

if pytest is not None:
    _LAYERS = {}

    @pytest.fixture(scope="module")
    def threads():
        n, how = blas_threads()
        if torch is not None:
            torch.set_num_threads(n)
        print(f"\nthreads: BLAS {n} ({how}); torch.set_num_threads({n}); {tune_malloc()}")
        return n

    @pytest.mark.parametrize("impl", IMPLS)
    @pytest.mark.parametrize("layer", list(LAYERS))
    def test_conv2d_cpu(benchmark, threads, layer, impl):
        if layer not in _LAYERS:
            _LAYERS[layer] = Layer(layer, LAYERS[layer])
        lay = _LAYERS[layer]
        try:
            run = lay.runner(impl)
        except (Unsupported, RuntimeError) as e:
            pytest.skip(str(e))
        benchmark.extra_info.update(layer=layer, impl=impl, flops=lay.flops, threads=threads, dtype=DTYPE)
        benchmark.pedantic(run, rounds=10, warmup_rounds=2, iterations=1)
        if benchmark.stats is not None:  # None under --benchmark-disable (each entry ran once)
            benchmark.extra_info["gflops_per_s_median"] = lay.flops / benchmark.stats.stats.median / 1e9


# --- script: the side-by-side table -------------------------------------------------------------
def other_load(load: OtherLoad) -> float:
    """The share other processes took (0 where /proc/stat cannot tell)."""
    return load.share or 0.0


# OpenBLAS worker threads spin for up to 2^28 cycles (~0.1 s) after a call before they sleep, and
# would take a core from whatever runs next: blocks are separated by a longer pause.
SETTLE_S = 0.3


def wait_for_idle(max_share: float, patience_s: float = 120.0) -> None:
    """Wait (up to ``patience_s``) until other processes take at most ``max_share`` of the CPU
    over half a second: on a shared 2-core machine a compile next door halves every number."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        with OtherLoad() as load:
            time.sleep(0.5)
        if other_load(load) <= max_share:
            return


def time_side_by_side(runs: dict, reps: int, block: int = 5) -> dict:
    """impl -> list of seconds: blocks of ``block`` back-to-back calls per implementation, each
    block one pykern._timing.measure (a warm-up call first, not kept), blocks of all
    implementations alternating, with a pause before each block so that no other library's
    threads are still spinning."""
    times = {k: [] for k in runs}
    while min(len(t) for t in times.values()) < reps:
        for impl, run in runs.items():
            time.sleep(SETTLE_S)
            _, samples = measure(run, host_clock, warmup=1, min_reps=block, max_reps=block, budget_s=math.inf)
            times[impl].extend(samples)
    return times


class _TimedNumpy:
    """Stands in for ``np`` inside pykern.cpu.conv2d: everything passes through, but the time in
    np.matmul (BLAS) and np.copyto (gathers and scatters) is added up."""

    def __init__(self):
        self.t = {"matmul": 0.0, "copyto": 0.0}

    def __getattr__(self, name):
        fn = getattr(np, name)
        if name not in self.t:
            return fn

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[name] += time.perf_counter() - t0
        return timed


def profile(layer: Layer, impl: str, reps: int) -> dict:
    """Median split of one pykern variant's time into BLAS GEMMs, copies and the rest."""
    run = layer.runner(impl)
    time.sleep(SETTLE_S)
    run()
    real = conv.np
    shares = []
    try:
        for _ in range(reps):
            conv.np = tn = _TimedNumpy()
            t0 = time.perf_counter()
            run()
            total = time.perf_counter() - t0
            shares.append((total, tn.t["matmul"], tn.t["copyto"]))
    finally:
        conv.np = real
    total, mm, cp = (statistics.median(s[i] for s in shares) for i in range(3))
    return {"total": total, "gemm": mm, "copy": cp, "other": max(0.0, total - mm - cp)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="timed calls per implementation and layer")
    ap.add_argument("--profile", action="store_true", help="also split each pykern variant's time "
                    "into GEMM / copy / other")
    ap.add_argument("--malloc-default", action="store_true", help="keep glibc's allocation "
                    "thresholds (page faults of fresh buffers are then timed too)")
    ap.add_argument("--max-load", type=float, default=0.05, help="re-time a layer when other "
                    "processes took more than this share of the CPU meanwhile (default 0.05)")
    ap.add_argument("--retries", type=int, default=3, help="re-timings per layer (default 3)")
    ap.add_argument("--runs", type=int, default=1, help="repeat the whole table this many times and "
                    "report every run's geometric means (shared machines drift by 5-10%% between runs)")
    ap.add_argument("--json", metavar="PATH", help="also write every run's times, ratios and "
                    "geometric means, with the machine and library versions, to PATH")
    ap.add_argument("--layers", choices=tuple(LAYER_SETS), default="resnet",
                    help="which layers: the DeepBench ResNet ones at N=8 (default), or those of "
                         "bench/train_cnn.py's digits (small) or seed model at their batch sizes")
    ap.add_argument("--op", choices=OPS, default="conv2d", help="the op to time (default conv2d; the "
                    "gradients against torch.nn.grad.conv2d_input / conv2d_weight)")
    ap.add_argument("--variants", metavar="A,B", help="the pykern variants to time (default: every "
                    f"host variant but {', '.join(SLOW)}; the default variant is always timed)")
    args = ap.parse_args(argv)
    global DEFAULT
    DEFAULT = next(v.name for v in variants(args.op, "numpy") if v.default)
    names = {v.name for v in variants(args.op, "numpy")}
    chosen = ([n for n in names if n not in SLOW] if args.op != "conv2d" else PYKERN) if not args.variants \
        else [x.strip() for x in args.variants.split(",") if x.strip()]
    chosen = [v.name for v in variants(args.op, "numpy") if v.name in chosen]  # registry order
    unknown = sorted(set(x.strip() for x in (args.variants or "").split(",") if x.strip()) - names)
    if unknown:
        ap.error(f"--variants: unknown {args.op} host variant(s) {unknown}; expected some of {sorted(names)}")
    if DEFAULT not in chosen:
        chosen = [DEFAULT] + chosen
    from pykern._install import require_built
    require_built("bench_conv2d_cpu.py")  # never time a source tree's NumPy fallback

    n, how = blas_threads()
    print(f"NumPy {np.__version__}; BLAS threads: {n} ({how})")
    if torch is not None:
        torch.set_num_threads(n)
        print(f"torch {torch.__version__}: torch.set_num_threads({n}) (= NumPy's BLAS threads); "
              f"oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}")
    else:
        print(f"torch: skipped: {TORCH_MISSING}")
    print("allocator: " + ("glibc defaults (--malloc-default)" if args.malloc_default else tune_malloc()))
    print(f"float32, {args.layers} layers; median of {args.reps} calls in alternating blocks; "
          f"{args.op}: pykern default variant: {DEFAULT}\n")

    impls = [f"pykern:{ROUTED}"] + [f"pykern:{name}" for name in chosen] + (["torch"] if torch is not None else [])
    runs_out = []
    for run_no in range(args.runs):
        if args.runs > 1:
            print(f"--- run {run_no + 1} of {args.runs}")
        results, worst = _one_run(impls, args)
        _print_table(results, impls)
        if args.profile:
            _print_profile(results)
        print(f"\nother processes used up to {worst:.0%} of the CPU during a layer's timing"
              + (" -- timings are skewed; rerun on an idle machine" if worst > args.max_load else ""))
        runs_out.append({"layers": {name: {impl: {"median_s": r[impl], "iqr_s": r["_iqr"][impl],
                                                  "ratio_to_torch": r[impl] / r["torch"] if "torch" in r else None}
                                           for impl in impls if impl in r}
                                    for name, r in results.items()},
                         "routed": {name: r["_routed"] for name, r in results.items()},
                         "geomean_ratio_to_torch": {impl: gm for impl, (gm, _) in _geomeans(results).items()},
                         "other_load_max": worst})
    if args.runs > 1 and "torch" in impls:
        print("\ngeometric mean pykern/torch of the default (routed) in each run: "
              + ", ".join(f"{r['geomean_ratio_to_torch'].get('pykern:' + ROUTED, float('nan')):.3f}" for r in runs_out))
    if args.json:
        _write_json(args, runs_out, n, how)
    return 0


def _one_run(impls, args):
    """One table: layer -> {impl: median seconds, '_flops', '_iqr', ['_profile']}, and the worst
    share of the CPU other processes took while a layer was timed."""
    results, loads = {}, []
    for name, case in LAYER_SETS[args.layers].items():
        lay = Layer(name, case, op=args.op)
        runs = {}
        for impl in impls:
            try:
                runs[impl] = lay.runner(impl)
            except Unsupported:
                pass
        for attempt in range(args.retries + 1):
            wait_for_idle(args.max_load)
            with OtherLoad() as load:
                times = time_side_by_side(runs, args.reps)
            if other_load(load) <= args.max_load:
                break
        loads.append(other_load(load))
        timings = {impl: summarize(t) for impl, t in times.items()}
        results[name] = {impl: t.median for impl, t in timings.items()}
        results[name]["_flops"] = lay.flops
        results[name]["_routed"] = lay.routed()
        results[name]["_iqr"] = {impl: t.iqr for impl, t in timings.items()}
        if args.profile:
            results[name]["_profile"] = {impl: profile(lay, impl, max(3, args.reps // 3))
                                         for impl in runs if impl != "torch"}
    return results, max(loads)


def _write_json(args, runs_out, n_threads, how):
    import json
    import platform
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    vs = {"conv2d": "torch.nn.functional.conv2d", "conv2d_backward_input": "torch.nn.grad.conv2d_input",
          "conv2d_backward_weight": "torch.nn.grad.conv2d_weight"}[args.op]
    doc = {"what": f"{args.op} float32 on the CPU: pykern's host variants vs {vs} (oneDNN), "
                   f"{args.layers} layers, written by bench/bench_conv2d_cpu.py", "op": args.op,
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                       "numpy": np.__version__, "blas_threads": n_threads, "blas": how,
                       "torch": None if torch is None else torch.__version__,
                       # whose threads ran pykern's compiled calls: its own pool, or torch's OpenMP
                       # threads where torch was imported before pykern (pykern/cpu/_compiled.py)
                       "pykern_cpu_pool": _compiled.pool()},
           "batch": BATCH if args.layers == "resnet" else None, "layer_set": args.layers, "reps": args.reps,
           "default_variant": DEFAULT, "layers": LAYER_SETS[args.layers], "runs": runs_out,
           # the commit the kernels were built from, and whether tracked files differed from it
           "checkout": git_checkout(os.path.dirname(os.path.abspath(__file__)))}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {args.json}")


def _geomeans(results):
    """impl -> (geometric mean of its time ratios to torch, how many layers it ran)."""
    ratios = {}
    for r in results.values():
        for impl, t in r.items():
            if not impl.startswith("_") and impl != "torch" and "torch" in r:  # (_flops, _iqr, _routed)
                ratios.setdefault(impl, []).append(t / r["torch"])
    return {impl: (math.exp(sum(math.log(x) for x in rs) / len(rs)), len(rs)) for impl, rs in ratios.items()}


def _print_table(results, impls):
    cols = [i.split(":", 1)[-1] for i in impls]
    head = f"{'layer':20s} {'GFLOP':>6s} " + " ".join(f"{c:>24s}" for c in cols)
    print(head + "\n" + "-" * len(head))
    for name, r in results.items():
        gf = r["_flops"] / 1e9
        cells = []
        for impl in impls:
            if impl not in r:
                cells.append(f"{'n/a':>24s}")
                continue
            t = r[impl]
            cell = f"{t * 1e3:6.2f}ms±{r['_iqr'][impl] * 1e3:4.2f} {gf / t:4.0f}GF/s"
            if impl != "torch" and "torch" in r:
                cell += f" {t / r['torch']:4.2f}x"
            cells.append(f"{cell:>24s}")
        print(f"{name:20s} {gf:6.2f} " + " ".join(cells))
    if "torch" not in impls:
        return
    print("\ngeometric mean of time ratios pykern/torch (lower is faster; <= 1.0 matches oneDNN):")
    for impl, (gm, count) in _geomeans(results).items():
        cover = "all layers" if count == len(results) else f"{count} of {len(results)} layers"
        print(f"  {impl.split(':', 1)[1]:16s} {gm:5.3f} over {cover}"
              + ("  (what a call without variant= runs: "
                 + ", ".join(f"{name} {r['_routed']}" for name, r in results.items()) + ")"
                 if impl == f"pykern:{ROUTED}" else ""))


def _print_profile(results):
    print("\nwhere the pykern time goes (median call; gemm = np.matmul, copy = np.copyto gathers/scatters, "
          "other = padding, epilogue, Python):")
    for name, r in results.items():
        for impl, p in r["_profile"].items():
            t = p["total"]
            print(f"  {name:20s} {impl.split(':', 1)[1]:16s} {t * 1e3:6.2f}ms: gemm {p['gemm'] / t:4.0%}  "
                  f"copy {p['copy'] / t:4.0%}  other {p['other'] / t:4.0%}")


if __name__ == "__main__":
    sys.exit(main())
