"""Matrix multiply in CUDA C++ (kernels/matmul.cu): c = a @ b, row-major, a: (M, K), b: (K, N) -> c: (M, N).

The variants are a ladder (kernels/matmul.cu's header says what each rung adds; its variant
table lists them). Every variant takes any M, N, K >= 1 and any naturally aligned pointers:
vector accesses are used only where alignment allows, with a scalar path otherwise, so none
needs a ``supports`` rule.
"""
from __future__ import annotations

from ._launch import register_table


def _launch(kernel, a, b, c):
    """a: (M, K), b: (K, N), c: (M, N) device ArrayInfo."""
    (m, k), n = a.shape, b.shape[1]
    kernel(a.ptr, b.ptr, c.ptr, m, n, k, a.dtype.name, a.stream)


register_table("matmul", _launch)
