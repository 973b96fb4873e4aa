"""ReLU on the CPU with NumPy.

Variants:
  reference   the spec (pykern/ops/relu.py), np.where, any float dtype
  maximum     np.maximum writing straight into the output (no temporaries); the default
"""
from __future__ import annotations

import numpy as np

from .._registry import register
from ..ops.relu import reference


@register("relu", "numpy", dtypes=("float16", "float32", "float64"), name="reference")
def reference_variant(x, y):
    """The spec itself (np.where), copied into the output."""
    np.copyto(y, reference(x))


@register("relu", "numpy", dtypes=("float16", "float32", "float64"), default=True, bare=True)
def maximum(x, y):
    """np.maximum(x, 0, out=y): one pass, no temporaries."""
    np.maximum(x, np.zeros((), x.dtype), out=y)
