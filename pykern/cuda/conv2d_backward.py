"""The gradients of conv2d in CUDA C++ (kernels/conv2d_backward_input.cu and
kernels/conv2d_backward_weight.cu; their variant tables list the variants). The math:
pykern/ops/conv2d_backward.py.

x: (N, C, H, W), w: (K, C//groups, R, S), dy: (N, K, P, Q): device ArrayInfo; params normalized
(stride, padding, dilation as (h, w) pairs).
"""
from __future__ import annotations

from ._launch import register_table


def _shape_args(x_shape, w_shape, dy_shape, stride, padding, dilation, groups):
    """The shape arguments both gradients' bindings take, in their order."""
    n, c, h, wd = x_shape
    k, _, r, s = w_shape
    p, q = dy_shape[2:]
    return (n, c, h, wd, k, r, s, p, q, *stride, *padding, *dilation, groups)


def _launch_input(bound, dy, w, dx, *, x_shape, stride, padding, dilation, groups):
    bound(dy.ptr, w.ptr, dx.ptr, *_shape_args(x_shape, w.shape, dy.shape, stride, padding, dilation, groups),
          dy.dtype.name, dy.stream)


def _launch_weight(bound, x, dy, dw, *, w_shape, stride, padding, dilation, groups):
    bound(x.ptr, dy.ptr, dw.ptr, *_shape_args(x.shape, w_shape, dy.shape, stride, padding, dilation, groups),
          x.dtype.name, x.stream)


register_table("conv2d_backward_input", _launch_input)
register_table("conv2d_backward_weight", _launch_weight)
