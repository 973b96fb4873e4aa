"""Matrix multiply on the CPU with NumPy.

Variants:
  reference   the spec (pykern/ops/matmul.py) in float64 (BLAS dgemm), cast to the output dtype
  blas        np.matmul in the input dtype straight into the output (sgemm/dgemm); the default
"""
from __future__ import annotations

import numpy as np

from .._registry import register
from ..ops.matmul import reference


@register("matmul", "numpy", dtypes=("float32", "float64"), name="reference")
def reference_variant(a, b, c):
    """The spec: float64 BLAS, rounded to the output dtype."""
    np.copyto(c, reference(a, b), casting="same_kind")


@register("matmul", "numpy", dtypes=("float32", "float64"), default=True)
def blas(a, b, c):
    """np.matmul into the output: the machine's BLAS in the input precision."""
    np.matmul(a, b, out=c)
