"""Will a sweep fit in memory? Each case's working set, estimated from its shapes before anything
is allocated, against the memory the machine (and its GPU) has available now.

Without this, a size too large for the machine is found by the kernel's OOM killer after minutes
(``pykern compare --op relu --sizes 2^30``: killed after 103 s at 24 GB resident), or by an
allocation error per entry. A size the user asked for that does not fit is refused before anything
runs; a default case that does not fit is skipped with the estimate as the reason.

What one entry holds at its peak on the host (measured with tracemalloc, which sees NumPy's
allocations, on every CPU variant and baseline of every op at sizes of 1 to 100 MB: the estimate,
less the CPU workspace allowance, was 1.1 to 2.2 times the measured peak):

    the seeded inputs                         kept for every target of the case (run.CaseData)
    the variant's output                      a GPU row's is the host copy finish() returns;
                                              ``compare`` holds a second one (the whole call's)
    the largest of three passes, each float64:
      making one input                        17 bytes per element: normals, their |.|, a mask
      the reference (run.CaseData.reference)  the inputs and their |.| in float64, the reference
                                              op's own temporaries, then ref and mag; a
                                              ``reference`` variant does the same while timed
      the check (pykern._check.compare)       ref, mag and ~7 temporaries of the output's size
    CPU workspace                             per thread: the im2col/col2im block buffers
                                              (MAX_COLS_BYTES in pykern/cpu/conv2d.py) and BLAS's

On a GPU: the inputs, the output (twice in ``compare``), the workspace the op's spec declares
(``OpSpec.gpu_workspace``: conv2d's im2col buffer of one image, for the cuda im2col_gemm variant),
and the L2 flush buffer. Memory the GPU libraries keep in their pools
(CuPy, torch) after the ceilings or a baseline ran is not counted: it is free when this is read.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np

from .._arrays import ArrayInfo, format_bytes
from ..ops import SPECS

# Bytes per element of the float64 passes above (see the module docstring for what each counts).
MAKE_INPUT_BYTES = 17
REFERENCE_BYTES_PER_INPUT = 40
REFERENCE_BYTES_PER_OUTPUT = 40
CHECK_BYTES_PER_OUTPUT = 72
CPU_WORKSPACE_PER_THREAD = 32 << 20
GPU_FLUSH_BYTES = 256 << 20  # pykern._timing.gpu_flusher: twice the L2 (100 MiB on an H100), >= 64 MiB


class _NoData:
    """Stands in for an array while an op spec's make_inputs builds a case: keeps the shape and
    dtype, holds no data, so a case's shapes come from its spec without allocating it."""

    def __init__(self, shape, dtype=np.float64):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return self

    def __lt__(self, other):
        return self

    def __setitem__(self, key, value):
        pass

    def astype(self, dtype, copy=True):
        return _NoData(self.shape, dtype)


class _NoDataRng:
    def standard_normal(self, shape):
        return _NoData((shape,) if isinstance(shape, int) else shape)


def case_arrays(op: str, case: dict, dtype: str) -> tuple[dict, tuple, np.dtype]:
    """({input name: (shape, dtype)}, output shape, output dtype) of ``op`` on ``case``, from its
    spec, with nothing allocated. ValueError (the spec's own) for a case the op refuses; ImportError
    for a dtype whose module is missing (bfloat16 without ml_dtypes)."""
    spec = SPECS[op]
    made, params = spec.make_inputs(case, dtype, _NoDataRng())
    inputs = {k: (v.shape, v.dtype) for k, v in made.items() if v is not None}
    infos = {k: (None if v is None else ArrayInfo(k, None, "numpy", v.shape, v.dtype, 0, None))
             for k, v in made.items()}
    out_shape, out_dtype, _ = spec.validate(infos, params)
    return inputs, tuple(out_shape), np.dtype(out_dtype)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def estimate(op: str, case: dict, dtype: str, device: str, *, whole_call: bool = False) -> dict:
    """The peak bytes one entry of ``op`` on ``case`` holds: {"host": ..., "gpu": ..., "parts":
    {what: bytes on the host}}. ``device``: where the kernel runs ("cpu" or "gpu");
    ``whole_call``: the entry also times whole calls, each with its own output (``compare``)."""
    inputs, out_shape, out_dtype = case_arrays(op, case, dtype)
    sizes = [math.prod(shape) for shape, _ in inputs.values()]
    in_e, out_e = sum(sizes), math.prod(out_shape)
    in_b = sum(n * dt.itemsize for n, (_, dt) in zip(sizes, inputs.values()))
    out_b = out_e * out_dtype.itemsize * (2 if whole_call else 1)
    float64 = max(MAKE_INPUT_BYTES * max(sizes, default=0),
                  REFERENCE_BYTES_PER_INPUT * in_e + REFERENCE_BYTES_PER_OUTPUT * out_e,
                  CHECK_BYTES_PER_OUTPUT * out_e)
    out_name = "outputs (the kernel's and a whole call's)" if whole_call else "output"
    parts = {"inputs": in_b, out_name + (" on the host" if device == "gpu" else ""): out_b,
             "float64 reference and check": float64}
    if device == "cpu":
        parts["workspace"] = CPU_WORKSPACE_PER_THREAD * _usable_cores()
    gpu = 0
    if device == "gpu":
        gpu = in_b + out_b + GPU_FLUSH_BYTES + SPECS[op].gpu_workspace(case, out_shape)
    return {"host": sum(parts.values()), "gpu": gpu, "parts": parts}


def host_available() -> tuple[Optional[int], str]:
    """(bytes the host can still allocate without swapping, how that was read), or (None, why not)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free pages (os.sysconf)"
    except (AttributeError, ValueError, OSError):
        return None, "unknown: no /proc/meminfo and no os.sysconf('SC_AVPHYS_PAGES')"


def gpu_available() -> tuple[Optional[int], str]:
    """(free bytes on the current GPU, how that was read), or (None, why not). pykern._cuda has no
    query of its own: CuPy, then torch, then Numba, else the device's total memory."""
    from .baselines import _lib_reason
    from .environment import gpu_info, gpu_present
    if _lib_reason("cupy") is None:
        import cupy
        return int(cupy.cuda.runtime.memGetInfo()[0]), "free memory (cupy.cuda.runtime.memGetInfo)"
    if _lib_reason("torch") is None:
        import torch
        return int(torch.cuda.mem_get_info()[0]), "free memory (torch.cuda.mem_get_info)"
    from .._backends import availability, simulator_enabled
    if availability("numba").available and not simulator_enabled() and gpu_present()[0]:
        try:
            from numba import cuda
            return int(cuda.current_context().get_memory_info()[0]), "free memory (numba.cuda)"
        except Exception:  # numba-cuda without that query: fall back to the total
            pass
    info, why = gpu_info()
    if info and info.get("total_memory"):
        return int(info["total_memory"]), "the GPU's total memory (no library here reports the free memory)"
    return None, f"unknown: {why or 'no GPU library reports it'}"


def check_fit(items, *, whole_call: bool = False, host: Optional[tuple] = None,
              gpu: Optional[tuple] = None) -> tuple[dict, dict]:
    """Which of ``items`` (op, case, dtype, device) do not fit here: ({item: why}, summary for the
    JSON). ``host``, ``gpu``: (bytes, how) to compare with instead of reading the machine (tests).
    ValueError for a case its op refuses (its spec's message, naming the op and the size)."""
    unique = {}  # the targets of one case share its estimate
    for op, case, dtype, device in items:
        unique.setdefault((op, SPECS[op].case_id(case), dtype, device), case)
    est = {}
    for (op, cid, dtype, device), case in unique.items():
        try:
            est[op, cid, dtype, device] = estimate(op, case, dtype, device, whole_call=whole_call)
        except ImportError:  # its entries are skipped with that reason when they run
            continue
        except (ValueError, TypeError) as e:
            raise ValueError(f"sizes: {op} {cid} ({dtype}): {e}") from None
    host = host or host_available()
    if gpu is None:
        gpu = gpu_available() if any(k[3] == "gpu" for k in est) else (None, "no GPU rows")
    too_big = {}
    for key, e in est.items():
        op, cid, dtype, device = key
        why = []
        if host[0] is not None and e["host"] > host[0]:
            parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in e["parts"].items())
            why.append(f"needs about {format_bytes(e['host'])} of host memory ({parts}), but "
                       f"{format_bytes(host[0])} is available ({host[1]})")
        if device == "gpu" and gpu[0] is not None and e["gpu"] > gpu[0]:
            why.append(f"needs about {format_bytes(e['gpu'])} on the GPU, but {format_bytes(gpu[0])} is available ({gpu[1]})")
        if why:
            too_big[key] = f"{op} {cid} ({dtype}, {device.upper()}): " + "; ".join(why)
    summary = {"host_available_bytes": host[0], "host_available_how": host[1],
               "gpu_available_bytes": gpu[0], "gpu_available_how": gpu[1],
               "largest_host_estimate_bytes": max((e["host"] for e in est.values()), default=0),
               "largest_gpu_estimate_bytes": max((e["gpu"] for e in est.values()), default=0),
               "estimate": "inputs + output + the float64 reference and check + workspace, per entry "
                           "(pykern/benchmark/memory.py)"}
    return too_big, summary


def refuse(too_big: dict, chosen) -> None:
    """ValueError listing what does not fit among the cases of the ``chosen`` ops (those whose
    sizes the user gave): a size asked for is refused, never silently skipped."""
    mine = [why for key, why in too_big.items() if key[0] in set(chosen or ())]
    if mine:
        raise ValueError("memory: " + ("this size does" if len(mine) == 1 else "these sizes do")
                         + " not fit on this machine; choose smaller --sizes:\n  " + "\n  ".join(mine))


def skip_reason(why: str) -> str:
    return f"does not fit in memory here: {why}"
