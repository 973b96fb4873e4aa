"""2-D convolution in CUDA C++ (kernels/conv2d.cu), NCHW, torch.nn.functional.conv2d semantics.

x: (N, C, H, W), w: (K, C//groups, R, S), bias: (K,) or None, y: (N, K, P, Q): device ArrayInfo.
Every variant fuses bias + ReLU (``activation="relu"``) into its own launches.
What a variant cannot run (dtype, 32-bit index bounds, shared-memory budget) is decided in C++
by ``conv2d_unsupported``, which the launchers also enforce, so ``supports`` and the kernels
always agree.
"""
from __future__ import annotations

from .._registry import register
from ._launch import kernel


def _shape_args(x_shape, w_shape, pq, stride, padding, dilation, groups, activation):
    """The shape arguments every conv2d binding takes, in its order."""
    n, c, h, wd = x_shape
    k, _, r, s = w_shape
    p, q = pq
    return (n, c, h, wd, k, r, s, p, q, *stride, *padding, *dilation, groups, activation == "relu")


def _launch(name, x, w, bias, y, stride, padding, dilation, groups, activation, **extra):
    kernel(name)(x.ptr, w.ptr, 0 if bias is None else bias.ptr, y.ptr,
                 *_shape_args(x.shape, w.shape, y.shape[2:], stride, padding, dilation, groups, activation),
                 x.dtype.name, x.stream, **extra)


def _supports(variant):
    """supports(infos, params) for `variant`: the C++ rule, or None when it can run."""
    def supports(infos, params):
        from ..ops.conv2d import output_size
        x, w = infos["x"], infos["w"]
        pq = output_size(x.shape[2], x.shape[3], w.shape[2], w.shape[3], params["stride"],
                         params["padding"], params["dilation"])
        why = kernel("conv2d_unsupported")(variant, *_shape_args(x.shape, w.shape, pq, **params),
                                           x.dtype.name)
        return why or None
    return supports


@register("conv2d", "cuda", dtypes=("float32", "float64"), supports=_supports("direct"))
def direct(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """One thread per output element looping over (c, r, s); every feature, groups included."""
    _launch("conv2d_direct", x, w, bias, y, stride, padding, dilation, groups, activation)


@register("conv2d", "cuda", dtypes=("float32", "float64"), supports=_supports("smem_tiled"))
def smem_tiled(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """8x32 output tile per block: input tile + halo and an 8-filter slice in shared memory; 48 KiB cap."""
    _launch("conv2d_smem_tiled", x, w, bias, y, stride, padding, dilation, groups, activation)


@register("conv2d", "cuda", dtypes=("float32",), supports=_supports("im2col_gemm"))
def im2col_gemm(x, w, bias, y, *, stride, padding, dilation, groups, activation):
    """Per image: explicit im2col buffer, then matmul_f32_best per group, then a bias/ReLU pass."""
    _launch("conv2d_im2col_gemm", x, w, bias, y, stride, padding, dilation, groups, activation)


@register("conv2d", "cuda", dtypes=("float32",), default=True, supports=_supports("implicit_gemm"))
def implicit_gemm(x, w, bias, y, *, stride, padding, dilation, groups, activation, tile=-1):
    """Implicit GEMM (NPQ x K x CRS): x gathered into shared tiles on the fly, 2-D register tiles, fused epilogue."""
    _launch("conv2d_implicit_gemm", x, w, bias, y, stride, padding, dilation, groups, activation,
            tile=tile)


def implicit_gemm_tiles() -> list:
    """Names of implicit_gemm's tile configurations; ``tile=i`` forces the i-th one."""
    return list(kernel("conv2d_implicit_gemm_tiles")())
