"""2-D convolution on the CPU with NumPy (torch.nn.functional.conv2d semantics).

Variants:
  reference     the spec in float64: one tensordot per filter tap over strided views
  im2col_gemm   gather the filter taps of a block of output pixels into a reused column buffer
                (one strided-view copy), then one BLAS GEMM per (block, group) written straight
                into y; 1x1 stride-1 unpadded convolutions are one GEMM on x itself; the default

Vocabulary: x: (N, C, H, W), w: (K, C//groups, R, S), y: (N, K, P, Q); G groups of Cg = C/G
input and Kg = K/G output channels; CRS = Cg*R*S, the GEMM's reduction length.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._registry import register

# --- block sizes (data, not code) --------------------------------------------------------------
# GEMM columns per block: OpenBLAS sgemm on 2 cores loses 10-25% below ~1k columns (the 7x7
# ResNet layers have 49 output pixels per image), so small images are batched into one block.
TARGET_COLS = 2048
# Bytes of gathered columns per block: whole images up to this size (the 56x56x64 3x3 layer's
# 7.2 MB still fits the shared L3 with its source image); bigger images are split by output rows
# so the buffer never grows with the image.
MAX_COLS_BYTES = 16 << 20


def reference(x: np.ndarray, w: np.ndarray, bias=None, stride=(1, 1), padding=(0, 0),
              dilation=(1, 1), groups: int = 1, activation=None) -> np.ndarray:
    """Cross-correlation, computed in float64 (the spec every conv2d variant is checked against).

    x: (N, C, H, W), w: (K, C//groups, R, S), bias: (K,) or None; stride, padding, dilation:
    (h, w) pairs; groups splits C and K into `groups` independent blocks.

        y[n, k, p, q] = bias[k] + sum_{c, r, s} x_pad[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw]
                                               * w[k, c, r, s]
    with g = k // (K // groups), Cg = C // groups, x_pad = x zero-padded by (ph, pw) on each side.
    Output y: (N, K, P, Q), P = (H + 2ph - dh(R-1) - 1) // sh + 1, Q likewise.
    activation="relu" then sets y = max(y, 0) (NaN propagates).
    """
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    p = (h + 2 * ph - dh * (r - 1) - 1) // sh + 1
    q = (wd + 2 * pw - dw * (s - 1) - 1) // sw + 1
    xp = np.pad(x.astype(np.float64, copy=False), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    xg = xp.reshape(n, groups, cg, h + 2 * ph, wd + 2 * pw)  # (N, G, Cg, Hp, Wp)
    wg = w.astype(np.float64, copy=False).reshape(groups, k // groups, cg, r, s)  # (G, Kg, Cg, R, S)
    y = np.zeros((n, groups, k // groups, p, q))
    # Loop over the R*S filter taps only; each tap is one batched contraction over Cg.
    for i in range(r):
        for j in range(s):
            tap = xg[:, :, :, i * dh: i * dh + sh * (p - 1) + 1: sh, j * dw: j * dw + sw * (q - 1) + 1: sw]
            y += np.einsum("ngchw,gkc->ngkhw", tap, wg[:, :, :, i, j], optimize=True)
    y = y.reshape(n, k, p, q)
    if bias is not None:
        y += bias.astype(np.float64, copy=False)[None, :, None, None]
    if activation == "relu":
        y = np.where(y < 0, 0.0, y)
    return y


# --- helpers -----------------------------------------------------------------------------------
def _epilogue(y: np.ndarray, bias, activation) -> None:
    """Bias then ReLU, in place on a block of output just written (still in cache).

    y: (..., Kg, pixels); bias: None or shaped to broadcast against y, e.g. (Kg, 1).
    np.maximum propagates NaN, as the spec asks.
    """
    if bias is not None:
        y += bias
    if activation == "relu":
        np.maximum(y, 0, out=y)


def _blocks(n: int, p: int, q: int, crs: int, itemsize: int):
    """Yield (n0, n1, p0, p1): whole images batched up to TARGET_COLS columns, or one image split
    into output-row bands when its gathered columns would exceed MAX_COLS_BYTES."""
    row_bytes = crs * q * itemsize  # gathered columns of one output row
    if p * row_bytes > MAX_COLS_BYTES:
        rows = max(1, MAX_COLS_BYTES // row_bytes)
        for i in range(n):
            for p0 in range(0, p, rows):
                yield i, i + 1, p0, min(p, p0 + rows)
        return
    nb = max(1, min(n, -(-TARGET_COLS // (p * q)), MAX_COLS_BYTES // (p * row_bytes)))
    for n0 in range(0, n, nb):
        yield n0, min(n, n0 + nb), 0, p


# --- launchers ---------------------------------------------------------------------------------
@register("conv2d", "numpy", dtypes=("float32", "float64"), name="reference")
def reference_variant(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """The spec: float64 tap-by-tap contraction, rounded to the output dtype."""
    np.copyto(y, reference(x, w, bias, stride, padding, dilation, groups, activation), casting="same_kind")


@register("conv2d", "numpy", dtypes=("float32", "float64"), default=True)
def im2col_gemm(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """im2col into a reused block buffer + one BLAS GEMM per (block, group) into y; in the input dtype."""
    n, c, h, wd = x.shape  # x: (N, C, H, W)
    k, cg, r, s = w.shape  # w: (K, Cg, R, S)
    _, _, p, q = y.shape  # y: (N, K, P, Q)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    kg, crs = k // groups, cg * r * s
    wm = w.reshape(groups, kg, crs)  # (G, Kg, CRS): a view, the GEMM's left operand

    if r == s == 1 and (sh, sw) == (1, 1) and (ph, pw) == (0, 0):
        # x itself is the column matrix of every image: one batched GEMM, no copy.
        yv = y.reshape(n, groups, kg, p * q)  # (N, G, Kg, P*Q)
        np.matmul(wm, x.reshape(n, groups, cg, h * wd), out=yv)
        _epilogue(yv, bias.reshape(groups, kg, 1) if bias is not None else None, activation)
        return

    hp, wp = h + 2 * ph, wd + 2 * pw
    blocks = list(_blocks(n, p, q, crs, x.itemsize))
    nb_max = max(b[1] - b[0] for b in blocks)
    rows_max = max(b[3] - b[2] for b in blocks)
    # Padded copies of the block's images: zeroed once, only the interior is rewritten per block,
    # so the gather below needs no bounds logic.
    xpad = np.zeros((nb_max, c, hp, wp), x.dtype) if (ph, pw) != (0, 0) else None  # (nb, C, Hp, Wp)
    # Flat buffers, carved per block so that a short last block still gets contiguous arrays
    # (a reshape of a strided slice would silently copy and the GEMM would write into the copy).
    cols_buf = np.empty(crs * nb_max * rows_max * q, x.dtype)
    tmp_buf = np.empty(kg * nb_max * p * q, x.dtype) if nb_max > 1 else None

    for n0, n1, p0, p1 in blocks:
        nb, rows = n1 - n0, p1 - p0
        if xpad is None:
            src = x[n0:n1]
        else:
            src = xpad[:nb]
            src[:, :, ph:ph + h, pw:pw + wd] = x[n0:n1]
        sn, sc, shh, sww = src.strides
        cb = cols_buf[:crs * nb * rows * q].reshape(cg, r, s, nb, rows, q)  # (Cg, R, S, nb, rows, Q)
        cm = cb.reshape(crs, nb * rows * q)  # (CRS, nb*rows*Q): the GEMM's right operand
        for g in range(groups):
            # Every (c, r, s, image, output row, output column) of this block as one strided view
            # of the padded source: the whole im2col of the block is a single copy.
            base = src[:, g * cg:, p0 * sh:]
            np.copyto(cb, as_strided(base, (cg, r, s, nb, rows, q),
                                     (sc, dh * shh, dw * sww, sn, sh * shh, sw * sww)))
            bg = bias[g * kg:(g + 1) * kg, None] if bias is not None else None  # (Kg, 1)
            if nb == 1:
                # Rows p0:p1 of one image are contiguous per channel: the GEMM writes y directly.
                out = y[n0, g * kg:(g + 1) * kg, p0:p1].reshape(kg, rows * q)  # (Kg, rows*Q) view
                np.matmul(wm[g], cm, out=out)
                _epilogue(out, bg, activation)
            else:
                # Several images share one GEMM; its (Kg, image, pixel) result is transposed into
                # y's (image, Kg, pixel) by one small copy.
                t = tmp_buf[:kg * nb * p * q].reshape(kg, nb, p * q)  # (Kg, nb, P*Q)
                np.matmul(wm[g], cm, out=t.reshape(kg, nb * p * q))
                _epilogue(t.transpose(1, 0, 2), bg, activation)
                np.copyto(y[n0:n1, g * kg:(g + 1) * kg].reshape(nb, kg, p * q), t.transpose(1, 0, 2))
