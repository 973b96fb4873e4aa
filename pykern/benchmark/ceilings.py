"""Ceilings measured in the same run, never datasheet numbers: the best copy bandwidth and GEMM
rate this machine reaches, against which "% of ceiling" is computed."""
from __future__ import annotations

import numpy as np

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


def cpu_memory_ceiling(quick: bool = False) -> dict:
    n = (1 << 22) if quick else (1 << 25)
    src = np.random.default_rng(0).random(n, dtype=np.float32)
    dst = np.empty_like(src)
    return dict(_ceiling(lambda: np.copyto(dst, src), host_clock, noop, 2.0 * src.nbytes, "GB/s",
                         f"np.copyto of {src.nbytes >> 20} MiB (read + write bytes)"), bytes=2.0 * src.nbytes)


def cpu_compute_ceiling(dtype: str, quick: bool = False) -> dict:
    if dtype not in ("float32", "float64"):
        return {"rate": None, "unit": "GFLOP/s", "reason": f"the CPU ceiling is a NumPy BLAS GEMM rate; "
                                                             f"BLAS has no {dtype} GEMM"}
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


def measure_ceilings(needed: set, quick: bool = False) -> dict:
    """Ceilings for every key in ``needed`` (see ceiling_key), measured now on this machine."""
    out = {}
    for key in sorted(needed):
        parts = key.split(":")
        try:
            if parts[0] == "cpu":
                out[key] = cpu_memory_ceiling(quick) if parts[1] == "memory" else cpu_compute_ceiling(parts[2], quick)
            else:
                out[key] = gpu_memory_ceiling() if parts[1] == "memory" else gpu_compute_ceiling(parts[2], quick)
        except Exception as e:  # a ceiling that cannot be measured leaves "% of ceiling" empty
            out[key] = {"rate": None, "reason": f"{type(e).__name__}: {e}"}
    return out
