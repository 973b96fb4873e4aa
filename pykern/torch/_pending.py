"""TEMPORARY: the backward ops until pykern's own land (issue 13 part 1, branch ``backward``).

Each function calls pykern's op when this pykern has it, and otherwise computes the gradient
with the float64 NumPy formula (host arrays only). Delete this file, and call ``pk.<op>``
directly in ops.py, once ``pk.relu_backward``, ``pk.conv2d_backward_input``,
``pk.conv2d_backward_weight`` and ``pk.matmul(..., transpose_a=, transpose_b=)`` exist.

Vocabulary as in pykern/ops/conv2d.py: x: (N, C, H, W), w: (K, C//groups, R, S),
dy: (N, K, P, Q); G groups of Cg = C/G input and Kg = K/G output channels.
"""
import inspect

import numpy as np

import pykern as pk
from pykern.ops.conv2d import CONV2D


def _missing(op: str, arrays) -> None:
    if any(not isinstance(a, np.ndarray) for a in arrays):
        raise NotImplementedError(f"pykern.{op} is not in this pykern yet and the adapter's stand-in "
                                  "computes on the host only; move the tensors to the CPU")


def relu_backward(dy, x, *, backend="auto", variant=None):
    """dx = dy where x > 0, else 0. dy, x: same shape and dtype."""
    if hasattr(pk, "relu_backward"):
        return pk.relu_backward(dy, x, backend=backend, variant=variant)
    _missing("relu_backward", (dy, x))
    return np.where(x > 0, dy.astype(np.float64), 0.0).astype(dy.dtype)


def _geometry(x_shape, w_shape, params):
    """(normalized params, output (P, Q)) for conv2d with these shapes."""
    p = CONV2D.normalize(params)
    from pykern.ops.conv2d import output_size
    pq = output_size(x_shape[2], x_shape[3], w_shape[2], w_shape[3], p["stride"], p["padding"], p["dilation"])
    return p, pq


def _taps(p, pq, r, s):
    """For every filter tap (i, j): the slices of the padded input that its outputs read."""
    (sh, sw), (dh, dw), (pp, qq) = p["stride"], p["dilation"], pq
    for i in range(r):
        for j in range(s):
            yield i, j, (slice(i * dh, i * dh + sh * (pp - 1) + 1, sh), slice(j * dw, j * dw + sw * (qq - 1) + 1, sw))


def conv2d_backward_input(dy, w, x_shape, *, backend="auto", variant=None, **params):
    """dx: x_shape, the gradient of conv2d's output with respect to x."""
    if hasattr(pk, "conv2d_backward_input"):
        return pk.conv2d_backward_input(dy, w, tuple(x_shape), backend=backend, variant=variant, **params)
    _missing("conv2d_backward_input", (dy, w))
    n, c, h, wd = x_shape
    k, cg, r, s = w.shape
    p, pq = _geometry(x_shape, w.shape, params)
    g, (ph, pw) = p["groups"], p["padding"]
    dyg = dy.astype(np.float64).reshape(n, g, k // g, *pq)  # (N, G, Kg, P, Q)
    wg = w.astype(np.float64).reshape(g, k // g, cg, r, s)  # (G, Kg, Cg, R, S)
    dxp = np.zeros((n, g, cg, h + 2 * ph, wd + 2 * pw))  # (N, G, Cg, Hp, Wp)
    for i, j, (rows, cols) in _taps(p, pq, r, s):
        dxp[:, :, :, rows, cols] += np.einsum("ngkpq,gkc->ngcpq", dyg, wg[:, :, :, i, j])
    return np.ascontiguousarray(dxp.reshape(n, c, h + 2 * ph, wd + 2 * pw)[:, :, ph:ph + h, pw:pw + wd]).astype(dy.dtype)


def conv2d_backward_weight(x, dy, w_shape, *, backend="auto", variant=None, **params):
    """dw: w_shape, the gradient of conv2d's output with respect to w."""
    if hasattr(pk, "conv2d_backward_weight"):
        return pk.conv2d_backward_weight(x, dy, tuple(w_shape), backend=backend, variant=variant, **params)
    _missing("conv2d_backward_weight", (x, dy))
    n, c, h, wd = x.shape
    k, cg, r, s = w_shape
    p, pq = _geometry(x.shape, w_shape, params)
    g, (ph, pw) = p["groups"], p["padding"]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw))).reshape(n, g, cg, h + 2 * ph, wd + 2 * pw)
    dyg = dy.astype(np.float64).reshape(n, g, k // g, *pq)  # (N, G, Kg, P, Q)
    dw = np.zeros((g, k // g, cg, r, s))  # (G, Kg, Cg, R, S)
    for i, j, (rows, cols) in _taps(p, pq, r, s):
        dw[:, :, :, i, j] = np.einsum("ngkpq,ngcpq->gkc", dyg, xp[:, :, :, rows, cols])
    return dw.reshape(w_shape).astype(x.dtype)


def _has_transpose_flags() -> bool:
    return "transpose_a" in inspect.signature(pk.matmul).parameters


def matmul(a, b, *, transpose_a=False, transpose_b=False, backend="auto", variant=None):
    """c = op(a) @ op(b), op(t) = t.T where the flag is set; a stored (K, M) when transpose_a,
    b stored (N, K) when transpose_b."""
    if _has_transpose_flags():
        return pk.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b, backend=backend, variant=variant)
    if not (transpose_a or transpose_b):
        return pk.matmul(a, b, backend=backend, variant=variant)
    _missing("matmul(transpose_a=, transpose_b=)", (a, b))
    # pk.matmul without the flags: the transposed operand as a contiguous copy.
    a = np.ascontiguousarray(a.T) if transpose_a else a
    b = np.ascontiguousarray(b.T) if transpose_b else b
    return pk.matmul(a, b, backend=backend, variant=variant)
