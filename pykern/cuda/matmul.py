"""Matrix multiply in CUDA C++ (kernels/matmul.cu): c = a @ b, row-major, a: (M, K), b: (K, N) -> c: (M, N).

Variants, a ladder (kernels/matmul.cu's header says what each rung adds): naive, coalesced,
smem_tiled, blocktile_1d, blocktile_2d, vectorized, warptile, double_buffer (the default),
wmma_fp16, wmma_bf16. Every variant takes any M, N, K >= 1 and any naturally aligned pointers:
vector accesses are used only where alignment allows, with a scalar path otherwise, so none
needs a ``supports`` rule. Launchers get device ArrayInfo records a, b and the output c.
"""
from __future__ import annotations

from .._registry import register
from ._launch import kernel

F32_F64 = ("float32", "float64")
F32 = ("float32",)


def _launch(variant, a, b, c):
    """a: (M, K), b: (K, N), c: (M, N) device ArrayInfo."""
    (m, k), n = a.shape, b.shape[1]
    kernel(f"matmul_{variant}")(a.ptr, b.ptr, c.ptr, m, n, k, a.dtype.name, a.stream)


@register("matmul", "cuda", dtypes=F32_F64)
def naive(a, b, c):
    """One thread per output, threadIdx.x -> row: warp loads of a and stores of c are uncoalesced on purpose."""
    _launch("naive", a, b, c)


@register("matmul", "cuda", dtypes=F32_F64)
def coalesced(a, b, c):
    """One thread per output, threadIdx.x -> column: a warp reads b and writes c at consecutive addresses."""
    _launch("coalesced", a, b, c)


@register("matmul", "cuda", dtypes=F32_F64)
def smem_tiled(a, b, c):
    """32x32 tiles of a and b staged in shared memory; one output per thread."""
    _launch("smem_tiled", a, b, c)


@register("matmul", "cuda", dtypes=F32)
def blocktile_1d(a, b, c):
    """64x64 block tile over BK=8 shared tiles; each thread keeps a column of 8 outputs in registers."""
    _launch("blocktile_1d", a, b, c)


@register("matmul", "cuda", dtypes=F32)
def blocktile_2d(a, b, c):
    """128x128 block tile over BK=8 shared tiles; each thread keeps an 8x8 register tile."""
    _launch("blocktile_2d", a, b, c)


@register("matmul", "cuda", dtypes=F32)
def vectorized(a, b, c):
    """blocktile_2d with float4 global loads/stores and a transposed a tile (scalar path when unaligned)."""
    _launch("vectorized", a, b, c)


@register("matmul", "cuda", dtypes=F32)
def warptile(a, b, c):
    """128x128x16 block -> 64x32 warp -> 2x2 sub-tiles of 4x4 per thread; conflict-free float4 shared reads."""
    _launch("warptile", a, b, c)


@register("matmul", "cuda", dtypes=F32, default=True)
def double_buffer(a, b, c):
    """warptile fed by cp.async into two shared buffers: next k-tile's copy overlaps compute (sm_80+)."""
    _launch("double_buffer", a, b, c)


@register("matmul", "cuda", dtypes=("float16",))
def wmma_fp16(a, b, c):
    """Tensor cores via nvcuda::wmma, fp16 in, fp32 accumulate and out; 3-stage cp.async ring (sm_80+)."""
    _launch("wmma_fp16", a, b, c)


@register("matmul", "cuda", dtypes=("bfloat16",))
def wmma_bf16(a, b, c):
    """Tensor cores via nvcuda::wmma, bf16 in, fp32 accumulate and out; 3-stage cp.async ring (sm_80+)."""
    _launch("wmma_bf16", a, b, c)
