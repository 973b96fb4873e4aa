"""2-D convolution in CUDA C++ (kernels/conv2d.cu; its variant table lists the variants), NCHW,
torch.nn.functional.conv2d semantics.

x: (N, C, H, W), w: (K, C//groups, R, S), bias: (K,) or None, y: (N, K, P, Q): device ArrayInfo.
Every variant fuses bias + ReLU (``activation="relu"``) into its own launches.
What a variant cannot run (dtype, 32-bit index bounds, shared-memory budget) is decided in C++
by ``conv2d_unsupported``, which the launchers also enforce, so ``supports`` and the kernels
always agree.
"""
from __future__ import annotations

from ._launch import kernel, register_table


def _shape_args(x_shape, w_shape, pq, stride, padding, dilation, groups, activation):
    """The shape arguments every conv2d binding takes, in its order."""
    n, c, h, wd = x_shape
    k, _, r, s = w_shape
    p, q = pq
    return (n, c, h, wd, k, r, s, p, q, *stride, *padding, *dilation, groups, activation == "relu")


def _launch(bound, x, w, bias, y, *, stride, padding, dilation, groups, activation, tile=-1):
    """tile: implicit_gemm only, -1 (its own pick) or an index into implicit_gemm_tiles()."""
    bound(x.ptr, w.ptr, 0 if bias is None else bias.ptr, y.ptr,
          *_shape_args(x.shape, w.shape, y.shape[2:], stride, padding, dilation, groups, activation),
          x.dtype.name, x.stream, tile=tile)


def _supports(variant):
    """supports(problem) for `variant`: the C++ rule, or None when it can run."""
    def supports(problem):
        x, w = problem.infos["x"], problem.infos["w"]
        why = kernel("conv2d_unsupported")(variant, *_shape_args(x.shape, w.shape, problem.out_shape[2:],
                                                                 **problem.params), x.dtype.name)
        return why or None
    return supports


register_table("conv2d", _launch, supports=_supports)


def implicit_gemm_tiles() -> list:
    """Names of implicit_gemm's tile configurations; ``tile=i`` forces the i-th one."""
    return list(kernel("conv2d_implicit_gemm_tiles")())
