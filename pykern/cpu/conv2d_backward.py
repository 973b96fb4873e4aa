"""The gradients of conv2d on the CPU with NumPy (see pykern/ops/conv2d_backward.py for the math).

One file for both gradients: they share the padded-window and column machinery.

Variants:
  conv2d_backward_input:
    reference    the spec in float64: one batched contraction per filter tap, scattered into the
                 padded input
    gemm_col2im  per block of images and group, one BLAS GEMM w^T @ dy gives every tap's
                 contribution (the columns), then R*S strided adds scatter them into a padded
                 window (no np.add.at), whose inside is copied to dx; in the input dtype
    gemm_col2im_threads  the default: gemm_col2im on slices of the batch in parallel threads
                 with BLAS held to one thread each (the forward default's batch split and rule,
                 pykern/cpu/conv2d.py); gemm_col2im whole for weight-heavy layers or small batches
  conv2d_backward_weight:
    reference    the spec in float64: one contraction per filter tap over a strided view of x
    im2col_gemm  per block of images and group, im2col of the padded input (one strided-view
                 copy, as the forward's) and one BLAS GEMM dy @ columns^T, summed over blocks;
                 in the input dtype
    im2col_gemm_threads  the default: im2col_gemm on slices of the batch in parallel threads,
                 each into its own partial dw, summed in batch order (the same result on every
                 run); im2col_gemm whole where the forward default would not split either

Why split the batch: NumPy's copies and adds run on one core, and two-thread BLAS on a busy
machine loses whole scheduler slices; one single-threaded slice per core avoids both. Measured
on the 2-core machine while other processes held ~70% of it (so only the ratio means much),
N=8, 3x3, pad 1: 56x56x64 dx 136-148 ms whole, 46-50 ms split; dw 226-296 ms whole, 35-46 ms
split; 28x28x128 dx 65-75 vs 30-38 ms, dw 156-168 vs 27-30 ms; 7x7x512 (weight-heavy) not split.

Accuracy: the fast variants sum each output's own terms (a GEMM over k or over pixels, then
adds over taps or blocks), so they meet the tolerance policy on any input, and padded taps
multiply their zeros as the spec's do.

Vocabulary: x: (N, C, H, W), w: (K, Cg, R, S), dy: (N, K, P, Q); G groups of Cg = C/G input and
Kg = K/G output channels; CRS = Cg*R*S.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._registry import register
from ..ops.conv2d_backward import reference_input, reference_weight
from .conv2d import (_BATCH_THREADS, MAX_COLS_BYTES, TARGET_COLS, batch_workers,
                     _carve, _padded_window, pixels_are_columns)

DTYPES = ("float32", "float64")


# --- helpers -----------------------------------------------------------------------------------
def _geometry(x_shape, w_shape, dy_shape, stride, dilation):
    """Sizes and the effective stride/dilation: a stride of an axis with one output, or a
    dilation of an axis with one tap, selects nothing; set to 1 it cannot be multiplied into a
    strided view's offsets (up to 2^31 - 1 each)."""
    n, c, h, wd = x_shape
    k, cg, r, s = w_shape
    p, q = dy_shape[2:]
    (sh, sw), (dh, dw) = stride, dilation
    sh, sw = (1 if p == 1 else sh), (1 if q == 1 else sw)
    dh, dw = (1 if r == 1 else dh), (1 if s == 1 else dw)
    return (n, c, h, wd, k, cg, r, s, p, q), (sh, sw), (dh, dw)


def _image_blocks(n: int, pq: int, bytes_per_image: int):
    """[(n0, n1)] covering images 0..n: as many images per GEMM as reach TARGET_COLS columns
    while their columns stay under MAX_COLS_BYTES (at least one image)."""
    nb = max(1, min(n, -(-TARGET_COLS // pq), MAX_COLS_BYTES // max(1, bytes_per_image)))
    return [(n0, min(n, n0 + nb)) for n0 in range(0, n, nb)]


def _dy_block(dy, n0, n1, k0, k1, buf):
    """dy's channels k0:k1 of images n0:n1 as a (k1-k0, nb*P*Q) GEMM operand: a view for one
    image, else a copy into ``buf`` (channels outermost)."""
    nb, pq = n1 - n0, dy.shape[2] * dy.shape[3]
    if nb == 1:
        return dy[n0, k0:k1].reshape(k1 - k0, pq)
    t = _carve(buf, (k1 - k0, nb, pq))
    np.copyto(t, dy[n0:n1, k0:k1].reshape(nb, k1 - k0, pq).transpose(1, 0, 2))
    return t.reshape(k1 - k0, nb * pq)


@register("conv2d_backward_input", "numpy", dtypes=DTYPES, name="reference")
def reference_input_variant(dy, w, dx, *, x_shape, stride, padding, dilation, groups):
    """The spec: float64 tap-by-tap scatter of batched contractions, rounded to the output dtype."""
    np.copyto(dx, reference_input(dy, w, x_shape, stride, padding, dilation, groups), casting="same_kind")


@register("conv2d_backward_weight", "numpy", dtypes=DTYPES, name="reference")
def reference_weight_variant(x, dy, dw, *, w_shape, stride, padding, dilation, groups):
    """The spec: float64 tap-by-tap contraction over strided views of x, rounded to the output dtype."""
    np.copyto(dw, reference_weight(x, dy, w_shape, stride, padding, dilation, groups), casting="same_kind")


@register("conv2d_backward_input", "numpy", dtypes=DTYPES)
def gemm_col2im(dy, w, dx, *, x_shape, stride, padding, dilation, groups):
    """GEMM w^T @ dy into columns per block, then R*S strided adds into a padded window (no np.add.at)."""
    (n, c, h, wd, k, cg, r, s, p, q), (sh, sw), (dh, dw) = _geometry(dx.shape, w.shape, dy.shape, stride, dilation)
    ph, pw = padding  # dy: (N, K, P, Q), w: (K, Cg, R, S), dx: (N, C, H, W)
    kg, crs, pq = k // groups, cg * r * s, p * q
    wt = w.reshape(groups, kg, crs).transpose(0, 2, 1)  # (G, CRS, Kg): BLAS reads it transposed
    if pixels_are_columns((h, wd), (p, q), (r, s), padding):
        # The columns are dx itself: one batched GEMM per group, written straight into dx.
        dxv = dx.reshape(n, groups, cg, pq)  # (N, G, Cg, P*Q)
        for g in range(groups):
            np.matmul(wt[g], dy.reshape(n, groups, kg, pq)[:, g], out=dxv[:, g])
        return
    # The padded window: rows and columns the taps reach, and at least the whole of x inside it.
    hb = max((p - 1) * sh + (r - 1) * dh + 1, ph + h)
    wb = max((q - 1) * sw + (s - 1) * dw + 1, pw + wd)
    blocks = _image_blocks(n, pq, crs * pq * dx.itemsize)
    nb_max = max(b1 - b0 for b0, b1 in blocks)
    cols_buf = np.empty(crs * nb_max * pq, dx.dtype)
    dy_buf = np.empty(kg * nb_max * pq, dx.dtype)
    win_buf = np.empty(nb_max * cg * hb * wb, dx.dtype)
    for n0, n1 in blocks:
        nb = n1 - n0
        for g in range(groups):
            # Images innermost, in dy's block, the columns and the padded window alike: each tap's
            # add then runs over Q*nb contiguous numbers (nb at a column stride), not rows of Q,
            # which for small images (Q = 8) left NumPy's per-run overhead dominant.
            dyb = _carve(dy_buf, (kg, p, q, nb))  # (Kg, P, Q, nb)
            np.copyto(dyb, dy[n0:n1, g * kg:(g + 1) * kg].transpose(1, 2, 3, 0))
            cols = _carve(cols_buf, (crs, pq * nb))  # (CRS, P*Q*nb): each tap's share of each dy
            np.matmul(wt[g], dyb.reshape(kg, pq * nb), out=cols)
            taps = cols.reshape(cg, r, s, p, q, nb)
            win = _carve(win_buf, (cg, hb, wb, nb))  # (Cg, Hb, Wb, nb): the block's padded dx
            win.fill(0)
            for i in range(r):
                for j in range(s):
                    win[:, i * dh:i * dh + sh * (p - 1) + 1:sh, j * dw:j * dw + sw * (q - 1) + 1:sw] += taps[:, i, j]
            np.copyto(dx[n0:n1, g * cg:(g + 1) * cg], win[:, ph:ph + h, pw:pw + wd].transpose(3, 0, 1, 2))


@register("conv2d_backward_weight", "numpy", dtypes=DTYPES, name="im2col_gemm")
def weight_im2col_gemm(x, dy, dw, *, w_shape, stride, padding, dilation, groups):
    """im2col of the padded input per block + one BLAS GEMM dy @ columns^T per group, summed over blocks."""
    (n, c, h, wd, k, cg, r, s, p, q), (sh, sw), (dh, dil_w) = _geometry(x.shape, dw.shape, dy.shape, stride, dilation)
    ph, pw = padding  # x: (N, C, H, W), dy: (N, K, P, Q), dw: (K, Cg, R, S)
    kg, crs, pq = k // groups, cg * r * s, p * q
    dwm = dw.reshape(groups, kg, crs)  # (G, Kg, CRS): a view, the GEMMs' output
    hb = (p - 1) * sh + (r - 1) * dh + 1  # padded rows and columns the taps read
    wb = max((q - 1) * sw + (s - 1) * dil_w + 1, pw + wd)  # _padded_window writes all of x's columns
    padded = (ph, pw) != (0, 0)
    blocks = _image_blocks(n, pq, crs * pq * x.itemsize)
    nb_max = max(b1 - b0 for b0, b1 in blocks)
    cols_buf = np.empty(crs * nb_max * pq, x.dtype)
    dy_buf = np.empty(kg * nb_max * pq, x.dtype) if nb_max > 1 else None
    win_buf = np.empty(nb_max * c * hb * wb, x.dtype) if padded else None
    part = np.empty((kg, crs), x.dtype) if len(blocks) > 1 else None
    for bi, (n0, n1) in enumerate(blocks):
        nb = n1 - n0
        src = (_padded_window(x, n0, n1, 0, hb, ph, pw, _carve(win_buf, (nb, c, hb, wb))) if padded
               else x[n0:n1])  # (nb, C, rows, cols) in padded coordinates
        sn, sc, shh, sww = src.strides
        for g in range(groups):
            if nb == 1 and pixels_are_columns((h, wd), (p, q), (r, s), padding):
                cm = x[n0, g * cg:(g + 1) * cg].reshape(cg, pq)  # x is the columns
            else:
                cols = _carve(cols_buf, (cg, r, s, nb, p, q))  # every tap of every output: one copy
                np.copyto(cols, as_strided(src[:, g * cg:], cols.shape,
                                           (sc, dh * shh, dil_w * sww, sn, sh * shh, sw * sww)))
                cm = cols.reshape(crs, nb * pq)
            dyb = _dy_block(dy, n0, n1, g * kg, (g + 1) * kg, dy_buf)  # (Kg, nb*P*Q)
            if bi == 0:
                np.matmul(dyb, cm.T, out=dwm[g])
            else:
                np.matmul(dyb, cm.T, out=part)
                dwm[g] += part


def _col2im_slice(dy, w, _bias, dx, **params):
    """gemm_col2im in the forward's batch-thread calling convention (x, w, bias, y): dy and dx
    are slices of the batch; x_shape is unused (dx's shape says it)."""
    gemm_col2im(dy, w, dx, **params)


@register("conv2d_backward_input", "numpy", dtypes=DTYPES, default=True)
def gemm_col2im_threads(dy, w, dx, *, x_shape, stride, padding, dilation, groups):
    """gemm_col2im on batch slices in parallel threads (BLAS held to one each) for dy-heavy layers."""
    params = dict(x_shape=x_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    workers = batch_workers(dy, w)  # the forward default's rule, with dy as the streamed input
    if workers > 1:
        _BATCH_THREADS.run(_col2im_slice, dy, w, None, dx, workers, **params)
        return
    gemm_col2im(dy, w, dx, **params)


@register("conv2d_backward_weight", "numpy", dtypes=DTYPES, default=True)
def im2col_gemm_threads(x, dy, dw, *, w_shape, stride, padding, dilation, groups):
    """im2col_gemm on batch slices in parallel threads (BLAS held to one each), partial dw summed in order."""
    params = dict(w_shape=w_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    workers = batch_workers(x, dw)
    if workers < 2:
        weight_im2col_gemm(x, dy, dw, **params)
        return
    # The batch threads slice their x and y arguments along the batch: here x is the image index
    # (so each slice knows its images of x and dy) and y one slot per image, of which each slice
    # fills its first with its partial dw.
    slots = np.empty(x.shape[0], dtype=object)

    def one_slice(images, _w, _bias, slot):
        part = np.empty_like(dw)
        weight_im2col_gemm(x[images[0]:images[-1] + 1], dy[images[0]:images[-1] + 1], part, **params)
        slot[0] = part

    _BATCH_THREADS.run(one_slice, np.arange(x.shape[0]), None, None, slots, workers)
    parts = [p for p in slots if p is not None]  # in batch order: the same sum on every run
    np.copyto(dw, parts[0])
    for p in parts[1:]:
        dw += p
