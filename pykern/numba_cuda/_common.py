"""Helpers shared by the Numba CUDA op files."""
from __future__ import annotations

import numpy as np
from numba import cuda


def per_dtype(factory, dtypes) -> dict:
    """{np.dtype: kernel}, one kernel compiled per dtype.

    A shared or local array's dtype must be a compile-time constant, so each kernel factory
    closes over its dtype (and a typed zero: a plain ``0`` is an int64 that Numba would unify
    with float32 to float64).
    """
    return {np.dtype(t): factory(np.dtype(t).type) for t in dtypes}


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


@cuda.jit(device=True)
def unflatten4(i, d1, d2, d3):
    """Row-major index i over (d0, d1, d2, d3) -> (i0, i1, i2, i3), i3 varying fastest (so
    consecutive threads of a warp touch consecutive elements)."""
    i3 = i % d3
    i //= d3
    i2 = i % d2
    i //= d2
    return i // d1, i % d1, i2, i3
