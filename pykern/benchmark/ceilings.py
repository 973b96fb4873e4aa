"""Ceilings measured in the same run, never datasheet numbers, against which "% of ceiling" is
computed: the roofline of each device, compute-bound ops (GFLOP/s) against its peak arithmetic
rate and memory-bound ones (GB/s, relu) against its memory bandwidth.

CPU, with pykern._cpu (kernels/cpu/ceilings.cpp): peak FMA throughput from independent FMA chains
on the active ISA's widest vectors, and STREAM's Copy and Triad on arrays four times the
last-level cache, each on 1 thread and on pykern's thread count; the ceiling is the fastest of
these runs, and the one-thread rate, which the one-thread rungs stand against, is recorded beside
it. Without the extension: what NumPy can measure (a BLAS GEMM, np.copyto), saying why.
GPU: the cuBLAS GEMM rate and a device-to-device copy.

Each ceiling is measured once per process and setting (key, quick, threads, instruction set) and
cached: a second sweep in the same process reuses it, and the JSON records how it was measured."""
from __future__ import annotations

import math
import os
import time
from typing import Optional

import numpy as np

from .._arrays import format_bytes
from .._timing import EventClock, host_clock, measure
from ..ops import SPECS
from ..ops._baselines import NP_DTYPES, cupy_sync, noop
from .baselines import _lib_reason


def ceiling_key(op: str, device: str, dtype: str) -> str:
    return f"{device}:memory" if SPECS[op].rate_unit == "GB/s" else f"{device}:compute:{dtype}"


def _ceiling(run, clock, sync, work_amount, unit, how, budget_s=0.5) -> dict:
    """A ceiling is the best rate this machine reached: the fastest of the runs, not the median."""
    timing, samples = measure(run, clock, sync=sync, warmup=1, min_reps=3, max_reps=20, budget_s=budget_s)
    best = min(samples)
    return {"rate": work_amount / best / 1e9, "unit": unit, "how": how + "; fastest of the runs",
            "best_s": best, "median_s": timing.median}


# --- CPU: the compiled micro-benchmarks ----------------------------------------------------------
# Full runs: one FMA call lasts about FMA_CALL_S and each measurement gets MEASURE_BUDGET_S; the
# STREAM arrays are STREAM_CACHE_FACTOR times the last-level cache each (STREAM's own rule), at
# least STREAM_MIN_BYTES. Quick runs (smoke tests): a hundredth of the time and 4 MiB arrays,
# which stay in the caches, as "how" then says.
FMA_CALL_S = 0.02
MEASURE_BUDGET_S = 0.25
STREAM_CACHE_FACTOR = 4
STREAM_MIN_BYTES = 64 << 20
STREAM_UNKNOWN_CACHE_BYTES = 256 << 20  # where the cache size cannot be read
QUICK_STREAM_BYTES = 4 << 20


def _cpu_ext():
    """(pykern._cpu or None, why not, pykern's CPU thread count)."""
    from ..cpu import _compiled
    return _compiled.ext, _compiled.WHY_NOT, _compiled.threads()


def last_level_cache_bytes() -> Optional[int]:
    """The largest CPU cache Linux reports (sysfs), or None. (Not sysconf: glibc reports 320 MiB
    of L3 on this 32 MiB VM, and Python may not know the name.)"""
    base = "/sys/devices/system/cpu/cpu0/cache"
    sizes = []
    try:
        indexes = [d for d in os.listdir(base) if d.startswith("index")]
    except OSError:
        return None
    for index in indexes:
        try:
            with open(os.path.join(base, index, "size")) as f:
                text = f.read().strip().upper()
            sizes.append(int(text.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1))
        except (OSError, ValueError):
            continue
    return max(sizes) if sizes else None


def thread_counts(threads: int) -> list:
    """1 and pykern's thread count: the one-thread rungs and the threaded ones each have theirs."""
    return sorted({1, max(1, threads)})


def fma_peak(dtype: str = "float32", threads: int = 1, call_s: float = FMA_CALL_S,
             budget_s: float = MEASURE_BUDGET_S) -> dict:
    """Peak FMA throughput on ``threads`` threads (pykern._cpu.fma_peak), in GFLOP/s: the
    iteration count is doubled until one call lasts ``call_s``, then calls are timed for
    ``budget_s`` and the fastest counts. Raises RuntimeError without pykern._cpu."""
    ext, why, _ = _cpu_ext()
    if ext is None:
        raise RuntimeError(f"pykern._cpu is not available: {why}")
    iterations = 256
    while True:
        t0 = time.perf_counter()
        info = ext.fma_peak(dtype, iterations, threads)
        if time.perf_counter() - t0 >= call_s or iterations >= 1 << 40:
            break
        iterations *= 2
    if not (math.isfinite(info["checksum"]) and info["checksum"] > 0):
        raise RuntimeError(f"fma_peak {dtype}: the chains' checksum is {info['checksum']}, not a positive number")
    res = _ceiling(lambda: ext.fma_peak(dtype, iterations, threads), host_clock, noop, info["flops"], "GFLOP/s",
                   f"{info['chains']} independent FMA chains of {info['lanes']} {dtype} lanes ({info['isa']}) "
                   f"per thread on {threads} thread{'s' if threads > 1 else ''}, pykern._cpu.fma_peak",
                   budget_s=budget_s)
    return res | {"threads": threads, "isa": info["isa"], "lanes": info["lanes"], "chains": info["chains"],
                  "iterations": iterations, "flops": info["flops"]}


def stream(kernel: str = "copy", nbytes: int = 1 << 20, threads: int = 1,
           budget_s: float = MEASURE_BUDGET_S) -> dict:
    """STREAM's ``copy`` (c = a) or ``triad`` (a = b + s*c) on float64 arrays of ``nbytes`` each
    (pykern._cpu.stream_*), in GB/s of the bytes STREAM counts (copy 2, triad 3 arrays: read +
    written). Raises RuntimeError without pykern._cpu."""
    ext, why, _ = _cpu_ext()
    if ext is None:
        raise RuntimeError(f"pykern._cpu is not available: {why}")
    n = max(64, nbytes // 8)
    a, b, c = (np.full(n, v) for v in (1.0, 2.0, 0.5))  # filled: every page is touched before timing
    if kernel == "copy":
        run, arrays = (lambda: ext.stream_copy(a, c, threads)), 2
    elif kernel == "triad":
        run, arrays = (lambda: ext.stream_triad(a, b, c, 3.0, threads)), 3
    else:
        raise ValueError(f"stream: kernel must be 'copy' or 'triad', got {kernel!r}")
    moved = arrays * 8.0 * n
    res = _ceiling(run, host_clock, noop, moved, "GB/s",
                   f"STREAM {kernel} on {arrays} float64 arrays of {format_bytes(8 * n)} on {threads} "
                   f"thread{'s' if threads > 1 else ''}, pykern._cpu.stream_{kernel} "
                   f"({'read + write' if kernel == 'copy' else 'two read + one written'} bytes)", budget_s=budget_s)
    return res | {"kernel": kernel, "threads": threads, "bytes": moved, "array_bytes": 8 * n}


def _best_of(runs: list, threads: int, extra: dict) -> dict:
    """The ceiling from its runs (on 1 thread and on pykern's ``threads``): the fastest of them,
    as a ceiling is the best rate reached (on a busy machine the threaded run can lose to the
    one-thread one); every run is recorded."""
    best = max(runs, key=lambda r: r["rate"])
    one = [r["rate"] for r in runs if r["threads"] == 1]
    return {"rate": best["rate"], "unit": best["unit"], "how": best["how"], "best_s": best["best_s"],
            "median_s": best["median_s"], "threads": best["threads"], "pykern_threads": threads,
            "single_thread_rate": max(one) if one else None,
            "source": "pykern._cpu (kernels/cpu/ceilings.cpp)", "runs": runs} | (
                {"bytes": best["bytes"]} if "bytes" in best else {}) | extra


def rate_on(ceiling: dict, threads: int) -> Optional[float]:
    """The ceiling's fastest run on ``threads`` threads (a CPU ceiling measured on 1 and on N), else
    its rate (a fallback or GPU ceiling, measured once), or None where it is unavailable."""
    on = [r["rate"] for r in ceiling.get("runs", ()) if r.get("threads") == threads and r.get("rate")]
    return max(on) if on else ceiling.get("rate")


def cpu_memory_ceiling(quick: bool = False) -> dict:
    """The best of STREAM Copy and Triad on 1 thread and on pykern's thread count; without
    pykern._cpu, np.copyto."""
    ext, why, threads = _cpu_ext()
    if ext is None:
        return numpy_memory_ceiling(quick) | {"fallback": f"pykern._cpu is not available ({why}): "
                                                          "np.copyto on one thread instead of STREAM"}
    llc = last_level_cache_bytes()
    if quick:
        nbytes = QUICK_STREAM_BYTES
    elif llc:
        nbytes = max(STREAM_MIN_BYTES, STREAM_CACHE_FACTOR * llc)
    else:
        nbytes = STREAM_UNKNOWN_CACHE_BYTES
    budget = MEASURE_BUDGET_S / (10 if quick else 1)
    runs = [stream(k, nbytes, th, budget) for th in thread_counts(threads) for k in ("copy", "triad")]
    out = _best_of(runs, threads, {"last_level_cache_bytes": llc, "array_bytes": nbytes})
    if quick:
        out["how"] += f"; quick: {format_bytes(nbytes)} arrays fit in the caches"
    else:
        out["how"] += ("; arrays " + (f"{STREAM_CACHE_FACTOR}x the {format_bytes(llc)} last-level cache" if llc
                                      else "of a fixed size: the cache size is unknown here"))
    return out


def cpu_compute_ceiling(dtype: str, quick: bool = False) -> dict:
    """Peak FMA throughput in ``dtype`` on 1 thread and on pykern's thread count; without
    pykern._cpu, NumPy's BLAS GEMM rate."""
    if dtype not in ("float32", "float64"):
        return {"rate": None, "unit": "GFLOP/s", "reason": f"no {dtype} ceiling on the CPU: the FMA micro-benchmark "
                                                             f"and BLAS compute in float32 and float64 only"}
    ext, why, threads = _cpu_ext()
    if ext is None:
        return numpy_compute_ceiling(dtype, quick) | {
            "fallback": f"pykern._cpu is not available ({why}): NumPy's BLAS GEMM rate instead of the FMA peak"}
    # quick: calls of 2 ms still dwarf a thread's start (~50 us), so the threaded rate stays sound
    scale = 10 if quick else 1
    runs = [fma_peak(dtype, th, FMA_CALL_S / scale, MEASURE_BUDGET_S / scale) for th in thread_counts(threads)]
    return _best_of(runs, threads, {"isa": runs[0]["isa"]})


def numpy_memory_ceiling(quick: bool = False) -> dict:
    n = (1 << 22) if quick else (1 << 25)
    src = np.random.default_rng(0).random(n, dtype=np.float32)
    dst = np.empty_like(src)
    return dict(_ceiling(lambda: np.copyto(dst, src), host_clock, noop, 2.0 * src.nbytes, "GB/s",
                         f"np.copyto of {src.nbytes >> 20} MiB (read + write bytes)"), bytes=2.0 * src.nbytes)


def numpy_compute_ceiling(dtype: str, quick: bool = False) -> dict:
    n = 256 if quick else 2048
    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n)).astype(dtype) for _ in range(2))
    c = np.empty((n, n), dtype)
    return _ceiling(lambda: np.matmul(a, b, out=c), host_clock, noop, 2.0 * n ** 3, "GFLOP/s",
                    f"np.matmul {n}^3 {dtype} (BLAS {'s' if dtype == 'float32' else 'd'}gemm)")


def gpu_memory_ceiling() -> dict:
    nbytes = 1 << 30
    errors = []
    try:
        from .._device import DeviceArray, ext
        src, dst = DeviceArray.empty((nbytes,), np.uint8), DeviceArray.empty((nbytes,), np.uint8)
        mod = ext()
        mod.memset(src.ptr, 1, nbytes)
        return _ceiling(lambda: mod.memcpy_dtod(dst.ptr, src.ptr, nbytes), EventClock("pykern"), mod.synchronize,
                        2.0 * nbytes, "GB/s", "device-to-device cudaMemcpyAsync of 1 GiB (read + write bytes)")
    except Exception as e:
        errors.append(f"pykern._cuda: {e}")
    if _lib_reason("cupy") is None:
        import cupy
        src, dst = cupy.ones(nbytes, cupy.uint8), cupy.empty(nbytes, cupy.uint8)
        return _ceiling(lambda: cupy.copyto(dst, src), EventClock("cupy"), cupy_sync, 2.0 * nbytes, "GB/s",
                        "cupy.copyto of 1 GiB on the device (read + write bytes)")
    errors.append(f"cupy: {_lib_reason('cupy')}")
    if _lib_reason("torch") is None:
        import torch
        src = torch.ones(nbytes, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        return _ceiling(lambda: dst.copy_(src), EventClock("torch"), torch.cuda.synchronize, 2.0 * nbytes, "GB/s",
                        "torch copy_ of 1 GiB on the device (read + write bytes)")
    errors.append(f"torch: {_lib_reason('torch')}")
    return {"rate": None, "unit": "GB/s", "reason": "no device-copy ceiling: " + "; ".join(errors)}


def gpu_compute_ceiling(dtype: str, quick: bool = False) -> dict:
    n = 2048 if quick else 8192
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    host = {k: rng.random((n, n), dtype=np.float32) for k in "ab"}  # GEMM speed does not depend on the values
    if dtype in NP_DTYPES and _lib_reason("cupy") is None:
        import cupy
        a, b = (cupy.asarray(host[k]).astype(dtype) for k in "ab")
        c = cupy.empty((n, n), dtype)
        return _ceiling(lambda: cupy.matmul(a, b, out=c), EventClock("cupy"), cupy_sync, flops, "GFLOP/s",
                        f"cuBLAS GEMM {n}^3 {dtype} through cupy.matmul")
    if _lib_reason("torch") is None:
        import torch
        tdt = getattr(torch, dtype)
        a, b = (torch.from_numpy(host[k]).to("cuda").to(tdt) for k in "ab")
        c = torch.empty((n, n), dtype=tdt, device="cuda")
        return _ceiling(lambda: torch.matmul(a, b, out=c), EventClock("torch"), torch.cuda.synchronize, flops,
                        "GFLOP/s", f"cuBLAS GEMM {n}^3 {dtype} through torch.matmul (TF32 off)")
    return {"rate": None, "unit": "GFLOP/s",
            "reason": f"no cuBLAS to measure the {dtype} GEMM ceiling (cupy: {_lib_reason('cupy')}; "
                      f"torch: {_lib_reason('torch')})"}


_CACHE: dict = {}


def _cache_key(key: str, quick: bool) -> tuple:
    """What a ceiling depends on besides the machine: the CPU's thread count and instruction set."""
    if not key.startswith("cpu:"):
        return key, quick
    from ..cpu import _compiled
    return key, quick, _compiled.threads(), _compiled.isa()


def measure_ceilings(needed: set, quick: bool = False) -> dict:
    """Ceilings for every key in ``needed`` (see ceiling_key), measured on this machine once per
    process and setting (cached: a second sweep reuses them)."""
    out = {}
    for key in sorted(needed):
        ck = _cache_key(key, quick)
        if ck not in _CACHE:
            parts = key.split(":")
            try:
                if parts[0] == "cpu":
                    c = cpu_memory_ceiling(quick) if parts[1] == "memory" else cpu_compute_ceiling(parts[2], quick)
                else:
                    c = gpu_memory_ceiling() if parts[1] == "memory" else gpu_compute_ceiling(parts[2], quick)
            except Exception as e:  # a ceiling that cannot be measured leaves "% of ceiling" empty
                c = {"rate": None, "reason": f"{type(e).__name__}: {e}"}
            _CACHE[ck] = c
        out[key] = _CACHE[ck]
    return out
