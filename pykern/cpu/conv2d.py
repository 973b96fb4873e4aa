"""2-D convolution on the CPU with NumPy (torch.nn.functional.conv2d semantics).

Variants:
  reference   the spec in float64: one tensordot per filter tap over strided views; the default
"""
from __future__ import annotations

import numpy as np

from .._registry import register


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


@register("conv2d", "numpy", dtypes=("float32", "float64"), default=True, name="reference")
def reference_variant(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """The spec: float64 tap-by-tap contraction, rounded to the output dtype."""
    np.copyto(y, reference(x, w, bias, stride, padding, dilation, groups, activation), casting="same_kind")
