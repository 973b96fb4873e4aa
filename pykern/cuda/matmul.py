"""Matrix multiply in CUDA C++ (kernels/matmul.cu): c = a @ b, row-major, a: (M, K), b: (K, N) -> c: (M, N);
with transpose_a / transpose_b, a is stored (K, M) and b (N, K) and read in place (the rows whose
table `takes` column lists them: naive, coalesced, smem_tiled).

The variants are a ladder (kernels/matmul.cu's header says what each rung adds; its variant
table lists them). Every variant takes any M, N, K >= 1 and any naturally aligned pointers:
vector accesses are used only where alignment allows, with a scalar path otherwise, so none
needs a ``supports`` rule.
"""
from __future__ import annotations

from ._launch import register_table


def _launch(kernel, a, b, c, *, transpose_a=False, transpose_b=False):
    """a: (M, K), or (K, M) stored when transpose_a; b: (K, N), or (N, K) when transpose_b;
    c: (M, N): device ArrayInfo. Only the rows whose table takes a flag receive it set."""
    m, n = c.shape
    k = a.shape[0] if transpose_a else a.shape[1]
    kernel(a.ptr, b.ptr, c.ptr, m, n, k, a.dtype.name, a.stream, transpose_a=transpose_a, transpose_b=transpose_b)


register_table("matmul", _launch)
