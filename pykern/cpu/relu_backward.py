"""ReLU's gradient on the CPU with NumPy: dx = 0 where x <= 0, else dy (so NaN in x passes dy).

Variants:
  reference    the spec (np.where in pykern/ops/relu_backward.py), any float dtype
  bit_mask     dx = dy's bits AND a mask of all ones where x > 0 (or NaN) and all zeros where
               x <= 0: +0.0 there, dy bit for bit elsewhere (NaN payloads included); two integer
               passes, where a masked np.copyto(where=...) was 3-4x slower; the default

Both are exact, and both may write over dy or x (the mask is taken before anything is written).
"""
from __future__ import annotations

import numpy as np

from .._registry import register
from ..ops.relu_backward import reference

DTYPES = ("float16", "float32", "float64")


@register("relu_backward", "numpy", dtypes=DTYPES, name="reference")
def reference_variant(dy, x, dx):
    """The spec itself (np.where), copied into the output."""
    np.copyto(dx, reference(dy, x))


# The unsigned integer type of each float's width: the mask works on the bits.
BITS = {np.dtype(np.float16): np.uint16, np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


@register("relu_backward", "numpy", dtypes=DTYPES, default=True, bare=True)
def bit_mask(dy, x, dx):
    """dx bits = dy bits AND (0 where x <= 0, else all ones): exact, two integer passes."""
    u = BITS[dx.dtype]
    # x <= 0 is 1 where dx must be +0.0: 1 - 1 = 0, and 0 - 1 wraps to all ones. Taken before
    # dx is written: dx may be x itself.
    keep = np.subtract(np.less_equal(x, 0), 1, dtype=u, casting="unsafe")
    np.bitwise_and(dy.view(u), keep, out=dx.view(u))
