"""Library baselines an op spec lists (``OpSpec.baselines``): one record per library and device,
timed by the benchmarks beside the variants as their yardstick, and the helpers that hand an
op's NumPy inputs to NumPy, torch or CuPy and bring the result back. torch and CuPy are imported
only when a baseline is built: a spec file imports neither."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

NP_DTYPES = ("float16", "float32", "float64")
TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class Baseline:
    """A library implementation timed in the same run, as the yardstick for the variants."""

    op: str
    device: str  # "cpu" or "gpu"
    name: str  # the library (and where it runs): numpy, torch-cpu, cupy, torch-cuda
    technique: str
    lib: str  # which availability check and CUDA events apply: numpy, torch_cpu, cupy, torch
    dtypes: tuple
    build: Callable = field(repr=False, compare=False)  # (arrays, params) -> (run, sync, result)


def noop() -> None:
    return None


def to_torch(x: Optional[np.ndarray], device: str):
    """``x`` as a torch tensor on ``device`` (a copy, so the timed op never shares NumPy's buffer)."""
    import torch
    if x is None:
        return None
    if x.dtype.name == "bfloat16":  # ml_dtypes' bfloat16 has no torch equivalent: reinterpret bits
        t = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device) if device != "cpu" else t.clone()


def from_torch(t) -> np.ndarray:
    """A torch tensor as a host NumPy array (bfloat16 through ml_dtypes)."""
    import torch
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def torch_sync(device: str) -> Callable[[], None]:
    """What waits for torch's queued work on ``device``: nothing on the CPU."""
    if device == "cpu":
        return noop
    import torch
    return torch.cuda.synchronize


def cupy_sync() -> None:
    import cupy
    cupy.cuda.Device().synchronize()


# A baseline's ``prepare(inputs, params)`` receives the op's inputs as the library's arrays and
# the validated params, allocates what the op writes, and returns (run, result): run() launches
# the op once (the timed call), result() is the library's output after the last run.

def keeping(fn: Callable[[], object]) -> tuple:
    """(run, result) for a library call that allocates its output on every run: run() calls
    ``fn`` and keeps what it returned, result() gives it back."""
    out = {}

    def run():
        out["y"] = fn()
    return run, (lambda: out["y"])


def numpy_baseline(op: str, technique: str, dtypes: tuple, prepare: Callable) -> Baseline:
    """NumPy (and its BLAS) on the CPU."""
    def build(arrays, params):
        run, result = prepare(arrays, params)
        return run, noop, result
    return Baseline(op, "cpu", "numpy", technique, "numpy", dtypes, build)


def torch_baseline(op: str, device: str, technique: str, prepare: Callable) -> Baseline:
    """torch on ``device`` ("cpu", or "gpu": CUDA, timed on torch's own events)."""
    where = "cpu" if device == "cpu" else "cuda"

    def build(arrays, params):
        run, result = prepare({k: to_torch(v, where) for k, v in arrays.items()}, params)
        return run, torch_sync(where), (lambda: from_torch(result()))
    return Baseline(op, device, f"torch-{where}", technique, "torch_cpu" if device == "cpu" else "torch",
                    TORCH_DTYPES, build)


def cupy_baseline(op: str, technique: str, prepare: Callable) -> Baseline:
    """CuPy on the GPU (cuBLAS for GEMMs)."""
    def build(arrays, params):
        import cupy
        run, result = prepare({k: (None if v is None else cupy.asarray(v)) for k, v in arrays.items()}, params)
        return run, cupy_sync, (lambda: cupy.asnumpy(result()))
    return Baseline(op, "gpu", "cupy", technique, "cupy", NP_DTYPES, build)
