"""Matrix multiply in Numba CUDA: c = a @ b, row-major, a: (M, K), b: (K, N) -> c: (M, N).

Variants (a ladder; each launcher's docstring states its technique and limits):
  naive         one thread per element of c; threadIdx.x runs along N so a warp reads b and writes c coalesced
  smem_tiled    TILE x TILE tiles of a and b staged in shared memory, the K loop walks K's tiles
  blocktile_2d  BM x BN block tile over BK-deep shared tiles; each thread keeps a TM x TN tile of c
                in registers; the default

Launchers take Numba device arrays a, b and the output c (already allocated). Any M, N, K >= 1.
Every variant takes transpose_a / transpose_b: the kernels index a[row, k] and b[k, col]
through the arrays' strides, so a transposed operand is passed as the stored array's .T view
(no copy; Numba compiles the kernel once more for the non-contiguous layout). Its reads are
then strided along the loop where they were contiguous: correct, not fast.

Why kernels come from factories: a shared or local array's dtype must be a compile-time constant,
so each kernel is built once per dtype at import (``per_dtype``), with the dtype and a typed zero
as closure constants. A plain ``0`` would be an int64 that Numba unifies with float32 to float64.

Index arithmetic: thread and block coordinates are cast to uint32 (they are non-negative and
< 2**32). Numba widens integer arithmetic to 64 bits whatever we do, and for a *signed* index it
emits negative-index wraparound code on every access; an unsigned origin lets LLVM prove the
indices non-negative and drop it (in the PTX of blocktile_2d's inner loop: ~60 integer
instructions per 64 FMAs with int32 bases, ~20 with uint32). Element offsets (row * K + k) are
formed by Numba's array indexing in 64 bits, so no product overflows.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from .._registry import register
from ..ops.matmul import FLAGS as TRANSPOSES
from ._common import ceil_div, per_dtype

# The simulator swaps the module-level ``cuda`` for its fake one while a kernel runs, so kernels
# refer to ``cuda`` as a global only (never capture it) and declare one shared array per line.

# gridDim.y (here: the row blocks of c) is limited to 65535 by the hardware.
MAX_GRID_Y = 65535

# --- naive ------------------------------------------------------------------------------------
NAIVE_BLOCK = (32, 8)  # (x along N, y along M)
assert NAIVE_BLOCK[0] == 32, "x spans one warp so a warp's 32 lanes touch 32 consecutive columns"

# --- smem_tiled -------------------------------------------------------------------------------
TILE = 32
assert TILE * TILE <= 1024, "one thread per element of a TILE x TILE tile: at most 1024 threads per block"
assert TILE % 32 == 0, "a warp is one row of the tile, so it reads the a tile as a broadcast and the b tile conflict-free"

# --- blocktile_2d -----------------------------------------------------------------------------
BM, BN, BK = 128, 128, 8  # block tile of c, and the depth of the shared tiles of a and b
TM, TN = 8, 8  # register tile of c per thread
BT_ROWS, BT_COLS = BM // TM, BN // TN  # thread grid over the block tile (16 x 16)
BT_THREADS = BT_ROWS * BT_COLS
A_PAD = 4  # shared a tile row padding: see _make_blocktile_2d
A_ROW = BM + A_PAD  # a shape for cuda.shared.array must be made of plain constants, not expressions
assert BM % TM == 0 and BN % TN == 0, "each thread owns a whole TM x TN register tile"
assert BT_THREADS <= 1024, "one block holds every thread of the block tile (at most 1024)"
assert BT_THREADS % 32 == 0, "whole warps only: a partial warp wastes lanes on every instruction"
assert BT_THREADS % BK == 0 and (BM * BK) % BT_THREADS == 0, \
    "every thread loads the same column of whole rows of the a tile: no remainder loop"
assert BT_THREADS % BN == 0 and (BK * BN) % BT_THREADS == 0, \
    "every thread loads the same column of whole rows of the b tile: no remainder loop"
assert 32 % BK == 0 and A_PAD == 32 // BK and BM % 32 == 0, \
    "a warp stores 32 // BK rows x BK k of the a tile transposed; shifting each k row by 32 // BK " \
    "banks puts those 32 stores in 32 distinct banks"



# ============================================ kernels ==========================================
def _make_naive(dtype):
    zero = dtype(0)

    @cuda.jit
    def naive_kernel(a, b, c):
        # a: (M, K), b: (K, N), c: (M, N)
        col = np.uint32(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x)
        row = np.uint32(cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y)
        if row < c.shape[0] and col < c.shape[1]:
            acc = zero
            for k in range(a.shape[1]):
                # a[row, k] is one address for the warp (a broadcast); b[k, col] is contiguous
                acc += a[row, k] * b[k, col]
            c[row, col] = acc

    return naive_kernel


def _make_smem_tiled(dtype):
    zero = dtype(0)

    @cuda.jit
    def smem_tiled_kernel(a, b, c):
        # a: (M, K), b: (K, N), c: (M, N)
        a_tile = cuda.shared.array((TILE, TILE), dtype)  # (rows of c, k)
        b_tile = cuda.shared.array((TILE, TILE), dtype)  # (k, columns of c)
        tx = np.uint32(cuda.threadIdx.x)
        ty = np.uint32(cuda.threadIdx.y)
        row = np.uint32(cuda.blockIdx.y * TILE + ty)
        col = np.uint32(cuda.blockIdx.x * TILE + tx)
        m, n, kk = c.shape[0], c.shape[1], a.shape[1]
        acc = zero
        # Loop over K's tiles (not the grid's): a thread outside c still loads its share, and
        # every thread reaches every barrier.
        for tile in range((kk + TILE - 1) // TILE):
            k0 = np.uint32(tile * TILE)
            v = zero  # out-of-range elements are zero so they add nothing
            if row < m and k0 + tx < kk:
                v = a[row, k0 + tx]
            a_tile[ty, tx] = v
            v = zero
            if k0 + ty < kk and col < n:
                v = b[k0 + ty, col]
            b_tile[ty, tx] = v
            cuda.syncthreads()  # the tiles are complete before anyone reads them
            for k in range(TILE):
                acc += a_tile[ty, k] * b_tile[k, tx]
            cuda.syncthreads()  # everyone is done reading before the next tile overwrites them
        if row < m and col < n:
            c[row, col] = acc

    return smem_tiled_kernel


def _make_blocktile_2d(dtype):
    zero = dtype(0)

    @cuda.jit
    def blocktile_2d_kernel(a, b, c):
        # a: (M, K), b: (K, N), c: (M, N)
        # a tile transposed, (k, rows of c): a thread's TM values for one k are then a row slice.
        # A_PAD makes the transposed store conflict-free: a warp stores BK columns of 32 // BK
        # rows, and the padding shifts each k row by A_PAD banks.
        a_tile = cuda.shared.array((BK, A_ROW), dtype)
        b_tile = cuda.shared.array((BK, BN), dtype)  # (k, columns of c)
        acc = cuda.local.array((TM, TN), dtype)  # this thread's register tile of c
        a_reg = cuda.local.array(TM, dtype)
        b_reg = cuda.local.array(TN, dtype)

        t = np.uint32(cuda.threadIdx.x)
        # The thread's TM x TN outputs are strided by the thread grid (rows ty + BT_ROWS*i,
        # columns tx + BT_COLS*j), not contiguous: a warp then reads consecutive shared-memory
        # words (no bank conflicts) and stores 16 consecutive elements of c per row.
        ty = t // BT_COLS
        tx = t - ty * BT_COLS
        row0 = np.uint32(cuda.blockIdx.y * BM)
        col0 = np.uint32(cuda.blockIdx.x * BN)
        m, n, kk = c.shape[0], c.shape[1], a.shape[1]
        # Load mapping: consecutive threads take consecutive k of one row of a (and consecutive
        # columns of one row of b), so a warp's global reads coalesce.
        a_r = t // BK
        a_k = t - a_r * BK
        b_k = t // BN
        b_c = t - b_k * BN

        for i in range(TM):
            for j in range(TN):
                acc[i, j] = zero

        for k0 in range(0, kk, BK):
            for i in range(BM * BK // BT_THREADS):
                r = a_r + i * (BT_THREADS // BK)
                v = zero  # zero-fill past the edges of a: it adds nothing
                if row0 + r < m and k0 + a_k < kk:
                    v = a[row0 + r, k0 + a_k]
                a_tile[a_k, r] = v
            for i in range(BK * BN // BT_THREADS):
                k = b_k + i * (BT_THREADS // BN)
                v = zero
                if k0 + k < kk and col0 + b_c < n:
                    v = b[k0 + k, col0 + b_c]
                b_tile[k, b_c] = v
            cuda.syncthreads()  # tiles complete before the outer products read them
            for k in range(BK):
                ku = np.uint32(k)  # range() yields int64: unsigned drops the wraparound code
                for i in range(TM):
                    a_reg[i] = a_tile[ku, ty + i * BT_ROWS]
                for j in range(TN):
                    b_reg[j] = b_tile[ku, tx + j * BT_COLS]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()  # all reads done before the next k0 overwrites the tiles

        for i in range(TM):
            r = row0 + ty + i * BT_ROWS
            if r < m:
                for j in range(TN):
                    cc = col0 + tx + j * BT_COLS
                    if cc < n:
                        c[r, cc] = acc[i, j]

    return blocktile_2d_kernel


_NAIVE = per_dtype(_make_naive, ("float32", "float64"))
_SMEM_TILED = per_dtype(_make_smem_tiled, ("float32", "float64"))
_BLOCKTILE_2D = per_dtype(_make_blocktile_2d, ("float32",))


# =========================================== launchers ========================================
def _grid_rows_limit(rows_per_block):
    """supports(): the row blocks of c go on gridDim.y, which the hardware caps at 65535."""
    def supports(problem):
        m = problem.out_shape[0]
        if ceil_div(m, rows_per_block) > MAX_GRID_Y:
            return (f"M={m} needs {ceil_div(m, rows_per_block)} row blocks of {rows_per_block}; "
                    f"gridDim.y is limited to {MAX_GRID_Y}")
        return None
    return supports




def _operands(a, b, transpose_a, transpose_b):
    """op(a), op(b) as views: a transposed operand is its stored array's .T (no copy)."""
    return (a.T if transpose_a else a), (b.T if transpose_b else b)


@register("matmul", "numba", dtypes=("float32", "float64"), supports=_grid_rows_limit(NAIVE_BLOCK[1]),
          takes=TRANSPOSES)
def naive(a, b, c, *, transpose_a=False, transpose_b=False):
    """One thread per output element, K loop from global memory (coalesced along N)."""
    a, b = _operands(a, b, transpose_a, transpose_b)
    m, n = c.shape
    grid = (ceil_div(n, NAIVE_BLOCK[0]), ceil_div(m, NAIVE_BLOCK[1]))
    _NAIVE[a.dtype][grid, NAIVE_BLOCK](a, b, c)


@register("matmul", "numba", dtypes=("float32", "float64"), supports=_grid_rows_limit(TILE),
          takes=TRANSPOSES)
def smem_tiled(a, b, c, *, transpose_a=False, transpose_b=False):
    """Shared-memory tiling: TILE x TILE tiles of a and b, K walked tile by tile (zero-filled edges)."""
    a, b = _operands(a, b, transpose_a, transpose_b)
    m, n = c.shape
    grid = (ceil_div(n, TILE), ceil_div(m, TILE))
    _SMEM_TILED[a.dtype][grid, (TILE, TILE)](a, b, c)


@register("matmul", "numba", dtypes=("float32",), default=True, supports=_grid_rows_limit(BM),
          takes=TRANSPOSES)
def blocktile_2d(a, b, c, *, transpose_a=False, transpose_b=False):
    """2-D block tiling: BM x BN per block over BK-deep shared tiles, TM x TN register tile per thread."""
    a, b = _operands(a, b, transpose_a, transpose_b)
    m, n = c.shape
    grid = (ceil_div(n, BN), ceil_div(m, BM))
    _BLOCKTILE_2D[a.dtype][grid, BT_THREADS](a, b, c)
