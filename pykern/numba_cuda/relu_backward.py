"""ReLU's gradient in Numba CUDA: dx = 0 where x <= 0, else dy (torch's threshold_backward).

Variants:
  grid_stride  fixed grid, each thread strides over the arrays; the default

Launchers take Numba device arrays dy, x and dx of one shape (dx may be dy or x: each element
is read before it is written, by the same thread) and flatten them.
"""
from __future__ import annotations

from numba import cuda

from .._registry import register

BLOCK = 256
GRID_STRIDE_BLOCKS = 1024  # a few waves on any current GPU; more only adds scheduling


@cuda.jit
def _grid_stride_kernel(dy, x, dx):
    # dy, x, dx: (n,)
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, x.size, stride):
        # x <= 0, not "not x > 0": a NaN in x passes dy through, as in torch
        dx[i] = 0 if x[i] <= 0 else dy[i]


def _flat(a):
    return a.reshape(a.size)


@register("relu_backward", "numba", dtypes=("float32", "float64"), default=True)
def grid_stride(dy, x, dx):
    """Fixed grid; each thread strides over the arrays, selecting dy or 0 by the sign of x."""
    blocks = min(GRID_STRIDE_BLOCKS, (x.size + BLOCK - 1) // BLOCK)
    _grid_stride_kernel[blocks, BLOCK](_flat(dy), _flat(x), _flat(dx))
