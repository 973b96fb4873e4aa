"""2-D convolution on the CPU with NumPy (torch.nn.functional.conv2d semantics).

Variants:
  reference        the spec (pykern/ops/conv2d.py) in float64, rounded to the output dtype
  im2col_gemm      gather the filter taps of a block of output pixels into a reused column buffer
                   (one strided-view copy), then one BLAS GEMM per (block, group), written straight
                   into y for one image (through a small buffer for several); a 1x1 unpadded
                   convolution with one output per pixel is one GEMM on x itself
  winograd_2x2     Winograd F(2x2, 3x3): transform 4x4 input tiles and the filters, 16 batched
                   (tiles, Cg) x (Cg, Kg) GEMMs per group, transform back: 2.25x fewer
                   multiplies than direct; 3x3 filters, stride 1, dilation 1 only
  winograd_4x4     Winograd F(4x4, 3x3): 6x6 tiles, 36 batched GEMMs, 4x fewer multiplies than
                   direct; its transforms amplify rounding, so in float32 it needs
                   >= WINOGRAD_4X4_MIN_CHANNELS input channels per group (see there)
  im2col_threads   the default: im2col_gemm on slices of the batch in parallel threads, one per
                   BLAS thread with BLAS held to one thread, for layers whose filters are at most
                   PARALLEL_MAX_FILTER_RATIO times the input (see there); im2col_gemm otherwise

Accuracy. im2col_gemm (and so the default) sums each output's own terms, so its rounding error
is bounded by those terms' magnitudes: it meets the tolerance policy (pykern/_check.py) on any
input, and a NaN or Inf reaches exactly the outputs whose window holds it, as in torch. Padding
is zeros that multiply like any value (0 * Inf is NaN), as in torch's float64 path; torch's float32
path (oneDNN) skips the taps that meet padding instead (bench/conv2d_padding_cost.py). The Winograd variants are explicit
choices only. Their error model: an output's rounding error scales with the largest magnitudes
in its whole tile (the alpha x alpha inputs of every channel, and the filters), not with its own
terms, so one large value (a spike, data spread over many decades) can push its neighbours'
outputs out of tolerance; a non-finite input makes its whole tile non-finite. On inputs of one
scale (standard-normal data, say) they meet the tolerance; outputs whose window lies entirely in
the padding are exact (0, then bias) either way.

Vocabulary: x: (N, C, H, W), w: (K, C//groups, R, S), y: (N, K, P, Q); G groups of Cg = C/G
input and Kg = K/G output channels; CRS = Cg*R*S, the im2col GEMM's reduction length; a Winograd
tile is alpha x alpha inputs (alpha = m + 2) giving m x m outputs; T = tiles in a block.
All variants but the reference compute in the input dtype (sgemm for float32, dgemm for float64).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from fractions import Fraction
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._fork import FORK_GATE
from .._registry import register
from ..ops.conv2d import reference

# --- block sizes (data, not code) --------------------------------------------------------------
# GEMM columns per block: OpenBLAS sgemm on 2 cores loses 10-25% below ~1k columns (the 7x7
# ResNet layers have 49 output pixels per image), so small images are batched into one block.
TARGET_COLS = 2048
# Bytes of gathered columns per block: whole images up to this size; bigger images are split into
# even bands of output rows so the buffer never grows with the image. Measured on the 7x7/2 first
# ResNet layer (7.4 MB of columns per image): two bands of 3.7 MB ran 3-4% faster than whole
# images (the columns stay in cache between the gather and the GEMM), and bands below 2 MB lost
# more in GEMM efficiency than they gained.
MAX_COLS_BYTES = 8 << 20
# Winograd: tiles per block (the batched GEMMs' row count) and bytes of transformed input per
# block. Measured (F(4x4), N=8): 256 tiles ran 2-3% faster than 512 on the 56x56 and 28x28 layers
# (one image per block), 1024 lost 5-8%; the small-image layers are one block either way.
WINOGRAD_TARGET_TILES = 256
WINOGRAD_MAX_BYTES = 4 << 20
# When the transformed filters u (alpha^2 * K * Cg numbers: 37.7 MB for F(4x4) at 512 channels)
# would exceed this, and the layer is one block (few tiles) with one group, u is made a chunk of
# output channels at a time right before the GEMMs that read it. Measured on the 7x7x512 layer:
# 1.2x faster for filter transform plus GEMMs, as u stays in the L3 instead of a round trip to
# memory.
WINOGRAD_FILTER_CHUNK_BYTES = 12 << 20
# The default runs a layer whose filters are at most PARALLEL_MAX_FILTER_RATIO times its input as
# one slice of the batch per BLAS thread, each in its own Python thread with single-threaded BLAS,
# when the batch has at least PARALLEL_MIN_IMAGES images per thread. im2col's gather is a NumPy
# copy, which uses one core, and it is a large share of a 3x3 layer's time; this way it uses all
# of them. Each thread streams all the filters, which is why weight-heavy layers are left alone.
# Measured with bench/bench_conv2d_cpu.py on the 2-core machine, three runs: geometric mean over
# the five ResNet layers, time relative to torch, 1.82 / 1.73 / 1.74 split against 2.38 / 2.04 /
# 2.13 for im2col_gemm whole; the 56x56x64 layer took 21-22 ms against 32-36 ms.
PARALLEL_MIN_IMAGES = 2
PARALLEL_MAX_FILTER_RATIO = 2
# F(4x4, 3x3)'s transforms amplify float32 rounding. Its error relative to the tolerance's scale
# (1e-6 + 1e-5 * sum|terms|), worst over 320k outputs of standard-normal data, was 1.08 with one
# input channel, 0.39 with 2, 0.14 with 8 and 0.07 with 64 (it falls like 1/sqrt(Cg): the
# rounding errors add up randomly, the terms do not). Below this many channels per group the
# variant refuses float32 rather than risk results outside the tolerance (on data of one scale;
# see the module docstring for the error model on spiky data).
WINOGRAD_4X4_MIN_CHANNELS = 16
# Toom-Cook interpolation points (then the point at infinity); F(m, 3) uses the first m + 1. With
# 1/2 and -2 for F(4, 3) (Barabasz et al., "Error analysis and improving the accuracy of Winograd
# convolution for deep neural networks", 2020) the float32 error above was about half of that with
# the customary 2 and -2; F(2, 3) uses 0, 1, -1 either way.
WINOGRAD_POINTS = (0, 1, -1, Fraction(1, 2), -2)


# --- helpers shared by the fast variants --------------------------------------------------------
def _blocks(n: int, rows: int, cols_per_row: int, bytes_per_row: int, target_cols: int, max_bytes: int):
    """(n0, n1, r0, r1) blocks covering images 0..n and rows 0..rows once: whole images batched up
    to ``target_cols`` GEMM columns, or bands of one image's rows when an image needs more than
    ``max_bytes`` of workspace."""
    if rows * bytes_per_row > max_bytes:
        band = max(1, max_bytes // bytes_per_row)
        band = -(-rows // -(-rows // band))  # as many bands, evened out (no sliver of a last band)
        return [(i, i + 1, r0, min(rows, r0 + band)) for i in range(n) for r0 in range(0, rows, band)]
    nb = max(1, min(n, -(-target_cols // (rows * cols_per_row)), max_bytes // (rows * bytes_per_row)))
    return [(n0, min(n, n0 + nb), 0, rows) for n0 in range(0, n, nb)]


def _padded_window(x: np.ndarray, n0: int, n1: int, h0: int, h1: int, ph: int, pw: int,
                   win: np.ndarray) -> np.ndarray:
    """Fill and return ``win`` with rows h0:h1 and columns 0:Wb of images n0:n1 of x zero-padded
    by (ph, pw): x: (N, C, H, W), win: (n1-n0, C, h1-h0, Wb) workspace, Wb >= W + pw, in any
    memory layout (an NHWC buffer passed as its (0, 3, 1, 2) transpose is filled NHWC). Every
    element is written (data or zero), so the workspace needs no clearing between blocks."""
    n, c, h, wd = x.shape
    xr0, xr1 = max(0, h0 - ph), min(h, h1 - ph)  # the rows of x inside the window
    a, b = xr0 + ph - h0, max(xr0 + ph - h0, xr1 + ph - h0)
    win[:, :, :a] = 0
    win[:, :, b:] = 0
    win[:, :, a:b, :pw] = 0
    win[:, :, a:b, pw + wd:] = 0
    if b > a:
        win[:, :, a:b, pw:pw + wd] = x[n0:n1, :, xr0:xr1]
    return win


def pixels_are_columns(x_hw, y_hw, filter_rs, padding) -> bool:
    """Whether the input's pixels are the im2col GEMM's columns as they lie: a 1x1 filter, no
    padding and one output per input pixel on both axes (stride 1, or an axis of one pixel), so
    x: (N, C, H*W) is the column matrix and y: (N, K, P*Q) its product, with no copy. The sizes
    are the test, not the stride: a stride that passes the input leaves one output of many pixels,
    where the stride is set to 1 (it selects nothing) but H*W != P*Q."""
    return tuple(filter_rs) == (1, 1) and tuple(padding) == (0, 0) and tuple(x_hw) == tuple(y_hw)


def _column_phases(s: int, sw: int, dw: int):
    """Filter columns grouped by column phase: [(b, taps, first, step)], where the taps s' of
    phase b are those whose input offset s'*dw leaves remainder b modulo the stride sw. Output
    column q and the t-th tap of phase b read input column (q + first + t*step)*sw + b, i.e.
    element q + first + t*step of the phase array x[..., b::sw] (taps of one phase are evenly
    spaced: s' = s0 + t*sw/gcd(sw, dw), so their shifts step by dw/gcd(sw, dw)). At most S
    phases: the loop runs over the taps, never over the stride (which may be huge)."""
    by_phase = {}
    for j in range(s):
        by_phase.setdefault(j * dw % sw, []).append(j)
    out = []
    for b in sorted(by_phase):
        taps = by_phase[b]
        first = taps[0] * dw // sw
        step = taps[1] * dw // sw - first if len(taps) > 1 else 0
        out.append((b, taps, first, step))
    return out


def _carve(buf: np.ndarray, shape) -> np.ndarray:
    """A C-contiguous array of ``shape`` at the start of the flat workspace ``buf`` (a short last
    block still gets contiguous arrays: reshaping a strided slice would silently copy, and a GEMM
    would then write into the copy)."""
    return buf[:int(np.prod(shape))].reshape(shape)


def _epilogue(y: np.ndarray, bias, activation) -> None:
    """Bias then ReLU, in place on a block of output just written (still in cache).

    y: (..., Kg, pixels); bias: None or shaped to broadcast against y, e.g. (Kg, 1).
    np.maximum propagates NaN, as the spec asks.
    """
    if bias is not None:
        y += bias
    if activation == "relu":
        np.maximum(y, 0, out=y)


def _fill_padding_only(yb: np.ndarray, fill: np.ndarray, row0: int, hw, padding) -> None:
    """Write ``fill`` (K, 1, 1) over the outputs of the block yb: (nb, K, rows, Q), whose output
    rows start at row0, that a 3x3 window at stride 1 places wholly in the zero padding: rows
    before ph - 2 or from ph + H on (columns likewise). Their exact value is known, while a
    Winograd tile would give them its neighbours' rounding residue."""
    (h, wd), (ph, pw) = hw, padding
    rows = yb.shape[2]
    lo, hi = min(rows, max(0, ph - 2 - row0)), min(rows, max(0, ph + h - row0))
    yb[:, :, :lo] = fill
    yb[:, :, hi:] = fill
    yb[..., :max(0, pw - 2)] = fill
    yb[..., pw + wd:] = fill


@lru_cache(maxsize=None)
def winograd_transforms(m: int, r: int = 3):
    """(BT, G, AT) of the 1-D Winograd F(m, r) in float64, from the Toom-Cook construction on
    WINOGRAD_POINTS plus infinity: for a row d of alpha = m + r - 1 inputs and a filter g,

        y[i] = sum_k d[i + k] g[k]  ==  AT @ ((G @ g) * (BT @ d)),   BT: (alpha, alpha),
                                                                      G: (alpha, r), AT: (m, alpha).

    Row j of BT holds the coefficients of prod_{l != j} (t - p_l) (the whole product for the point
    at infinity), G[j] = p_j^k / prod_{l != j} (p_j - p_l), AT[i, j] = p_j^i.
    """
    alpha = m + r - 1
    pts = [Fraction(v) for v in WINOGRAD_POINTS[:alpha - 1]]
    if len(pts) != alpha - 1:
        raise ValueError(f"F({m}, {r}) needs {alpha - 1} interpolation points; WINOGRAD_POINTS has {len(WINOGRAD_POINTS)}")

    def poly_without(skip):  # ascending coefficients of prod_{l != skip} (t - p_l)
        coef = [Fraction(1)]
        for l, pl in enumerate(pts):
            if l != skip:
                coef = [a - pl * b for a, b in zip([Fraction(0)] + coef, coef + [Fraction(0)])]
        return coef

    bt, g, at = np.zeros((alpha, alpha)), np.zeros((alpha, r)), np.zeros((m, alpha))
    for j, pj in enumerate(pts):
        bt[j, :alpha - 1] = [float(v) for v in poly_without(j)]
        norm = np.prod([pj - pl for l, pl in enumerate(pts) if l != j])
        g[j] = [float(pj ** k / norm) for k in range(r)]
        at[:, j] = [float(pj ** i) for i in range(m)]
    bt[alpha - 1] = [float(v) for v in poly_without(None)]
    g[alpha - 1, r - 1] = at[m - 1, alpha - 1] = 1.0
    return bt, g, at


@lru_cache(maxsize=None)
def _winograd_2d(m: int, dtype: str):
    """The 2-D transforms as single matrices (Kronecker products), in ``dtype``: a flattened
    alpha x alpha tile d (index i*alpha + j) maps to BT2 @ d, a flattened 3x3 filter to G2 @ g,
    and alpha^2 products back to m x m outputs with AT2: BT2: (alpha^2, alpha^2),
    G2: (alpha^2, 9), AT2: (m^2, alpha^2). One GEMM per transform streams every tile at once."""
    bt, g, at = winograd_transforms(m)
    return tuple(np.kron(a, a).astype(dtype) for a in (bt, g, at))


def _winograd_applies(w_shape, stride, dilation):
    _, _, r, s = w_shape
    return (r, s) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)


def _winograd_supports(problem):
    infos, params = problem.infos, problem.params
    if not _winograd_applies(infos["w"].shape, params["stride"], params["dilation"]):
        return (f"Winograd F(m x m, 3x3) needs a 3x3 filter, stride 1 and dilation 1; got "
                f"{infos['w'].shape[2]}x{infos['w'].shape[3]}, stride {params['stride']}, "
                f"dilation {params['dilation']}")
    return None


def _winograd_4x4_supports(problem):
    cg = problem.infos["w"].shape[1]
    if problem.dtype == np.float32 and cg < WINOGRAD_4X4_MIN_CHANNELS:
        return (f"Winograd F(4x4, 3x3) amplifies float32 rounding past the tolerance with few channels; "
                f"it needs >= {WINOGRAD_4X4_MIN_CHANNELS} input channels per group in float32, got {cg} "
                f"(use winograd_2x2 or im2col_gemm, or float64)")
    return _winograd_supports(problem)


class _BatchThreads:
    """Run a variant on slices of the batch in parallel, one Python thread per BLAS thread, with
    NumPy's BLAS held to one thread meanwhile (threadpoolctl; without it, or with one BLAS thread,
    there is nothing to split and ``workers()`` is 1). The BLAS thread count is process-wide: a
    lock keeps concurrent conv2d calls from interleaving its save and restore, and other threads
    that call BLAS during the split get one thread.

    fork(): a split runs inside pykern's fork gate (pykern/_fork.py), so a fork waits until it has
    finished (BLAS limit restored, lock free, no worker inside BLAS) and none starts during the
    fork. A forked child starts with a fresh lock and no pool (the parent's pool threads do not
    exist in the child; its first split makes one)."""

    def __init__(self):
        self._blas = None
        self._probed = False
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self):
        self._lock = threading.Lock()
        self._pool, self._pool_size = None, 0

    def _controller(self):
        if not self._probed:
            self._probed = True
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                return None
            blas = ThreadpoolController().select(user_api="blas")
            self._blas = blas if blas.lib_controllers else None
        return self._blas

    def workers(self) -> int:
        blas = self._controller()
        return 1 if blas is None else max(1, min(c.num_threads for c in blas.lib_controllers))

    def run(self, fn, x, w, bias, y, n_workers: int, **params) -> None:
        n = x.shape[0]  # x: (N, C, H, W), y: (N, K, P, Q); each thread gets a contiguous slice
        cuts = [n * i // n_workers for i in range(n_workers + 1)]
        with FORK_GATE, self._lock:
            if self._pool_size < n_workers:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(n_workers, thread_name_prefix="pykern-conv2d")
                self._pool_size = n_workers
            limiter = self._controller().limit(limits=1)
            try:
                futures = [self._pool.submit(fn, x[a:b], w, bias, y[a:b], **params)
                           for a, b in zip(cuts[:-1], cuts[1:])]
                # Every slice finishes before the call returns or raises: none may go on writing
                # y, or run under the restored BLAS thread count, after the caller has moved on.
                wait(futures)
            finally:
                limiter.restore_original_limits()
            for f in futures:
                f.result()


_BATCH_THREADS = _BatchThreads()


def batch_workers(streamed: np.ndarray, filters: np.ndarray) -> int:
    """Threads to split a layer's batch over (1: do not split): the rule above, with ``streamed``
    the batched array the layer reads (x forward, dy for dx, x for dw) and ``filters`` w or dw."""
    if filters.size > PARALLEL_MAX_FILTER_RATIO * streamed.size:
        return 1
    return min(_BATCH_THREADS.workers(), streamed.shape[0] // PARALLEL_MIN_IMAGES)


# --- launchers ---------------------------------------------------------------------------------
@register("conv2d", "numpy", dtypes=("float32", "float64"), name="reference")
def reference_variant(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """The spec: float64 tap-by-tap contraction, rounded to the output dtype."""
    np.copyto(y, reference(x, w, bias, stride, padding, dilation, groups, activation), casting="same_kind")


@register("conv2d", "numpy", dtypes=("float32", "float64"))
def im2col_gemm(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """im2col into a reused block buffer + one BLAS GEMM per (block, group) into y; in the input dtype."""
    n, c, h, wd = x.shape  # x: (N, C, H, W)
    k, cg, r, s = w.shape  # w: (K, Cg, R, S)
    _, _, p, q = y.shape  # y: (N, K, P, Q)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    # A stride of an axis with one output, or a dilation of an axis with one tap, selects nothing;
    # set to 1 it cannot be multiplied into the strided views' offsets (up to 2^31 - 1 each).
    sh, sw = (1 if p == 1 else sh), (1 if q == 1 else sw)
    dh, dw = (1 if r == 1 else dh), (1 if s == 1 else dw)
    kg, crs = k // groups, cg * r * s
    wm = w.reshape(groups, kg, crs)  # (G, Kg, CRS): a view, the GEMM's left operand

    if pixels_are_columns((h, wd), (p, q), (r, s), (ph, pw)):
        # x itself is the column matrix of every image: one batched GEMM, no copy.
        yv = y.reshape(n, groups, kg, p * q)  # (N, G, Kg, P*Q)
        np.matmul(wm, x.reshape(n, groups, cg, h * wd), out=yv)
        _epilogue(yv, bias.reshape(groups, kg, 1) if bias is not None else None, activation)
        return

    wsrc = wd + 2 * pw  # columns of the (padded) source the gather reads
    blocks = _blocks(n, p, q, crs * q * x.itemsize, TARGET_COLS, MAX_COLS_BYTES)
    nb_max = max(b[1] - b[0] for b in blocks)
    rows_max = max(b[3] - b[2] for b in blocks)

    def win_rows(rows):  # padded input rows that a band of output rows reads
        return (rows - 1) * sh + (r - 1) * dh + 1

    win_buf = np.empty(nb_max * c * win_rows(rows_max) * wsrc, x.dtype) if (ph, pw) != (0, 0) and sw == 1 else None
    cols_buf = np.empty(crs * nb_max * rows_max * q, x.dtype)
    tmp_buf = np.empty(kg * nb_max * p * q, x.dtype) if nb_max > 1 else None
    phases = _column_phases(s, sw, dw)
    if sw > 1:
        # A column stride makes the gather read every sw-th element, which runs at a fraction of
        # the speed of a contiguous copy: split the padded source into its sw column phases first
        # (one cheap copy of the input, padding included) and gather each phase's taps from
        # contiguous rows. The GEMM rows then come phase by phase, and the filter columns are
        # permuted to match.
        phase_buf = np.empty(nb_max * c * win_rows(rows_max) * wsrc, x.dtype)
        order = np.concatenate([((np.arange(cg)[:, None, None] * r + np.arange(r)[None, :, None]) * s
                                 + np.asarray(taps)[None, None, :]).ravel() for _, taps, _, _ in phases])
        wm = np.ascontiguousarray(wm[:, :, order])  # (G, Kg, CRS) in the gather's row order

    for n0, n1, p0, p1 in blocks:
        nb, rows = n1 - n0, p1 - p0
        h0, h1 = p0 * sh, p0 * sh + win_rows(rows)
        if sw == 1 and win_buf is None:
            sources = [x[n0:n1, :, h0:h1]]  # (nb, C, rows', W)
        elif sw == 1:
            sources = [_padded_window(x, n0, n1, h0, h1, ph, pw,
                                      _carve(win_buf, (nb, c, h1 - h0, wsrc)))]  # (nb, C, rows', Wp)
        else:
            # Phase b holds padded columns b, b + sw, ...: the x columns xc with xc + pw = b mod
            # sw, from xc0, landing at phase column (xc0 + pw - b) / sw; zeros around them.
            sources, used = [], 0
            for b, _, _, _ in phases:
                xc0 = (b - pw) % sw
                shape = (nb, c, h1 - h0, len(range(b, wsrc, sw)))  # (nb, C, rows', ceil((Wp - b) / sw))
                sources.append(_padded_window(x[..., xc0::sw], n0, n1, h0, h1, ph, (xc0 + pw - b) // sw,
                                              _carve(phase_buf[used:], shape)))
                used += sources[-1].size
        cb = _carve(cols_buf, (crs, nb, rows, q))  # (CRS, nb, rows, Q), rows in the gather's order
        cm = cb.reshape(crs, nb * rows * q)  # (CRS, nb*rows*Q): the GEMM's right operand
        for g in range(groups):
            # Every (c, r, s, image, output row, output column) of this block is one strided view
            # of the source (one per column phase): the whole im2col of the block is one copy each.
            row = 0
            for pb, (_, taps, first, step) in zip(sources, phases):
                sn, sc, shh, sww = pb.strides
                seg = (cg, r, len(taps), nb, rows, q)
                np.copyto(cb[row:row + cg * r * len(taps)].reshape(seg),
                          as_strided(pb[:, g * cg:, :, first:], seg,
                                     (sc, dh * shh, step * sww, sn, sh * shh, sww)))
                row += cg * r * len(taps)
            bg = bias[g * kg:(g + 1) * kg, None] if bias is not None else None  # (Kg, 1)
            if nb == 1:
                # Rows p0:p1 of one image are contiguous per channel: the GEMM writes y directly.
                out = y[n0, g * kg:(g + 1) * kg, p0:p1].reshape(kg, rows * q)  # (Kg, rows*Q) view
                np.matmul(wm[g], cm, out=out)
                _epilogue(out, bg, activation)
            else:
                # Several images share one GEMM; its (Kg, image, pixel) result is transposed into
                # y's (image, Kg, pixel) by one small copy.
                t = _carve(tmp_buf, (kg, nb, p * q))  # (Kg, nb, P*Q)
                np.matmul(wm[g], cm, out=t.reshape(kg, nb * p * q))
                _epilogue(t.transpose(1, 0, 2), bg, activation)
                np.copyto(y[n0:n1, g * kg:(g + 1) * kg].reshape(nb, kg, p * q), t.transpose(1, 0, 2))


def _winograd(m: int, x, w, bias, y, *, padding, groups, activation):
    """Winograd F(m x m, 3x3) in the input dtype, stride 1, dilation 1. The layouts keep every
    copy's inner run long: the padded window is NHWC, so gathering a tile element for every tile
    copies runs of C channels (in NCHW those runs would be one tile apart, m elements, and numpy's
    per-run cost would dominate for small images); the output transform puts each tile's m x m
    outputs innermost, so each tile row of m outputs moves to y as one item."""
    n, c, h, wd = x.shape  # x: (N, C, H, W)
    k, cg, _, _ = w.shape  # w: (K, Cg, 3, 3)
    _, _, p, q = y.shape  # y: (N, K, P, Q)
    ph, pw = padding
    kg = k // groups
    alpha = m + 2
    a2 = alpha * alpha
    bt2, g2, at2 = _winograd_2d(m, x.dtype.name)
    tp, tq = -(-p // m), -(-q // m)  # tiles per column and per row; the last may overhang y
    wt = tq * m + 2  # padded input columns the tiles read (>= W + pw)

    blocks = _blocks(n, tp, tq, a2 * max(c, k) * tq * x.itemsize, WINOGRAD_TARGET_TILES, WINOGRAD_MAX_BYTES)
    nb_max = max(b[1] - b[0] for b in blocks)
    tr_max = max(b[3] - b[2] for b in blocks)
    t_max = nb_max * tr_max * tq
    # Filters: u: (alpha^2, G, Kg, Cg) = G2 @ each flattened 3x3 filter. When u is big (many
    # channels, so few tiles: one block) it is made a chunk of output channels at a time, right
    # before the GEMMs that read it, so it is read back from cache instead of memory.
    chunks = 1 if groups > 1 or len(blocks) > 1 else -(-a2 * k * cg * x.itemsize // WINOGRAD_FILTER_CHUNK_BYTES)
    kc = -(-k // chunks)  # output channels per chunk, evened out
    u_all = None if kc < k else np.matmul(g2, w.reshape(k * cg, 9).T).reshape(a2, groups, kg, cg)
    u_buf = np.empty(a2 * kc * cg, x.dtype) if u_all is None else None

    win_buf = np.empty(nb_max * (tr_max * m + 2) * wt * c, x.dtype)
    d_buf = np.empty(a2 * t_max * c, x.dtype)
    v_buf = np.empty(a2 * t_max * c, x.dtype)
    mm_buf = np.empty(a2 * k * t_max, x.dtype)
    yt_buf = np.empty(m * m * k * t_max, x.dtype)
    ragged = p % m or q % m
    # m outputs of one tile row as one opaque item: the scatter into y then copies items of
    # m*itemsize bytes along whole rows instead of runs of m numbers.
    unit = np.dtype((np.void, m * x.itemsize))
    full_buf = np.empty(nb_max * k * tr_max * m * tq * m, x.dtype) if ragged else None

    # Outputs whose window lies wholly in the padding (padding >= 3) are made exact below.
    pad_fill = None
    if max(ph, pw) >= 3:
        # What the spec sums there before the bias: 0 * w, so NaN for a filter with Inf or NaN.
        pad_fill = np.where(np.isfinite(w).reshape(k, -1).all(axis=1), 0.0, np.nan).astype(x.dtype)[:, None, None]

    for n0, n1, t0, t1 in blocks:
        nb, tr = n1 - n0, t1 - t0
        t = nb * tr * tq
        win = _carve(win_buf, (nb, tr * m + 2, wt, c))  # (nb, rows, wt, C): NHWC
        _padded_window(x, n0, n1, t0 * m, t1 * m + 2, ph, pw, win.transpose(0, 3, 1, 2))
        sn, sh_, sw_, sc = win.strides
        # Every tile's alpha x alpha inputs, tile-element-major: d: (alpha, alpha, nb, tr, tq, C).
        d = _carve(d_buf, (alpha, alpha, nb, tr, tq, c))
        np.copyto(d, as_strided(win, d.shape, (sh_, sw_, sn, m * sh_, m * sw_, sc)))
        v = _carve(v_buf, (a2, t, c))  # transformed tiles
        np.matmul(bt2, d.reshape(a2, t * c), out=v.reshape(a2, t * c))
        # The alpha^2 independent products, each a (T, Cg) x (Cg, Kg) GEMM per group (u's
        # (Kg, Cg) blocks are read transposed by BLAS, no copy).
        mm = _carve(mm_buf, (a2, t, k))  # (alpha^2, T, K)
        for g in range(groups):
            vg = v[:, :, g * cg:(g + 1) * cg]  # (alpha^2, T, Cg)
            for k0 in range(0, kg, kc):
                k1 = min(kg, k0 + kc)
                if u_all is not None:
                    ug = u_all[:, g, k0:k1]  # (alpha^2, k1-k0, Cg)
                else:
                    ug = _carve(u_buf, (a2, k1 - k0, cg))
                    np.matmul(g2, w[g * kg + k0:g * kg + k1].reshape(-1, 9).T, out=ug.reshape(a2, -1))
                np.matmul(vg, ug.transpose(0, 2, 1), out=mm[:, :, g * kg + k0:g * kg + k1])
        # Output transform with the tile's m x m outputs innermost, so that each tile row of m
        # outputs is adjacent in memory and can move to y as one m*itemsize item below.
        yt = _carve(yt_buf, (nb, tr, tq, k, m, m))  # output tiles
        np.matmul(mm.reshape(a2, t * k).T, at2.T, out=yt.reshape(t * k, m * m))
        tiles = yt.view(unit)[..., 0].transpose(0, 3, 1, 4, 2)  # (nb, K, tr, m, tq) of units
        rows = min(p, t1 * m) - t0 * m
        yb = y[n0:n1, :, t0 * m:t0 * m + rows]  # (nb, K, rows, Q)
        if not ragged:
            np.copyto(yb.view(unit).reshape(nb, k, tr, m, tq), tiles)
        else:
            # Tiles overhang y's last rows/columns: lay them out whole, then keep what is inside.
            full = _carve(full_buf, (nb, k, tr * m, tq * m))
            np.copyto(full.view(unit).reshape(nb, k, tr, m, tq), tiles)
            np.copyto(yb, full[:, :, :rows, :q])
        if pad_fill is not None:
            _fill_padding_only(yb, pad_fill, t0 * m, (h, wd), padding)
        _epilogue(yb, bias[:, None, None] if bias is not None else None, activation)


@register("conv2d", "numpy", dtypes=("float32", "float64"), supports=_winograd_supports,
          error_model="tile")
def winograd_2x2(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """Winograd F(2x2,3x3): 2.25x fewer multiplies than direct, transforms and batched GEMMs as matmuls."""
    _winograd(2, x, w, bias, y, padding=padding, groups=groups, activation=activation)


@register("conv2d", "numpy", dtypes=("float32", "float64"), supports=_winograd_4x4_supports,
          error_model="tile")
def winograd_4x4(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """Winograd F(4x4,3x3): 4x fewer multiplies than direct; float32 only with >= 16 channels per group."""
    _winograd(4, x, w, bias, y, padding=padding, groups=groups, activation=activation)


@register("conv2d", "numpy", dtypes=("float32", "float64"), default=True)
def im2col_threads(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """im2col_gemm on batch slices in parallel threads (BLAS held to one each) for input-heavy layers."""
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, activation=activation)
    workers = batch_workers(x, w)
    if workers > 1:
        _BATCH_THREADS.run(im2col_gemm, x, w, bias, y, workers, **params)
        return
    im2col_gemm(x, w, bias, y, **params)
