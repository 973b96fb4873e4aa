"""pykern's ops as PyTorch custom operators, with autograd and fake (shape-only) implementations.

Each op is a ``torch.library.custom_op`` in the ``pykern`` namespace (``torch.ops.pykern.conv2d``
and so on): opaque to torch.compile, which traces it through its fake implementation instead of
breaking the graph, and differentiable through ``register_autograd``, whose backward formulas
call pykern's backward ops (themselves custom ops, so the backward graph compiles too).

Arguments follow pykern's functions: ``backend`` ("auto", "numpy", "numba", "cuda") and
``variant`` (None: the backend's default) choose the forward kernel. The backward of matmul is
matmul, so it runs the forward's variant; the other backward ops run their backend's default.
A matmul variant that does not take the transpose flags (the CUDA C++ rungs above smem_tiled) gets the
transposed operand as a contiguous copy, made here; pykern itself never copies.
CPU tensors run on the NumPy backend under "auto", CUDA tensors on cuda (else numba).

Vocabulary: x: (N, C, H, W), w: (K, C//groups, R, S), y and dy: (N, K, P, Q); a: (M, K),
b: (K, N) (stored transposed when the flag says so).
"""
from typing import Optional, Sequence

import torch

import pykern as pk
from pykern._dispatch import resolve_backend
from pykern._registry import get_variant
from pykern.ops.conv2d import SPEC as CONV2D
from pykern.ops.conv2d import output_size

from ._convert import as_array, as_tensor, on_current_stream

Tensor = torch.Tensor


def _maybe(t: Optional[Tensor]):
    return None if t is None else as_array(t)


def _geometry(stride, padding, dilation, groups) -> dict:
    return {"stride": tuple(stride), "padding": tuple(padding), "dilation": tuple(dilation), "groups": groups}


# --- relu ---------------------------------------------------------------------------------------
@torch.library.custom_op("pykern::relu", mutates_args=())
def _relu(x: Tensor, backend: str, variant: Optional[str]) -> Tensor:
    with on_current_stream(x):
        return as_tensor(pk.relu(as_array(x), backend=backend, variant=variant))


@_relu.register_fake
def _relu_fake(x, backend, variant):
    return x.new_empty(x.shape)


@torch.library.custom_op("pykern::relu_backward", mutates_args=())
def _relu_backward(dy: Tensor, y: Tensor, backend: str, variant: Optional[str]) -> Tensor:
    """dx = dy where y > 0, else 0 (y = relu(x) is positive exactly where x is)."""
    with on_current_stream(dy, y):
        return as_tensor(pk.relu_backward(as_array(dy), as_array(y), backend=backend, variant=variant))


@_relu_backward.register_fake
def _relu_backward_fake(dy, y, backend, variant):
    return dy.new_empty(dy.shape)


def _relu_backward_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.backend = inputs[2]


def _relu_backward_grad(ctx, g):
    # dx = dy * (y > 0) is linear in dy, and y only selects: no gradient flows to y.
    (y,) = ctx.saved_tensors
    return torch.ops.pykern.relu_backward(g, y, ctx.backend, None), None, None, None


_relu_backward.register_autograd(_relu_backward_grad, setup_context=_relu_backward_setup)


def _relu_setup(ctx, inputs, output):
    # The output, not the input, is saved (as torch does): an in-place ReLU may overwrite x.
    ctx.save_for_backward(output)
    ctx.backend = inputs[1]


def _relu_grad(ctx, dy):
    (y,) = ctx.saved_tensors
    return torch.ops.pykern.relu_backward(dy, y, ctx.backend, None), None, None


_relu.register_autograd(_relu_grad, setup_context=_relu_setup)


# --- conv2d -------------------------------------------------------------------------------------
@torch.library.custom_op("pykern::conv2d", mutates_args=())
def _conv2d(x: Tensor, w: Tensor, bias: Optional[Tensor], stride: Sequence[int], padding: Sequence[int],
            dilation: Sequence[int], groups: int, activation: Optional[str], backend: str,
            variant: Optional[str]) -> Tensor:
    with on_current_stream(x, w, bias):
        return as_tensor(pk.conv2d(as_array(x), as_array(w), _maybe(bias), activation=activation,
                                   backend=backend, variant=variant,
                                   **_geometry(stride, padding, dilation, groups)))


@_conv2d.register_fake
def _conv2d_fake(x, w, bias, stride, padding, dilation, groups, activation, backend, variant):
    p = CONV2D.normalize(_geometry(stride, padding, dilation, groups) | {"activation": activation})
    pq = output_size(x.shape[2], x.shape[3], w.shape[2], w.shape[3], p["stride"], p["padding"], p["dilation"])
    return x.new_empty((x.shape[0], w.shape[0]) + tuple(pq))


@torch.library.custom_op("pykern::conv2d_backward_input", mutates_args=())
def _conv2d_backward_input(dy: Tensor, w: Tensor, x_shape: Sequence[int], stride: Sequence[int],
                           padding: Sequence[int], dilation: Sequence[int], groups: int, backend: str,
                           variant: Optional[str]) -> Tensor:
    with on_current_stream(dy, w):
        return as_tensor(pk.conv2d_backward_input(as_array(dy), as_array(w), tuple(x_shape), backend=backend,
                                                  variant=variant, **_geometry(stride, padding, dilation, groups)))


@_conv2d_backward_input.register_fake
def _conv2d_backward_input_fake(dy, w, x_shape, stride, padding, dilation, groups, backend, variant):
    return dy.new_empty(tuple(x_shape))


@torch.library.custom_op("pykern::conv2d_backward_weight", mutates_args=())
def _conv2d_backward_weight(x: Tensor, dy: Tensor, w_shape: Sequence[int], stride: Sequence[int],
                            padding: Sequence[int], dilation: Sequence[int], groups: int, backend: str,
                            variant: Optional[str]) -> Tensor:
    with on_current_stream(x, dy):
        return as_tensor(pk.conv2d_backward_weight(as_array(x), as_array(dy), tuple(w_shape), backend=backend,
                                                   variant=variant, **_geometry(stride, padding, dilation, groups)))


@_conv2d_backward_weight.register_fake
def _conv2d_backward_weight_fake(x, dy, w_shape, stride, padding, dilation, groups, backend, variant):
    return x.new_empty(tuple(w_shape))


# Second derivatives: each backward op is bilinear, the adjoint of conv2d in one argument, so
# its gradients are conv2d itself and the other backward op (<dx, g> = <dy, conv2d(g, w)>).
def _backward_input_setup(ctx, inputs, output):
    dy, w, x_shape, stride, padding, dilation, groups, backend, _ = inputs
    ctx.save_for_backward(dy, w)
    ctx.geometry, ctx.backend = (list(stride), list(padding), list(dilation), groups), backend


def _backward_input_grad(ctx, g):
    dy, w = ctx.saved_tensors
    d_dy = d_w = None
    if ctx.needs_input_grad[0]:
        d_dy = torch.ops.pykern.conv2d(g, w, None, *ctx.geometry, None, ctx.backend, None)
    if ctx.needs_input_grad[1]:
        d_w = torch.ops.pykern.conv2d_backward_weight(g, dy, list(w.shape), *ctx.geometry, ctx.backend, None)
    return (d_dy, d_w) + (None,) * 7


def _backward_weight_setup(ctx, inputs, output):
    x, dy, w_shape, stride, padding, dilation, groups, backend, _ = inputs
    ctx.save_for_backward(x, dy)
    ctx.geometry, ctx.backend = (list(stride), list(padding), list(dilation), groups), backend


def _backward_weight_grad(ctx, h):
    x, dy = ctx.saved_tensors
    d_x = d_dy = None
    if ctx.needs_input_grad[0]:
        d_x = torch.ops.pykern.conv2d_backward_input(dy, h, list(x.shape), *ctx.geometry, ctx.backend, None)
    if ctx.needs_input_grad[1]:
        d_dy = torch.ops.pykern.conv2d(x, h, None, *ctx.geometry, None, ctx.backend, None)
    return (d_x, d_dy) + (None,) * 7


_conv2d_backward_input.register_autograd(_backward_input_grad, setup_context=_backward_input_setup)
_conv2d_backward_weight.register_autograd(_backward_weight_grad, setup_context=_backward_weight_setup)


def _conv2d_setup(ctx, inputs, output):
    x, w, bias, stride, padding, dilation, groups, activation, backend, _ = inputs
    relu = activation == "relu"
    # With a fused ReLU the output tells where the gradient passes (y > 0 exactly where the
    # pre-activation is positive), so the pre-activation need not be kept.
    ctx.save_for_backward(x, w, output if relu else None)
    ctx.relu, ctx.has_bias, ctx.backend = relu, bias is not None, backend
    ctx.geometry = (list(stride), list(padding), list(dilation), groups)


def _conv2d_grad(ctx, dy):
    x, w, y = ctx.saved_tensors
    if ctx.relu:
        dy = torch.ops.pykern.relu_backward(dy, y, ctx.backend, None)
    dx = dw = db = None
    if ctx.needs_input_grad[0]:
        dx = torch.ops.pykern.conv2d_backward_input(dy, w, list(x.shape), *ctx.geometry, ctx.backend, None)
    if ctx.needs_input_grad[1]:
        dw = torch.ops.pykern.conv2d_backward_weight(x, dy, list(w.shape), *ctx.geometry, ctx.backend, None)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        db = dy.sum((0, 2, 3))  # the bias gradient needs no kernel of its own
    return (dx, dw, db) + (None,) * 7


_conv2d.register_autograd(_conv2d_grad, setup_context=_conv2d_setup)


# --- matmul -------------------------------------------------------------------------------------
@torch.library.custom_op("pykern::matmul", mutates_args=())
def _matmul(a: Tensor, b: Tensor, transpose_a: bool, transpose_b: bool, backend: str,
            variant: Optional[str]) -> Tensor:
    flags = {"transpose_a": transpose_a, "transpose_b": transpose_b}
    refused = [k for k, on in flags.items() if on and k not in _matmul_variant(a, backend, variant).takes]
    for k in refused:
        # This variant reads its operands untransposed (CUDA C++ rungs above smem_tiled): give it a
        # transposed copy rather than refuse inside a model. pykern itself never copies.
        a, b = (a.t(), b) if k == "transpose_a" else (a, b.t())
        flags[k] = False
    with on_current_stream(a, b):
        return as_tensor(pk.matmul(as_array(a), as_array(b), backend=backend, variant=variant, **flags))


def _matmul_variant(a: Tensor, backend: str, variant: Optional[str]):
    """The registry record of the matmul variant that pykern will run on ``a``."""
    return get_variant("matmul", resolve_backend(backend, a.device.type == "cuda"), variant)


@_matmul.register_fake
def _matmul_fake(a, b, transpose_a, transpose_b, backend, variant):
    m = a.shape[1] if transpose_a else a.shape[0]
    n = b.shape[0] if transpose_b else b.shape[1]
    # pykern's rule: 16-bit inputs accumulate and return float32.
    dtype = torch.float32 if a.element_size() == 2 else a.dtype
    return a.new_empty((m, n), dtype=dtype)


def _matmul_setup(ctx, inputs, output):
    a, b, ctx.ta, ctx.tb, ctx.backend, ctx.variant = inputs
    ctx.save_for_backward(a, b)


def _matmul_grad(ctx, dy):
    """c = op(a) @ op(b): d op(a) = dy @ op(b).T and d op(b) = op(a).T @ dy, each one matmul
    with flags, so no operand is ever transposed in memory."""
    a, b = ctx.saved_tensors
    mm = torch.ops.pykern.matmul
    da = db = None
    if ctx.needs_input_grad[0]:
        da = (mm(b, dy, ctx.tb, True, ctx.backend, ctx.variant) if ctx.ta
              else mm(dy, b, False, not ctx.tb, ctx.backend, ctx.variant)).to(a.dtype)
    if ctx.needs_input_grad[1]:
        db = (mm(dy, a, True, ctx.ta, ctx.backend, ctx.variant) if ctx.tb
              else mm(a, dy, not ctx.ta, False, ctx.backend, ctx.variant)).to(b.dtype)
    return da, db, None, None, None, None


_matmul.register_autograd(_matmul_grad, setup_context=_matmul_setup)


# --- the public functions -----------------------------------------------------------------------
def _pair(v) -> list:
    return [v, v] if isinstance(v, int) else list(v)


def relu(x: Tensor, *, backend: str = "auto", variant: Optional[str] = None) -> Tensor:
    """y = max(x, 0) elementwise. x: any shape."""
    return torch.ops.pykern.relu(x, backend, variant)


def conv2d(x: Tensor, w: Tensor, bias: Optional[Tensor] = None, *, stride=1, padding=0, dilation=1,
           groups: int = 1, activation: Optional[str] = None, backend: str = "auto",
           variant: Optional[str] = None) -> Tensor:
    """torch.nn.functional.conv2d's semantics (int or pair stride/padding/dilation), plus
    ``activation="relu"`` fused after the bias. x: (N, C, H, W), w: (K, C//groups, R, S),
    bias: (K,) or None -> (N, K, P, Q)."""
    return torch.ops.pykern.conv2d(x, w, bias, _pair(stride), _pair(padding), _pair(dilation), groups,
                                   activation, backend, variant)


def matmul(a: Tensor, b: Tensor, *, transpose_a: bool = False, transpose_b: bool = False,
           backend: str = "auto", variant: Optional[str] = None) -> Tensor:
    """c = op(a) @ op(b), op(t) = t.T where the flag is set. a: (M, K) or stored (K, M) with
    transpose_a; b: (K, N) or stored (N, K) with transpose_b -> c: (M, N)."""
    return torch.ops.pykern.matmul(a, b, transpose_a, transpose_b, backend, variant)


def linear(x: Tensor, w: Tensor, bias: Optional[Tensor] = None, *, backend: str = "auto",
           variant: Optional[str] = None) -> Tensor:
    """torch.nn.functional.linear: y = x @ w.T + bias. x: (*, in), w: (out, in), bias: (out,)."""
    y = matmul(x.reshape(-1, x.shape[-1]), w, transpose_b=True, backend=backend, variant=variant)
    if bias is not None:
        y = y + bias
    return y.reshape(tuple(x.shape[:-1]) + (w.shape[0],))
