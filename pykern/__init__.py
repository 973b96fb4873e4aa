"""pykern: hand-written GPU kernels (CUDA C++ and Numba CUDA) with NumPy CPU references.

    import numpy as np, pykern as pk
    a = np.random.rand(512, 256).astype(np.float32); b = np.random.rand(256, 128).astype(np.float32)
    c = pk.matmul(a, b)                                    # NumPy in, NumPy out (CPU)
    c = pk.matmul(a, b, backend="cuda", variant="smem_tiled")  # copies in/out, runs on the GPU
    pk.variants("matmul")                                  # the ladder of registered variants
    print(pk.check("matmul", "cuda", "smem_tiled"))        # equivalence with the float64 reference

Host arrays go to the ``numpy`` backend under ``backend="auto"``; GPU arrays (CUDA arrays
exporting ``__dlpack__`` or ``__cuda_array_interface__``: CuPy, Numba, PyTorch CUDA tensors)
go to ``cuda`` (else ``numba``) and come back as the same kind, zero-copy, ordered on the
caller's stream (see pykern/_arrays.py). Inputs must be C-contiguous: pykern never copies
implicitly.
"""
from __future__ import annotations

from ._backends import Availability, backends
from ._check import TOLERANCES, CheckReport, Comparison, check
from ._dispatch import Unsupported, call
from ._registry import Variant, variants
from ._version import __version__


def _warn_if_shadowing() -> None:
    from ._install import shadow_note
    note = shadow_note()
    if note:
        import warnings
        warnings.warn(note, RuntimeWarning, stacklevel=2)


_warn_if_shadowing()

__all__ = ["relu", "matmul", "conv2d", "backends", "variants", "check", "Availability", "Variant",
           "CheckReport", "Comparison", "TOLERANCES", "Unsupported", "__version__"]


def relu(x, *, backend: str = "auto", variant: str | None = None, out=None):
    """y = max(x, 0) elementwise (NaN propagates). x: any shape, float16/32/64.

    ``out`` (same shape/dtype/kind as x) may be x itself for an in-place ReLU.
    """
    return call("relu", {"x": x}, {}, backend=backend, variant=variant, out=out)


def matmul(a, b, *, backend: str = "auto", variant: str | None = None, out=None):
    """c = a @ b. a: (M, K), b: (K, N) -> c: (M, N).

    float32/float64 return their own dtype; float16/bfloat16 (tensor-core variants) return float32.
    """
    return call("matmul", {"a": a, "b": b}, {}, backend=backend, variant=variant, out=out)


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups: int = 1,
           activation: str | None = None, backend: str = "auto", variant: str | None = None):
    """2-D cross-correlation, NCHW, with torch.nn.functional.conv2d's semantics.

    x: (N, C, H, W), w: (K, C//groups, R, S), bias: (K,) or None -> y: (N, K, P, Q).
    stride, padding, dilation: int or (h, w) pair. activation: None or "relu", applied after the
    bias (fused into the kernel by variants that have a fused epilogue).
    """
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
              "activation": activation}
    return call("conv2d", {"x": x, "w": w, "bias": bias}, params, backend=backend, variant=variant)
