"""Library baselines timed in the same run as the variants, as their yardstick: NumPy/BLAS and
torch on the CPU, cuBLAS through CuPy and cuBLAS/cuDNN through torch on a GPU. Each is optional:
a missing library gives the reason instead of a time."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Optional

import numpy as np


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


# Settings that change what the baselines compute, per library module; every result file states
# those of the libraries installed (baseline_settings).
BASELINE_SETTINGS = {
    "torch": "torch: torch.backends.cudnn.allow_tf32 = False and torch.backends.cuda.matmul.allow_tf32 = "
             "False (fp32 baselines compute in fp32, not TF32); torch.backends.cudnn.benchmark = True "
             "(cuDNN picks its fastest algorithm during the untimed check run)",
    "cupy": "cupy: CUPY_TF32 is left unset (cuBLAS computes fp32 in fp32)",
}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it (torch takes seconds)."""
    import importlib.util
    return module in sys.modules or importlib.util.find_spec(module) is not None


def baseline_settings() -> list:
    """The notes of BASELINE_SETTINGS for the libraries installed here: a note on torch's TF32
    switches describes no baseline on a machine without torch."""
    return [note for module, note in BASELINE_SETTINGS.items() if _installed(module)]


def _noop() -> None:
    return None


@lru_cache(maxsize=None)
def _lib_reason(lib: str) -> Optional[str]:
    """None when the baseline library can run here, else why not."""
    if lib == "numpy":
        return None
    if lib in ("torch", "torch_cpu"):
        try:
            import torch
        except Exception as e:
            return f"torch is not installed or does not import ({type(e).__name__}: {e})"
        if lib == "torch":
            if not torch.cuda.is_available():
                return "torch sees no CUDA GPU (torch.cuda.is_available() is False)"
            _torch_settings(torch)
        return None
    if lib == "cupy":
        try:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "cupy sees no CUDA GPU"
        except Exception as e:
            return f"cupy is not installed or finds no GPU ({type(e).__name__}: {e})"
        return None
    return f"unknown baseline library {lib!r}"


def _torch_settings(torch) -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


def _to_torch(x: Optional[np.ndarray], device: str):
    import torch
    if x is None:
        return None
    if x.dtype.name == "bfloat16":  # ml_dtypes' bfloat16 has no torch equivalent: reinterpret bits
        t = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device) if device != "cpu" else t.clone()


def _from_torch(t) -> np.ndarray:
    import torch
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _torch_sync(device: str) -> Callable[[], None]:
    if device == "cpu":
        return _noop
    import torch
    return torch.cuda.synchronize


def _cupy_sync() -> None:
    import cupy
    cupy.cuda.Device().synchronize()


def _operands(arrays, params):
    """matmul's op(a), op(b): the stored arrays, transposed (as views) where the case says so."""
    a, b = arrays["a"], arrays["b"]
    return (a.T if params.get("transpose_a") else a), (b.T if params.get("transpose_b") else b)


def _np_matmul(arrays, params):
    a, b = _operands(arrays, params)
    c = np.empty((a.shape[0], b.shape[1]), a.dtype)
    return (lambda: np.matmul(a, b, out=c)), _noop, (lambda: c)


def _np_relu(arrays, params):
    x = arrays["x"]
    y = np.empty_like(x)
    zero = np.zeros((), x.dtype)
    return (lambda: np.maximum(x, zero, out=y)), _noop, (lambda: y)


def _torch_builder(op: str, device: str):
    def build(arrays, params):
        import torch
        ts = {k: _to_torch(v, device) for k, v in arrays.items()}
        out = {}
        if op == "matmul":
            a, b = _operands(ts, params)
            out["y"] = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)

            def run():
                torch.matmul(a, b, out=out["y"])
        elif op == "relu":
            def run():
                out["y"] = torch.relu(ts["x"])
        elif op == "conv2d":
            fn = torch.nn.functional.conv2d

            def run():
                y = fn(ts["x"], ts["w"], ts.get("bias"), stride=params["stride"], padding=params["padding"],
                       dilation=params["dilation"], groups=params["groups"])
                out["y"] = torch.relu_(y) if params["activation"] == "relu" else y
        elif op == "relu_backward":
            def run():
                out["y"] = torch.ops.aten.threshold_backward(ts["dy"], ts["x"], 0)
        elif op in ("conv2d_backward_input", "conv2d_backward_weight"):
            conv = {k: params[k] for k in ("stride", "padding", "dilation", "groups")}

            def run():
                if op == "conv2d_backward_input":
                    out["y"] = torch.nn.grad.conv2d_input(params["x_shape"], ts["w"], ts["dy"], **conv)
                else:
                    out["y"] = torch.nn.grad.conv2d_weight(ts["x"], params["w_shape"], ts["dy"], **conv)
        else:
            raise ValueError(op)
        return run, _torch_sync(device), (lambda: _from_torch(out["y"]))
    return build


def _cupy_builder(op: str):
    def build(arrays, params):
        import cupy
        ds = {k: (None if v is None else cupy.asarray(v)) for k, v in arrays.items()}
        if op == "matmul":
            a, b = _operands(ds, params)
            y = cupy.empty((a.shape[0], b.shape[1]), a.dtype)

            def run():
                cupy.matmul(a, b, out=y)
        elif op == "relu":
            x = ds["x"]
            y = cupy.empty_like(x)
            zero = x.dtype.type(0)

            def run():
                cupy.maximum(x, zero, out=y)
        else:
            raise ValueError(op)
        return run, _cupy_sync, (lambda: cupy.asnumpy(y))
    return build


_NP = ("float16", "float32", "float64")
_TORCH = ("float16", "bfloat16", "float32", "float64")

# Per (op, device), the first baseline that runs is the one the ratio refers to; the others are
# timed alongside for context.
BASELINES = [
    Baseline("matmul", "cpu", "numpy", "np.matmul: the machine's BLAS (sgemm/dgemm)", "numpy",
             ("float32", "float64"), _np_matmul),
    Baseline("matmul", "cpu", "torch-cpu", "torch.matmul on the CPU", "torch_cpu", _TORCH,
             _torch_builder("matmul", "cpu")),
    Baseline("matmul", "gpu", "cupy", "cupy.matmul: cuBLAS GEMM (no TF32)", "cupy", _NP, _cupy_builder("matmul")),
    Baseline("matmul", "gpu", "torch-cuda", "torch.matmul: cuBLAS GEMM, TF32 off", "torch", _TORCH,
             _torch_builder("matmul", "cuda")),
    Baseline("conv2d", "cpu", "torch-cpu", "torch F.conv2d on the CPU (oneDNN)", "torch_cpu", _TORCH,
             _torch_builder("conv2d", "cpu")),
    Baseline("conv2d", "gpu", "torch-cuda", "torch F.conv2d: cuDNN, TF32 off, autotuned", "torch", _TORCH,
             _torch_builder("conv2d", "cuda")),
    Baseline("relu", "cpu", "numpy", "np.maximum(x, 0, out=y)", "numpy", _NP, _np_relu),
    Baseline("relu", "cpu", "torch-cpu", "torch.relu on the CPU", "torch_cpu", _TORCH, _torch_builder("relu", "cpu")),
    Baseline("relu", "gpu", "torch-cuda", "torch.relu", "torch", _TORCH, _torch_builder("relu", "cuda")),
    Baseline("relu", "gpu", "cupy", "cupy.maximum(x, 0, out=y)", "cupy", _NP, _cupy_builder("relu")),
    Baseline("relu_backward", "cpu", "torch-cpu", "torch's threshold_backward on the CPU", "torch_cpu", _TORCH,
             _torch_builder("relu_backward", "cpu")),
    Baseline("relu_backward", "gpu", "torch-cuda", "torch's threshold_backward", "torch", _TORCH,
             _torch_builder("relu_backward", "cuda")),
] + [Baseline(op, dev, f"torch-{dev.replace('gpu', 'cuda')}",
              f"torch.nn.grad.{op.replace('_backward', '')} (aten.convolution_backward" +
              (": oneDNN)" if dev == "cpu" else ": cuDNN, TF32 off)"), "torch_cpu" if dev == "cpu" else "torch",
              _TORCH, _torch_builder(op, "cpu" if dev == "cpu" else "cuda"))
     for op in ("conv2d_backward_input", "conv2d_backward_weight") for dev in ("cpu", "gpu")]
