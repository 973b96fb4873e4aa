"""ReLU's gradient in CUDA C++ (kernels/relu_backward.cu; its variant table lists the variants).
dy, x, dx: device ArrayInfo of one shape; dx may be dy or x."""
from __future__ import annotations

from ._launch import register_table


def _launch(kernel, dy, x, dx):
    kernel(dy.ptr, x.ptr, dx.ptr, x.size, x.dtype.name, x.stream)


register_table("relu_backward", _launch)
