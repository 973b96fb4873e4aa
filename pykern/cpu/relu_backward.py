"""ReLU's gradient on the CPU with NumPy: dx = 0 where x <= 0, else dy (so NaN in x passes dy).

Variants:
  reference    the spec (np.where in pykern/ops/relu_backward.py), any float dtype
  masked_copy  dx = dy, then zeros written where x <= 0 (np.copyto with a mask): no float
               temporaries, one byte of mask per element; the default

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


@register("relu_backward", "numpy", dtypes=DTYPES, default=True)
def masked_copy(dy, x, dx):
    """np.copyto(dx, dy) then np.copyto(dx, 0, where=x <= 0): no float temporaries."""
    dead = np.less_equal(x, 0)  # before dx is written: dx may be x itself
    np.copyto(dx, dy)
    np.copyto(dx, np.zeros((), dx.dtype), where=dead)
