"""The gradients of conv2d in Numba CUDA (the math: pykern/ops/conv2d_backward.py).

x: (N, C, H, W), w: (K, Cg, R, S) with Cg = C // groups, dy: (N, K, P, Q).

Variants (each launcher's docstring states its technique and limits):
  conv2d_backward_input
    direct   one thread per element of dx, gathering its terms: for each tap (r, s), the output
             (p, q) that read this input element through it, if any (p*sh = h + ph - r*dh must
             divide by the stride and land inside dy), times w over the group's Kg channels;
             any stride, padding, dilation and groups; the default
  conv2d_backward_weight
    direct   one thread per element of dw, summing x_pad * dy over N, P and Q from global memory
             (padded taps multiply zeros, as in the spec); any parameters. Only K*Cg*R*S
             threads, each with N*P*Q terms: the first rung, correct, not fast.
    block_reduce  one block per element of dw: up to REDUCE_THREADS threads split the N*P*Q terms
             (consecutive threads take consecutive q, so reads of dy coalesce), then a tree
             reduction in shared memory; enough blocks to fill the GPU even when dw is small
             and N*P*Q large, which is the usual shape of a weight gradient; the default

One file for both: they share the parameter plumbing and the index arithmetic. Launchers take
Numba device arrays and the normalized params (stride, padding, dilation as (h, w) pairs).
Element offsets are formed by Numba's array indexing in 64 bits, so no product overflows.
Kernels are built once per dtype by a factory, with a typed zero as a closure constant (a plain
0 is an int64 that Numba unifies with float32 to float64).
"""
from __future__ import annotations

from numba import cuda

from .._registry import register
from ._common import ceil_div, per_dtype, unflatten4

# The simulator swaps the module-level ``cuda`` for its fake one while a kernel runs, so kernels
# refer to ``cuda`` as a global only.

BLOCK = 256  # a 1-D grid over every output element: any shape fits
DTYPES = ("float32", "float64")

# --- block_reduce -----------------------------------------------------------------------------
REDUCE_THREADS = 128  # at most this many threads share one element's sum
# ... and each gets at least this many terms (the launcher picks the power of two): below that the
# reduction tree and the idle lanes cost more than the sums. Small layers (and the simulator's
# tiny test cases) so run a few threads per element, large ones REDUCE_THREADS.
MIN_TERMS_PER_THREAD = 8
assert REDUCE_THREADS & (REDUCE_THREADS - 1) == 0, "the tree reduction halves the active threads each step"
assert REDUCE_THREADS % 32 == 0 and REDUCE_THREADS <= 1024, "whole warps, within one block's 1024 threads"
MAX_GRID_X = 2**31 - 1  # gridDim.x: one block per element of dw


# ============================================ kernels ==========================================
def _make_input_direct(dtype):
    zero = dtype(0)

    @cuda.jit
    def input_direct_kernel(dy, w, dx, sh, sw, ph, pw, dh, dw, groups):
        # dy: (N, K, P, Q), w: (K, Cg, R, S), dx: (N, C, H, W)
        nn, cc, hh, ww = dx.shape
        i = cuda.grid(1)
        if i >= nn * cc * hh * ww:
            return
        # the column varies fastest across threads, so a warp writes dx contiguously
        n, c, h, col = unflatten4(i, cc, hh, ww)
        kk, cg, rr, ss = w.shape
        pp, qq = dy.shape[2], dy.shape[3]
        kg = kk // groups
        g = c // cg
        ci = c - g * cg
        acc = zero
        for r in range(rr):
            hp = h + ph - r * dh  # = p * sh for the output row p that reads this row through tap r
            if hp < 0:
                break  # and for every later r
            if hp % sh != 0 or hp // sh >= pp:
                continue
            p = hp // sh
            for s in range(ss):
                wp = col + pw - s * dw
                if wp < 0:
                    break
                if wp % sw != 0 or wp // sw >= qq:
                    continue
                q = wp // sw
                for k in range(g * kg, g * kg + kg):
                    acc += dy[n, k, p, q] * w[k, ci, r, s]
        dx[n, c, h, col] = acc

    return input_direct_kernel


def _make_weight_direct(dtype):
    zero = dtype(0)

    @cuda.jit
    def weight_direct_kernel(x, dy, dw, sh, sw, ph, pw, dil_h, dil_w, groups):
        # x: (N, C, H, W), dy: (N, K, P, Q), dw: (K, Cg, R, S)
        kk, cg, rr, ss = dw.shape
        i = cuda.grid(1)
        if i >= kk * cg * rr * ss:
            return
        k, ci, r, s = unflatten4(i, cg, rr, ss)
        nn, hh, ww = x.shape[0], x.shape[2], x.shape[3]
        pp, qq = dy.shape[2], dy.shape[3]
        c = (k // (kk // groups)) * cg + ci
        acc = zero
        for n in range(nn):
            for p in range(pp):
                ih = p * sh - ph + r * dil_h
                row_in = 0 <= ih < hh
                for q in range(qq):
                    iw = q * sw - pw + s * dil_w
                    # Padding is zeros that multiply like any value (0 * Inf is NaN, as in the spec).
                    v = x[n, c, ih, iw] if row_in and 0 <= iw < ww else zero
                    acc += v * dy[n, k, p, q]
        dw[k, ci, r, s] = acc

    return weight_direct_kernel


def _make_weight_block_reduce(dtype):
    zero = dtype(0)

    @cuda.jit
    def weight_block_reduce_kernel(x, dy, dw, sh, sw, ph, pw, dil_h, dil_w, groups):
        # x: (N, C, H, W), dy: (N, K, P, Q), dw: (K, Cg, R, S); block b computes dw.flat[b] with
        # blockDim.x threads, a power of two <= REDUCE_THREADS
        part = cuda.shared.array(REDUCE_THREADS, dtype)  # one partial sum per thread
        kk, cg, rr, ss = dw.shape
        i = cuda.blockIdx.x
        k, ci, r, s = unflatten4(i, cg, rr, ss)
        nn, hh, ww = x.shape[0], x.shape[2], x.shape[3]
        pp, qq = dy.shape[2], dy.shape[3]
        c = (k // (kk // groups)) * cg + ci
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        acc = zero
        for e in range(t, nn * pp * qq, nt):
            q = e % qq
            j = e // qq
            p = j % pp
            n = j // pp
            ih = p * sh - ph + r * dil_h
            iw = q * sw - pw + s * dil_w
            # Padding is zeros that multiply like any value (0 * Inf is NaN, as in the spec).
            v = x[n, c, ih, iw] if 0 <= ih < hh and 0 <= iw < ww else zero
            acc += v * dy[n, k, p, q]
        part[t] = acc
        cuda.syncthreads()
        half = nt // 2
        while half > 0:  # a fixed tree: the same order on every run
            if t < half:
                part[t] += part[t + half]
            cuda.syncthreads()
            half //= 2
        if t == 0:
            dw[k, ci, r, s] = part[0]

    return weight_block_reduce_kernel


_INPUT_DIRECT = per_dtype(_make_input_direct, DTYPES)
_WEIGHT_DIRECT = per_dtype(_make_weight_direct, DTYPES)
_WEIGHT_BLOCK_REDUCE = per_dtype(_make_weight_block_reduce, DTYPES)


# =========================================== launchers ========================================
def _scalars(stride, padding, dilation, groups):
    return stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups


@register("conv2d_backward_input", "numba", dtypes=DTYPES, default=True)
def direct(dy, w, dx, *, x_shape, stride, padding, dilation, groups):
    """Direct gather, one thread per element of dx: taps whose output position divides by the stride."""
    _INPUT_DIRECT[dy.dtype][ceil_div(dx.size, BLOCK), BLOCK](dy, w, dx, *_scalars(stride, padding, dilation, groups))


@register("conv2d_backward_weight", "numba", dtypes=DTYPES, name="direct")
def weight_direct(x, dy, dw, *, w_shape, stride, padding, dilation, groups):
    """Direct reduction, one thread per element of dw over N*P*Q terms from global memory."""
    _WEIGHT_DIRECT[x.dtype][ceil_div(dw.size, BLOCK), BLOCK](x, dy, dw, *_scalars(stride, padding, dilation, groups))


def _one_block_per_element(problem):
    k, cg, r, s = problem.params["w_shape"]
    if k * cg * r * s > MAX_GRID_X:
        return f"dw has {k * cg * r * s} elements, one block each; gridDim.x is limited to {MAX_GRID_X}"
    return None


@register("conv2d_backward_weight", "numba", dtypes=DTYPES, default=True, supports=_one_block_per_element)
def block_reduce(x, dy, dw, *, w_shape, stride, padding, dilation, groups):
    """One block per element of dw: threads split the N*P*Q terms, then a shared-memory tree reduction."""
    terms = dy.shape[0] * dy.shape[2] * dy.shape[3]
    threads = 1
    while threads < REDUCE_THREADS and threads * 2 * MIN_TERMS_PER_THREAD <= terms:
        threads *= 2
    _WEIGHT_BLOCK_REDUCE[x.dtype][dw.size, threads](x, dy, dw, *_scalars(stride, padding, dilation, groups))
