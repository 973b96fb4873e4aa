"""2-D convolution in Numba CUDA, torch.nn.functional.conv2d semantics (see pykern/ops/conv2d.py).

x: (N, C, H, W), w: (K, Cg, R, S) with Cg = C // groups, bias: (K,) or None -> y: (N, K, P, Q).

Variants (each launcher's docstring states its technique and limits):
  direct      one thread per output element, straight from global memory; any stride, padding,
              dilation and groups; the default (the only variant that runs every input)
  smem_tiled  a TP x TQ output tile per block for KB output channels: the input tile plus its halo
              and the matching filter slice are staged in shared memory, Cg walked in chunks; the
              staged tile must fit SMEM_X elements (large stride x dilation x filter is routed
              away by supports())

Both apply bias and ReLU in the kernel epilogue. Launchers take Numba device arrays
(x, w, bias or None, y) and the normalized params (stride, padding, dilation as (h, w) pairs).

Kernels with shared or local arrays are built once per dtype by a factory at import, since an
array's dtype must be a compile-time constant; a typed zero rides along (a plain 0 is an int64
that Numba unifies with float32 to float64). Scalars go to kernels as ints: the real launcher
has no None or bool kernel arguments, so a missing bias is has_bias=0 with w flattened as a
placeholder of the same 1-D array type.
"""
from __future__ import annotations

from numba import cuda

from .._registry import register
from ._common import ceil_div, per_dtype, unflatten4

# The simulator swaps the module-level ``cuda`` for its fake one while a kernel runs, so kernels
# refer to ``cuda`` as a global only and declare one shared array per line.

MAX_GRID_YZ = 65535  # hardware limit on gridDim.y and gridDim.z

# --- direct -----------------------------------------------------------------------------------
DIRECT_BLOCK = 256  # a 1-D grid over every output: any N, K, P, Q fits

# --- smem_tiled -------------------------------------------------------------------------------
TP, TQ = 8, 8  # output tile per block (rows x columns), one thread per output pixel
KB = 8  # output channels per block: each staged input value feeds KB accumulators
SMEM_X = 2048  # shared input tile, elements: channels x (rows + halo) x (columns + halo)
SMEM_W = 1024  # shared filter slice, elements: channels x R x S x KB
THREADS = TP * TQ
assert THREADS % 32 == 0 and THREADS <= 1024, "whole warps, within one block's 1024 threads"
assert SMEM_X >= ((TP - 1) + 2 + 1) * ((TQ - 1) + 2 + 1), \
    "the staged tile must at least hold one channel of a stride-1 3x3 convolution"
assert SMEM_W >= KB * 11 * 11, "the filter slice must hold one channel of an 11x11 filter for KB channels"
assert (SMEM_X + SMEM_W) * 8 <= 48 * 1024, "static shared memory is capped at 48 KB per block (float64)"



# ============================================ kernels ==========================================
@cuda.jit(device=True)
def _epilogue(v, bias, k, has_bias, relu, zero):
    """Bias, then ReLU (NaN compares false and passes through), as in the reference."""
    if has_bias:
        v += bias[k]
    if relu and v < zero:
        v = zero
    return v


def _make_direct(dtype):
    zero = dtype(0)

    @cuda.jit
    def direct_kernel(x, w, bias, y, sh, sw, ph, pw, dh, dw, groups, has_bias, relu):
        # x: (N, C, H, W), w: (K, Cg, R, S), bias: (K,) (unread unless has_bias), y: (N, K, P, Q)
        nn, kk, pp, qq = y.shape
        i = cuda.grid(1)
        if i >= nn * kk * pp * qq:
            return
        # q varies fastest across threads, so a warp writes y (and mostly reads x) contiguously
        n, k, p, q = unflatten4(i, kk, pp, qq)
        hh, ww = x.shape[2], x.shape[3]
        cg, rr, ss = w.shape[1], w.shape[2], w.shape[3]
        c_base = (k // (kk // groups)) * cg  # first input channel of k's group
        h0 = p * sh - ph
        w0 = q * sw - pw
        acc = zero
        for c in range(cg):
            for r in range(rr):
                ih = h0 + r * dh
                row_in = 0 <= ih < hh
                for s in range(ss):
                    iw = w0 + s * dw
                    # Padding is zeros that multiply like any value (0 * Inf is NaN, as in the
                    # spec and torch), so padded taps are not skipped.
                    v = x[n, c_base + c, ih, iw] if row_in and 0 <= iw < ww else zero
                    acc += v * w[k, c, r, s]
        y[n, k, p, q] = _epilogue(acc, bias, k, has_bias, relu, zero)

    return direct_kernel


def _make_smem_tiled(dtype):
    zero = dtype(0)

    @cuda.jit
    def smem_tiled_kernel(x, w, bias, y, sh, sw, ph, pw, dh, dw, groups, has_bias, relu,
                          tiles_q, in_h, in_w, chunk):
        # x: (N, C, H, W), w: (K, Cg, R, S), bias: (K,) (unread unless has_bias), y: (N, K, P, Q)
        # Block (tile, g * k_blocks + kb, n): output rows p0..p0+TP, columns q0..q0+TQ, of image
        # n, for the KB channels of group g starting at kb * KB. The host sizes the staged input
        # (in_h, in_w) = the rows and columns that tile reads, halo included, and the channel
        # chunk so that chunk * in_h * in_w <= SMEM_X and chunk * R * S * KB <= SMEM_W.
        x_tile = cuda.shared.array(SMEM_X, dtype)  # (chunk, in_h, in_w), zeros where padding
        w_tile = cuda.shared.array(SMEM_W, dtype)  # (chunk, R, S, KB): a tap's KB weights adjacent
        acc = cuda.local.array(KB, dtype)  # this thread's output pixel for the KB channels

        nn, kk, pp, qq = y.shape
        hh, ww = x.shape[2], x.shape[3]
        cg, rr, ss = w.shape[1], w.shape[2], w.shape[3]
        rs = rr * ss
        in_hw = in_h * in_w
        kg = kk // groups
        k_blocks = (kg + KB - 1) // KB
        g = cuda.blockIdx.y // k_blocks
        kb0 = (cuda.blockIdx.y - g * k_blocks) * KB  # first channel of this block, within group g
        n = cuda.blockIdx.z
        p0 = (cuda.blockIdx.x // tiles_q) * TP
        q0 = (cuda.blockIdx.x % tiles_q) * TQ
        t = cuda.threadIdx.x
        tp = t // TQ
        tq = t - tp * TQ
        p = p0 + tp
        q = q0 + tq
        active = p < pp and q < qq  # the rest still stage their share and meet every barrier
        h_org = p0 * sh - ph  # image row and column of the staged tile's corner
        w_org = q0 * sw - pw
        x_off = tp * sh * in_w + tq * sw  # this thread's first tap inside a staged channel

        for j in range(KB):
            acc[j] = zero
        for c0 in range(0, cg, chunk):
            nc = min(chunk, cg - c0)
            for e in range(t, nc * in_hw, THREADS):
                ci = e // in_hw
                rem = e - ci * in_hw
                row = rem // in_w
                ih = h_org + row
                iw = w_org + rem - row * in_w
                v = zero  # padding and rows/columns past the image stage as zeros
                if 0 <= ih < hh and 0 <= iw < ww:
                    v = x[n, g * cg + c0 + ci, ih, iw]
                x_tile[e] = v
            for e in range(t, KB * nc * rs, THREADS):
                # consecutive threads take consecutive (c, r, s) of one output channel: the
                # global reads of w coalesce
                kb = e // (nc * rs)
                j = e - kb * (nc * rs)
                ci = j // rs
                tap = j - ci * rs
                r = tap // ss
                v = zero  # channels past the group's end weigh nothing
                if kb0 + kb < kg:
                    v = w[g * kg + kb0 + kb, c0 + ci, r, tap - r * ss]
                w_tile[j * KB + kb] = v
            cuda.syncthreads()  # the staged tiles are complete before anyone reads them
            if active:
                for ci in range(nc):
                    for r in range(rr):
                        x_at = ci * in_hw + x_off + r * dh * in_w
                        w_at = (ci * rs + r * ss) * KB
                        for s in range(ss):
                            v = x_tile[x_at + s * dw]
                            for j in range(KB):
                                acc[j] += v * w_tile[w_at + s * KB + j]
            cuda.syncthreads()  # all reads are done before the next chunk overwrites the tiles

        if active:
            for j in range(KB):
                if kb0 + j < kg:
                    k = g * kg + kb0 + j
                    y[n, k, p, q] = _epilogue(acc[j], bias, k, has_bias, relu, zero)

    return smem_tiled_kernel


_DIRECT = per_dtype(_make_direct, ("float32", "float64"))
_SMEM_TILED = per_dtype(_make_smem_tiled, ("float32", "float64"))


# =========================================== launchers ========================================
def _scalars(x, w, bias, stride, padding, dilation, groups, activation):
    """bias (or, when there is none, w flattened: a (K,)-shaped type, never read) and the
    kernels' int arguments."""
    return ((w.reshape(w.size) if bias is None else bias),
            stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups,
            int(bias is not None), int(activation == "relu"))


@register("conv2d", "numba", dtypes=("float32", "float64"), default=True)
def direct(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """Direct convolution, one thread per output element from global memory; no limits."""
    bias_arg, *rest = _scalars(x, w, bias, stride, padding, dilation, groups, activation)
    _DIRECT[x.dtype][ceil_div(y.size, DIRECT_BLOCK), DIRECT_BLOCK](x, w, bias_arg, y, *rest)


def _smem_plan(x_shape, w_shape, y_shape, stride, dilation, groups):
    """(grid, tiles_q, in_h, in_w, chunk) for smem_tiled, or a str saying why it cannot run."""
    n, _, _, _ = x_shape
    k, cg, r, s = w_shape
    p, q = y_shape[2], y_shape[3]
    # the rows and columns one output tile reads; a tile never spans more outputs than exist
    in_h = (min(TP, p) - 1) * stride[0] + (r - 1) * dilation[0] + 1
    in_w = (min(TQ, q) - 1) * stride[1] + (s - 1) * dilation[1] + 1
    if in_h * in_w > SMEM_X:
        return (f"its {min(TP, p)}x{min(TQ, q)} output tile reads a {in_h}x{in_w} input tile "
                f"(stride {tuple(stride)}, dilation {tuple(dilation)}, filter {r}x{s}), more than "
                f"the {SMEM_X} elements of shared memory it stages per channel")
    if KB * r * s > SMEM_W:
        return (f"the {r}x{s} filter slice for {KB} output channels ({KB * r * s} elements) "
                f"exceeds the {SMEM_W}-element shared filter tile")
    k_blocks = ceil_div(k // groups, KB)
    if groups * k_blocks > MAX_GRID_YZ or n > MAX_GRID_YZ:
        return (f"grid ({groups * k_blocks} channel blocks, {n} images) exceeds the "
                f"{MAX_GRID_YZ} limit of gridDim.y/z")
    chunk = min(cg, SMEM_X // (in_h * in_w), SMEM_W // (KB * r * s))
    tiles_q = ceil_div(q, TQ)
    grid = (ceil_div(p, TP) * tiles_q, groups * k_blocks, n)
    return grid, tiles_q, in_h, in_w, chunk


def _smem_supports(problem):
    params = problem.params
    plan = _smem_plan(problem.infos["x"].shape, problem.infos["w"].shape, problem.out_shape, params["stride"],
                      params["dilation"], params["groups"])
    return plan if isinstance(plan, str) else None


@register("conv2d", "numba", dtypes=("float32", "float64"), supports=_smem_supports)
def smem_tiled(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """Shared-memory tiling: input tile + halo and filter slice staged per channel chunk (bounded footprint)."""
    plan = _smem_plan(x.shape, w.shape, y.shape, stride, dilation, groups)
    if isinstance(plan, str):  # the dispatch asks supports() first; a direct call lands here
        raise ValueError(f"conv2d/numba/smem_tiled cannot run this input: {plan}")
    grid, tiles_q, in_h, in_w, chunk = plan
    bias_arg, *rest = _scalars(x, w, bias, stride, padding, dilation, groups, activation)
    _SMEM_TILED[x.dtype][grid, THREADS](x, w, bias_arg, y, *rest, tiles_q, in_h, in_w, chunk)
