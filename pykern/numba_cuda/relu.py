"""ReLU in Numba CUDA.

Variants:
  naive        one thread per element, grid sized to n
  grid_stride  fixed grid, each thread strides over the array; the default

Launchers take Numba device arrays x and y of one shape (y may be x) and flatten them.
"""
from __future__ import annotations

from numba import cuda

from .._registry import register

BLOCK = 256
GRID_STRIDE_BLOCKS = 1024  # a few waves on any current GPU; more only adds scheduling


@cuda.jit
def _naive_kernel(x, y):
    # x, y: (n,)
    i = cuda.grid(1)
    if i < x.size:
        v = x[i]
        y[i] = 0 if v < 0 else v  # NaN compares false: it passes through


@cuda.jit
def _grid_stride_kernel(x, y):
    # x, y: (n,)
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, x.size, stride):
        v = x[i]
        y[i] = 0 if v < 0 else v


def _flat(a):
    return a.reshape(a.size)


@register("relu", "numba", dtypes=("float32", "float64"))
def naive(x, y):
    """One thread per element; grid sized to n."""
    n = x.size
    _naive_kernel[(n + BLOCK - 1) // BLOCK, BLOCK](_flat(x), _flat(y))


@register("relu", "numba", dtypes=("float32", "float64"), default=True)
def grid_stride(x, y):
    """Fixed grid; each thread strides over the array (fewer blocks, same coalescing)."""
    blocks = min(GRID_STRIDE_BLOCKS, (x.size + BLOCK - 1) // BLOCK)
    _grid_stride_kernel[blocks, BLOCK](_flat(x), _flat(y))
