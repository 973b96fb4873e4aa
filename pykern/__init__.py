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
import sys as _sys

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

__all__ = ["relu", "matmul", "conv2d", "relu_backward", "conv2d_backward_input", "conv2d_backward_weight",
           "backends", "variants", "check", "Availability", "Variant",
           "CheckReport", "Comparison", "TOLERANCES", "Unsupported", "__version__"]


def relu(x, *, backend: str = "auto", variant: str | None = None, out=None):
    """y = max(x, 0) elementwise (NaN propagates). x: any shape, float16/32/64.

    ``out`` (same shape/dtype/kind as x) may be x itself for an in-place ReLU.
    """
    return call("relu", {"x": x}, {}, backend=backend, variant=variant, out=out)


def matmul(a, b, *, transpose_a: bool = False, transpose_b: bool = False, backend: str = "auto",
           variant: str | None = None, out=None):
    """c = op(a) @ op(b), op(t) = t.T when its flag is set. op(a): (M, K), op(b): (K, N) -> c: (M, N).

    a is stored (M, K), or (K, M) with transpose_a; b (K, N), or (N, K) with transpose_b: the
    transposed operand is read in place, never copied (matmul's gradients: dA = matmul(dC, b,
    transpose_b=True), dB = matmul(a, dC, transpose_a=True)). Variants that do not take a flag
    refuse it and name those that do (``Variant.takes`` lists them: every NumPy and Numba variant,
    and the CUDA C++ rungs up to smem_tiled).
    float32/float64 return their own dtype; float16/bfloat16 (tensor-core variants) return float32.
    """
    params = {"transpose_a": transpose_a, "transpose_b": transpose_b}
    return call("matmul", {"a": a, "b": b}, params, backend=backend, variant=variant, out=out)


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


def relu_backward(dy, x, *, backend: str = "auto", variant: str | None = None, out=None):
    """dx = 0 where x <= 0, else dy: the gradient of y = relu(x), as torch's threshold_backward.

    dy, x: one shape and dtype -> dx: the same. x may be relu's output y instead (y <= 0 exactly
    where x <= 0, and y is NaN where x is). dx = 0 where x <= 0 (-0.0 included); where x is NaN,
    dx = dy (torch's rule: NaN <= 0 is false), and a NaN in dy reaches dx wherever x > 0.
    ``out`` may be dy or x itself.
    """
    return call("relu_backward", {"dy": dy, "x": x}, {}, backend=backend, variant=variant, out=out)


def conv2d_backward_input(dy, w, x_shape, *, stride=1, padding=0, dilation=1, groups: int = 1,
                          backend: str = "auto", variant: str | None = None):
    """dx, the gradient of conv2d(x, w, ...) with respect to x, given dy = dL/dy.

    dy: (N, K, P, Q), w: (K, C//groups, R, S), x_shape = (N, C, H, W) -> dx: x_shape. x_shape
    picks H, W among the sizes that give P, Q (with stride > 1 several do). stride, padding,
    dilation, groups: as conv2d's.
    """
    params = {"x_shape": x_shape, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return call("conv2d_backward_input", {"dy": dy, "w": w}, params, backend=backend, variant=variant)


def conv2d_backward_weight(x, dy, w_shape, *, stride=1, padding=0, dilation=1, groups: int = 1,
                           backend: str = "auto", variant: str | None = None):
    """dw, the gradient of conv2d(x, w, ...) with respect to w, given dy = dL/dy.

    x: (N, C, H, W), dy: (N, K, P, Q), w_shape = (K, C//groups, R, S) -> dw: w_shape. The bias
    gradient is dy.sum((0, 2, 3)) (no op). stride, padding, dilation, groups: as conv2d's.
    """
    params = {"w_shape": w_shape, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return call("conv2d_backward_weight", {"x": x, "dy": dy}, params, backend=backend, variant=variant)


def _op_function(spec):
    """``pk.<op>`` for an op with no hand-written function here: the spec's inputs positionally
    (an optional one may be left out at the end), its parameters by keyword."""
    required = len(spec.inputs) - sum(1 for name in reversed(spec.inputs) if name in spec.optional)

    def op(*arrays, backend: str = "auto", variant: str | None = None, out=None, **params):
        if not required <= len(arrays) <= len(spec.inputs):
            raise TypeError(f"{spec.name}() takes the arrays {', '.join(spec.inputs)}"
                            f"{f' (the last {len(spec.inputs) - required} optional)' if required < len(spec.inputs) else ''}"
                            f", got {len(arrays)}")
        named = dict(zip(spec.inputs, arrays + (None,) * (len(spec.inputs) - len(arrays))))
        return call(spec.name, named, params, backend=backend, variant=variant, out=out)

    op.__name__ = op.__qualname__ = spec.name
    op.__doc__ = (_sys.modules[type(spec).__module__].__doc__ or spec.name).strip()
    return op


def __getattr__(name: str):
    """A new op needs no function here: pykern.ops finds its spec, and this gives ``pk.<op>``."""
    from .ops import SPECS
    if name in SPECS:
        return _op_function(SPECS[name])
    raise AttributeError(f"module 'pykern' has no attribute {name!r}")
