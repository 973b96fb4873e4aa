"""The compiled CPU kernels (pykern._cpu, kernels/cpu/*.cpp) as `numpy`-backend variants.

Every row of every table the extension binds is registered here, in table order, after the NumPy
variants of pykern/cpu/<op>.py: one registry, so the registry-generated correctness, hostile-input
and property tests, ``pk.check``, the benchmarks and the CLI take them with no list to extend.
Without the extension (no C++ compiler at build time, or PYKERN_NO_CPU_EXT=1) nothing is
registered and the NumPy variants are the CPU's; ``pykern info`` says why.

Threads: pykern's CPU kernels use as many threads as NumPy's BLAS is allowed (threadpoolctl's
view of it, which ``threadpool_limits``, OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set), so one
setting governs both and a kernel never runs beside a BLAS pool it oversubscribes: inside
conv2d's batch split, where BLAS is held to one thread, they run on one thread too. Whose threads:
pykern's own pool, or where torch is imported torch's OpenMP threads (``share_torch_threads``,
``pool()``; ``PYKERN_CPU_POOL=own`` keeps the own pool). The instruction set: ``isa()``,
``isas()``, ``set_isa(name)`` (or PYKERN_CPU_ISA before import).
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

from .._registry import make_default, register, set_route
from ..ops import SPECS

try:
    from .. import _cpu as ext
except ImportError as _e:  # not built here: the NumPy variants are the CPU's (pykern info says why)
    from .._install import built_extensions
    ext = None
    _status = (built_extensions() or {}).get("_cpu")
    WHY_NOT = f"pykern._cpu was not built: {_status}" if _status not in (None, "built") else str(_e)
else:
    WHY_NOT = ""
    if os.environ.get("PYKERN_CPU_ISA"):  # a typo must not pass for the best path: ValueError
        ext.set_isa(os.environ["PYKERN_CPU_ISA"], "PYKERN_CPU_ISA")


# --- threads -----------------------------------------------------------------------------------
class _Threads:
    """The thread count of every compiled CPU call: BLAS's current limit (read per call), else the
    CPUs this process may run on, capped by OMP_NUM_THREADS."""

    def __init__(self):
        self._blas = None
        self._getters = None
        self._probed = False
        self._lock = threading.Lock()

    def _controller(self):
        if not self._probed:
            with self._lock:
                if not self._probed:
                    try:
                        from threadpoolctl import ThreadpoolController
                        blas = ThreadpoolController().select(user_api="blas")
                        self._blas = blas.lib_controllers or None
                    except Exception:  # threadpoolctl missing or unable to read this BLAS
                        self._blas = None
                    self._getters = tuple(map(_num_threads_getter, self._blas or ()))
                    self._probed = True
        return self._blas

    def __call__(self) -> int:
        getters = self._getters
        if getters is None:
            self._controller()
            getters = self._getters
        if getters:  # the smallest limit of every BLAS loaded (NumPy's, SciPy's own, ...)
            n = getters[0]()
            for get in getters[1:]:
                m = get()
                n = m if m < n else n
            return n if n > 1 else 1
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:
            n = os.cpu_count() or 1
        omp = os.environ.get("OMP_NUM_THREADS", "")
        return max(1, min(n, int(omp))) if omp.isdigit() and int(omp) > 0 else n


def _num_threads_getter(controller):
    """A function giving ``controller.num_threads`` (a threadpoolctl BLAS controller). For
    OpenBLAS, NumPy's own, the C function itself, as threadpoolctl calls it: ~0.1 us, where the
    property takes ~1 us, and a training step reads it some twenty times."""
    if controller.internal_api == "openblas":
        symbol = "omp_get_max_threads" if controller.threading_layer == "openmp" else "openblas_get_num_threads"
        try:
            function = controller._get_symbol(symbol)  # threadpoolctl's own lookup (its symbol prefixes)
        except Exception:  # another threadpoolctl: its public property, then
            function = None
        if function is not None:
            return function
    return lambda: controller.num_threads


threads = _Threads()


# --- whose threads run a call's parts ----------------------------------------------------------
POOL_ENV = "PYKERN_CPU_POOL"  # "auto" (the default) or "own"
TORCH_OPENMP = "libgomp.so.1"  # the OpenMP runtime of torch's Linux wheels (torch/lib/libgomp.so.1)


def _pool_setting() -> str:
    value = os.environ.get(POOL_ENV, "") or "auto"
    if value not in ("auto", "own"):  # a typo must not pass for a choice: ValueError
        raise ValueError(f"{POOL_ENV}: expected 'auto' or 'own', got {value!r}")
    return value


def share_torch_threads():
    """Run threaded calls' parts on torch's OpenMP threads from now on, where torch is imported and
    its runtime is GNU OpenMP (``TORCH_OPENMP``, the Linux wheels'); returns that library's name,
    else None and pykern's own pool stays. ``PYKERN_CPU_POOL=own`` keeps the own pool always.

    Why: after each of its parallel ops torch's OpenMP threads spin for milliseconds, so in a
    training step that mixes torch's ops and pykern's, a thread of pykern's own pool found its core
    taken by a spinning thread and waited for the scheduler, call after call (the small digits CNN
    on 2 threads: 3 such waits a step; a conv2d backward beside one torch sum ran 1.4-1.7x slower). On
    torch's threads pykern's part starts at once. The parts and their sums are the same either way:
    every result keeps its bits. pykern.torch calls this at import, and so does this module where
    torch was imported first. A forked child goes back to the own pool (libgomp's threads are not
    copied into it)."""
    if ext is None or _pool_setting() == "own":
        return None
    torch = sys.modules.get("torch")
    backends = getattr(torch, "backends", None)
    openmp = getattr(backends, "openmp", None)
    if openmp is None or not openmp.is_available():
        return None
    return ext.share_openmp(TORCH_OPENMP)


def own_pool() -> None:
    """Run threaded calls on pykern's own thread pool again (undoes share_torch_threads)."""
    if ext is not None:
        ext.own_pool()


def pool() -> str:
    """Whose threads run threaded calls' parts: 'own' (pykern's pool), an OpenMP library's name
    (torch's threads, shared: share_torch_threads), or 'none' without the extension."""
    return ext.pool() if ext is not None else "none"


# --- instruction sets --------------------------------------------------------------------------
def isa() -> str:
    """The instruction set the compiled kernels run now: 'avx512', 'avx2' or 'baseline'."""
    return ext.isa() if ext else "none"


def isas() -> list:
    """Every instruction set this machine can run, lowest first ([] without the extension)."""
    return list(ext.isas()) if ext else []


def set_isa(name: str) -> str:
    """Limit the compiled kernels to ``name`` or lower ('baseline', 'avx2', 'avx512'), process-wide;
    returns the one now active. PYKERN_CPU_ISA sets the same limit at import."""
    if ext is None:
        raise RuntimeError(f"pykern._cpu is not available: {WHY_NOT}")
    return ext.set_isa(name)


# --- registration ------------------------------------------------------------------------------
def _register_table(op: str) -> None:
    for row in getattr(ext, f"{op}_variants"):
        def run(problem, ins, out, _kernel=getattr(ext, row["kernel"])):
            _kernel(tuple(ins), out, problem.dims, threads())
        run.__name__ = run.__qualname__ = row["name"]
        run.__doc__ = row["technique"]
        register(op, "numpy", dtypes=row["dtypes"], name=row["name"], takes=row["takes"],
                 takes_problem=True)(run)  # the executor passes the Problem: dims come from the spec


# --- defaults ----------------------------------------------------------------------------------
# Where the extension is built, these rows replace the NumPy default of their op: each is the
# fastest variant that keeps the accuracy contract (error_model "terms") on the shapes measured,
# with the measurement that says so. An op not listed keeps its NumPy default; a dtype a row does
# not take (float16) still runs the NumPy default (_registry.fallback_default).
COMPILED_DEFAULTS = {
    # bench/bench_conv2d_cpu.py -> bench/results/cpu/conv2d_cpu.json (ResNet layers, N=8)
    "conv2d": "threaded",
    # bench/bench_cpu_ladder.py -> bench/results/cpu/cpu_ladder.json: np.matmul's equal at 512,
    # 1024 and 2048 on 1 and 2 threads (medians 0.97-1.04x); and with np.matmul in a training
    # step, OpenBLAS's threads (which spin ~0.1 s after each call) and pykern's fought over the
    # 2 cores: the small CNN on 2 threads took 10.9x torch's epoch (train_cnn-2026-12-07-111154
    # .json), 2.5-2.7x with every op of the step on pykern's one pool
    "matmul": "threaded",
    # bench/bench_cpu_ladder.py -> bench/results/cpu/cpu_ladder.json (64 MiB), and per call at
    # 1,000 float32 (bench/bench_overhead.py -> overhead.json): np.maximum's single pass was
    # about 1 us cheaper there, 2-2.5x slower from 100k elements on (one thread, no SIMD select)
    "relu": "simd",
    "relu_backward": "simd",
    # bench/bench_conv2d_cpu.py --op ... -> bench/results/cpu/conv2d_backward_*_cpu.json
    "conv2d_backward_input": "threaded",
    "conv2d_backward_weight": "threaded",
}

# Grouped layers with few output channels per group (depthwise: 1) leave the GEMM rungs' tiles
# mostly empty (M = Kg rows); the direct register-blocked rung runs them. Measured, N=8, 3x3 pad 1,
# 2 threads for threaded (one for direct_blocked): depthwise 256 ch. 28x28 8.1 -> 0.8 ms, 64 ch.
# 56x56 8.5 -> 1.1 ms, 128 ch. in 16 / 8 groups (Kg 8 / 16) 4.7 -> 2.5 / 4.3 -> 3.6 ms; in 2
# groups (Kg 128) threaded stays ahead (7.4 against 11.7 ms).
DIRECT_MAX_KG = 16


# Deep stride-1 layers on small images, where padding holds a large share of the filter taps:
# tap_gemm skips the padded taps (oneDNN's float32 path does too) where threaded multiplies them.
# Measured (bench_conv2d_cpu.py --variants threaded,tap_gemm, N=8, 2 threads, ratio to torch):
# 7x7x512 (18% of taps padded) 1.03-1.14 against threaded's 1.22-1.32, 14x14x256 (9%) 1.06-1.14
# against 1.15-1.17; not taken: the seed model's 12x12x128 (11%, N=64) equal at 1.20, 28x28x128
# (5%) 1.12 against 1.10, 56x56x64 1.11 against 1.07. Each tap's GEMM sums only Cg terms between
# passes over its outputs, and with fewer than 256 that costs what the skipped taps save. AVX-512
# only: its short runs of outputs (a tap's 13 of 14 columns) go to y by masked stores; forced to
# AVX2 (PYKERN_CPU_ISA=avx2, one element at a time there) tap_gemm ran 1.51x torch at 14x14x256
# against threaded's 1.36x, and 1.41x against 1.46x at 7x7x512.
TAP_MIN_CG = 256
TAP_MIN_PADDED = 0.08
TAP_ISAS = ("avx512",)


def padded_share(h, w, r, s, params) -> float:
    """The share of an output's filter taps, over all outputs, that read padding (stride,
    padding, dilation from normalized params)."""
    from ..ops.conv2d import output_size

    def axis(size, out, taps, stride, pad, dil):  # the share of (output, tap) pairs inside, per tap in closed form
        inside = 0
        for t in range(taps):  # outputs o with 0 <= o * stride - pad + t * dil < size (kernels/cpu/conv2d.cpp tap_range)
            lo, hi = -(-(pad - t * dil) // stride), (size - 1 + pad - t * dil) // stride + 1
            inside += max(0, min(hi, out) - max(lo, 0))
        return inside / (out * taps) if out > 0 and taps > 0 else 1.0
    (sh, sw), (ph, pw), (dh, dw) = params["stride"], params["padding"], params["dilation"]
    p, q = output_size(h, w, r, s, params["stride"], params["padding"], params["dilation"])
    return 1.0 - axis(h, p, r, sh, ph, dh) * axis(w, q, s, sw, pw, dw)


# float32 stride-1 layers whose output rows are whole tiles of the AVX-512 blocked_direct rung (14
# pixels), with 128+ channels in whole blocks of 16, and padding below BLOCKED_MAX_PADDED of the
# taps: blocked_direct (x in 16-channel blocks, each tile's sums in registers over all its terms,
# no packed panels). Measured: bench_conv2d_cpu.py --runs 5 twice (bench/results/cpu/
# conv2d_cpu_ad102d6.json and conv2d_cpu_d0142e8.json; N=8, 2 threads), median ratio to torch
# over the 10 runs (min-max): 28x28x128 1.04 (0.88-1.73) against threaded's 1.07 (0.84-1.15),
# 14x14x256 1.00 (0.84-1.15) against tap_gemm's 1.04 (0.86-1.32) and threaded's 1.08. Not taken:
# 56x56x64, 1.09 (0.95-1.22) against threaded's 1.08 (0.97-1.24); 7x7x512 (18% of the taps
# padded), 1.09 against tap_gemm's 1.05; rows that are not whole tiles (the seed model's 24x24x64
# and 12x12x128, one thread: 0.96 and 0.93 of threaded's GFLOP/s, the rest of each row in 7- and
# 2-pixel tiles). The bench's cells vary by up to 20% from run to run: only medians over many runs
# tell these variants apart.
BLOCKED_ISAS = ("avx512",)
BLOCKED_TILE = 14  # pixels per AVX-512 tile (kernels/cpu/conv2d.cpp, PYKERN_BD_PATH)
BLOCKED_CHANNELS = 16  # input channels per block of the reordered x (kBdChannels)
BLOCKED_MIN_CG = 128
BLOCKED_MAX_PADDED = 0.12


def _conv2d_route(infos, params):
    groups = params["groups"]
    k, cg, r, s = infos["w"].shape
    if groups > 1 and k // groups <= DIRECT_MAX_KG:
        return "direct_blocked"
    if params["stride"] != (1, 1):
        return None
    isa, hw = ext.isa(), infos["x"].shape[2:]
    if isa in BLOCKED_ISAS and infos["x"].dtype == np.float32 and params["dilation"] == (1, 1) and \
            cg >= BLOCKED_MIN_CG and cg % BLOCKED_CHANNELS == 0:
        from ..ops.conv2d import output_size
        q = output_size(*hw, r, s, params["stride"], params["padding"], params["dilation"])[1]
        if q % BLOCKED_TILE == 0 and padded_share(*hw, r, s, params) < BLOCKED_MAX_PADDED:
            return "blocked_direct"
    if cg >= TAP_MIN_CG and isa in TAP_ISAS and padded_share(*hw, r, s, params) >= TAP_MIN_PADDED:
        return "tap_gemm"
    return None


# dx of a strided layer with few input channels (the first ResNet layer: 3 channels, 7x7 stride
# 2) is a GEMM of Cg rows per stride phase: the NumPy default's one GEMM over C*R*S rows then a
# col2im ran it in 24.5 ms against the compiled row's 84 ms (torch: 53 ms).
DX_MIN_CG_STRIDED = 16


def _dx_route(infos, params):
    strided = params["stride"] != (1, 1)
    return "gemm_col2im_threads" if strided and infos["w"].shape[1] < DX_MIN_CG_STRIDED else None


# dw of a stride-1, ungrouped layer with few output channels (the digits CNN's: 16 and 32) spends
# most of the GEMM's time gathering and transposing im2col panels that meet only K rows; the
# windows rung packs nothing. Measured (bench_conv2d_cpu.py --op conv2d_backward_weight --layers
# digits --runs 3 --variants windows,threaded -> conv2d_backward_weight_digits_cpu.json, 2
# threads): 16x16, 1 -> 16 channels, N=32: 0.10 ms in every run against threaded's 0.23-0.24; 8x8,
# 16 -> 32: 0.24-0.35 against 0.33-0.64. On one thread (the record's earlier _1thread_cpu.json)
# 0.10-0.13 against 0.18-0.23, and 0.35-0.44 against 0.47-0.70. (Up to 32 channels it once took
# one thread only, when the pool's threads joined every part; since its parts became optional,
# windows on 2 threads leads too.)
DW_WINDOWS_MAX_K = 32


def _dw_route(infos, params):
    if params["stride"] != (1, 1) or params["groups"] != 1:
        return None
    return "windows" if infos["dy"].shape[1] <= DW_WINDOWS_MAX_K else None


ROUTES = {"conv2d": _conv2d_route, "conv2d_backward_input": _dx_route, "conv2d_backward_weight": _dw_route}


def register_tables() -> None:
    """Register every row of every table pykern._cpu binds (nothing without the extension), make
    COMPILED_DEFAULTS' rows their ops' host defaults, and set ROUTES' shape rules."""
    if ext is None:
        return
    for op in ext.TABLES:
        if op in SPECS:
            _register_table(op)
            if op in COMPILED_DEFAULTS:
                make_default(op, "numpy", COMPILED_DEFAULTS[op])
            if op in ROUTES:
                set_route(op, "numpy", ROUTES[op])


if ext is not None:
    _pool_setting()  # PYKERN_CPU_POOL is checked at import, as PYKERN_CPU_ISA is
    if "torch" in sys.modules:
        share_torch_threads()
