"""Matrix multiply on the CPU with NumPy: c = op(a) @ op(b) (op: transpose when the flag is set).

Variants:
  reference   the spec in float64 (BLAS dgemm), cast to the output dtype
  blas        np.matmul in the input dtype straight into the output (sgemm/dgemm); the default

Both take transpose_a / transpose_b: the stored array's .T is a view, and BLAS reads a
transposed operand in place (its own trans flag), so nothing is copied.
"""
from __future__ import annotations

import numpy as np

from .._registry import register

TRANSPOSES = ("transpose_a", "transpose_b")


def reference(a: np.ndarray, b: np.ndarray, transpose_a: bool = False, transpose_b: bool = False) -> np.ndarray:
    """c[m, n] = sum_k op(a)[m, k] * op(b)[k, n], computed in float64.

    a: (M, K), or (K, M) with transpose_a; b: (K, N), or (N, K) with transpose_b -> c: (M, N) float64.
    """
    a64, b64 = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    return np.matmul(a64.T if transpose_a else a64, b64.T if transpose_b else b64)


@register("matmul", "numpy", dtypes=("float32", "float64"), name="reference", takes=TRANSPOSES)
def reference_variant(a, b, c, *, transpose_a=False, transpose_b=False):
    """The spec: float64 BLAS, rounded to the output dtype."""
    np.copyto(c, reference(a, b, transpose_a, transpose_b), casting="same_kind")


@register("matmul", "numpy", dtypes=("float32", "float64"), default=True, takes=TRANSPOSES)
def blas(a, b, c, *, transpose_a=False, transpose_b=False):
    """np.matmul into the output: the machine's BLAS in the input precision (transposes as views)."""
    np.matmul(a.T if transpose_a else a, b.T if transpose_b else b, out=c)
