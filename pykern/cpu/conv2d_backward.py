"""The gradients of conv2d on the CPU with NumPy (see pykern/ops/conv2d_backward.py for the math).

One file for both gradients: they share the padded-window and column machinery.

Variants:
  conv2d_backward_input:
    reference   the spec in float64: one batched contraction per filter tap, scattered into the
                padded input
  conv2d_backward_weight:
    reference   the spec in float64: one contraction per filter tap over a strided view of x

Vocabulary: x: (N, C, H, W), w: (K, Cg, R, S), dy: (N, K, P, Q); G groups of Cg = C/G input and
Kg = K/G output channels; CRS = Cg*R*S.
"""
from __future__ import annotations

import numpy as np

from .._registry import register
from ..ops.conv2d_backward import reference_input, reference_weight

DTYPES = ("float32", "float64")


@register("conv2d_backward_input", "numpy", dtypes=DTYPES, name="reference", default=True)
def reference_input_variant(dy, w, dx, *, x_shape, stride, padding, dilation, groups):
    """The spec: float64 tap-by-tap scatter of batched contractions, rounded to the output dtype."""
    np.copyto(dx, reference_input(dy, w, x_shape, stride, padding, dilation, groups), casting="same_kind")


@register("conv2d_backward_weight", "numpy", dtypes=DTYPES, name="reference", default=True)
def reference_weight_variant(x, dy, dw, *, w_shape, stride, padding, dilation, groups):
    """The spec: float64 tap-by-tap contraction over strided views of x, rounded to the output dtype."""
    np.copyto(dw, reference_weight(x, dy, w_shape, stride, padding, dilation, groups), casting="same_kind")
