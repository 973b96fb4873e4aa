"""ReLU in CUDA C++ (kernels/relu.cu). x, y: device ArrayInfo of one shape; y may be x."""
from __future__ import annotations

from .._registry import register
from ._launch import kernel

DTYPES = ("float16", "float32", "float64")


def _launch(name, x, y):
    kernel(name)(x.ptr, y.ptr, x.size, x.dtype.name, x.stream)


@register("relu", "cuda", dtypes=DTYPES)
def naive(x, y):
    """One thread per element; grid sized to n."""
    _launch("relu_naive", x, y)


@register("relu", "cuda", dtypes=DTYPES)
def grid_stride(x, y):
    """Grid capped at 8 blocks per SM; each thread strides over the array."""
    _launch("relu_grid_stride", x, y)


@register("relu", "cuda", dtypes=DTYPES, default=True)
def vectorized(x, y):
    """Grid-stride over 16-byte packets; scalar head/tail make any length and alignment correct."""
    _launch("relu_vectorized", x, y)
