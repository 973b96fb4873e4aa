"""The gradients of conv2d (torch.nn.functional.conv2d semantics, NCHW): specs and float64
references of conv2d_backward_input and conv2d_backward_weight.

One file for both ops: they share conv2d's geometry (the same x, w, dy shapes and parameters,
the same validation) and their references are the same loop over filter taps read two ways.
For y = conv2d(x, w, stride, padding, dilation, groups) and dy = dL/dy:

    dx[n, g*Cg + c, h, w'] = sum_{k in group g, r, s, p, q : p*sh + r*dh = h + ph,
                                                             q*sw + s*dw = w' + pw} dy[n, k, p, q] * w[k, c, r, s]
    dw[k, c, r, s]        = sum_{n, p, q} x_pad[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw] * dy[n, k, p, q]

with g = k // Kg (Kg = K / groups output and Cg = C / groups input channels per group) and
x_pad = x zero-padded by (ph, pw). Shapes: x: (N, C, H, W), w: (K, Cg, R, S), dy: (N, K, P, Q),
P = (H + 2ph - dh(R-1) - 1) // sh + 1 (Q likewise). As in the forward op, padding is zeros that
multiply like any value: a padded tap contributes 0 * dy to dw (0 * Inf is NaN, as torch's).
A case is conv2d's (N, C, H, W, K, R, S and the parameters; no bias or activation).
"""
from __future__ import annotations

import numpy as np

from ._baselines import keeping, torch_baseline
from ._spec import check_rank, random_array
from .conv2d import GEOMETRY_FIELDS, INDEX_LIMIT, ConvLayerSpec, checked_output_size, geometry_dims, output_size
from .conv2d import SPEC as CONV2D


def _taps(r: int, s: int, p: int, q: int, stride, dilation):
    """For each filter tap (i, j): the (rows, cols) slices of the padded input it meets, one
    element per output (p, q)."""
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(r):
        for j in range(s):
            yield i, j, (slice(i * dh, i * dh + sh * (p - 1) + 1, sh), slice(j * dw, j * dw + sw * (q - 1) + 1, sw))


def reference_input(dy: np.ndarray, w: np.ndarray, x_shape, stride=(1, 1), padding=(0, 0),
                    dilation=(1, 1), groups: int = 1) -> np.ndarray:
    """dx = d conv2d / dx applied to dy, in float64 (the spec of conv2d_backward_input).

    dy: (N, K, P, Q), w: (K, Cg, R, S), x_shape: (N, C, H, W) -> dx: (N, C, H, W) float64. Each
    tap scatters one batched contraction over Kg into the padded input; the padding is cut off.
    """
    n, c, h, wd = x_shape
    k, cg, r, s = w.shape
    p, q = dy.shape[2:]
    (ph, pw) = padding
    dyg = dy.astype(np.float64, copy=False).reshape(n, groups, k // groups, p, q)  # (N, G, Kg, P, Q)
    wg = w.astype(np.float64, copy=False).reshape(groups, k // groups, cg, r, s)  # (G, Kg, Cg, R, S)
    dxp = np.zeros((n, groups, cg, h + 2 * ph, wd + 2 * pw))  # (N, G, Cg, Hp, Wp)
    for i, j, (rows, cols) in _taps(r, s, p, q, stride, dilation):
        dxp[:, :, :, rows, cols] += np.einsum("ngkpq,gkc->ngcpq", dyg, wg[:, :, :, i, j], optimize=True)
    return dxp.reshape(n, c, h + 2 * ph, wd + 2 * pw)[:, :, ph:ph + h, pw:pw + wd].copy()


def reference_weight(x: np.ndarray, dy: np.ndarray, w_shape, stride=(1, 1), padding=(0, 0),
                     dilation=(1, 1), groups: int = 1) -> np.ndarray:
    """dw = d conv2d / dw applied to dy, in float64 (the spec of conv2d_backward_weight).

    x: (N, C, H, W), dy: (N, K, P, Q), w_shape: (K, Cg, R, S) -> dw: (K, Cg, R, S) float64. Each
    tap is one contraction of the padded input's strided view with dy over N, P and Q.
    """
    n, c, h, wd = x.shape
    k, cg, r, s = w_shape
    p, q = dy.shape[2:]
    (ph, pw) = padding
    xp = np.pad(x.astype(np.float64, copy=False), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    xg = xp.reshape(n, groups, cg, h + 2 * ph, wd + 2 * pw)  # (N, G, Cg, Hp, Wp)
    dyg = dy.astype(np.float64, copy=False).reshape(n, groups, k // groups, p, q)  # (N, G, Kg, P, Q)
    dw = np.empty((groups, k // groups, cg, r, s))
    for i, j, (rows, cols) in _taps(r, s, p, q, stride, dilation):
        dw[:, :, :, i, j] = np.einsum("ngcpq,ngkpq->gkc", xg[:, :, :, rows, cols], dyg, optimize=True)
    return dw.reshape(k, cg, r, s)


def _shape4(value, name: str, layout: str) -> tuple:
    """A 4-tuple of ints in [1, 2^31 - 1]; ValueError naming the argument otherwise."""
    if (not isinstance(value, (tuple, list)) or len(value) != 4
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{name}: expected a shape {layout} of four ints, got {value!r}")
    if not all(1 <= v <= INDEX_LIMIT for v in value):
        raise ValueError(f"{name}: every entry of {layout} must be in [1, 2^31 - 1], got {tuple(value)}")
    return tuple(int(v) for v in value)


class _Conv2dBackwardSpec(ConvLayerSpec):
    """What the two gradients share: conv2d's parameters, geometry checks and cases (the
    benchmark cases and --sizes forms of ConvLayerSpec)."""

    shape_param = ""  # the parameter giving the output's shape: x_shape or w_shape
    torch_grad = ""  # the torch.nn.grad function the baselines call: conv2d_input or conv2d_weight

    def normalize(self, params):
        p = CONV2D.normalize({k: v for k, v in params.items() if k != self.shape_param})
        del p["activation"]
        return p

    def check_geometry(self, x_shape, w_shape, dy, p, names):
        """x_shape: (N, C, H, W), w_shape: (K, Cg, R, S) and dy's shape agree under the
        parameters p; ``names`` says which argument gave x and w (an array or a shape)."""
        n, c, h, wd = x_shape
        k, cg, r, s = w_shape
        xn, wn = names
        g = p["groups"]
        if c % g or k % g:
            raise ValueError(f"groups={g} must divide both C={c} ({xn}) and K={k} ({wn})")
        if cg * g != c:
            raise ValueError(f"{wn}: (K, C//groups, R, S) = {tuple(w_shape)} expects C//groups = {c // g} "
                             f"for {xn}: (N, C, H, W) = {tuple(x_shape)} and groups={g}, got {cg}")
        pq = checked_output_size(x_shape, w_shape, p, p["padding"], names)
        if dy.shape != (n, k) + pq:
            raise ValueError(f"dy: expected conv2d's output shape (N, K, P, Q) = {(n, k) + pq} for "
                             f"{xn}: {tuple(x_shape)}, {wn}: {tuple(w_shape)}, stride {p['stride']}, padding "
                             f"{p['padding']}, dilation {p['dilation']}; got {dy.shape}")

    def test_cases(self, backend, simulator=False):
        cases = [{k: v for k, v in c.items() if k not in ("bias", "activation")}
                 for c in CONV2D.test_cases(backend, simulator)]
        # stride > 1 with rows and columns the last output does not reach (dx = 0 there), and
        # every parameter at once
        cases += [dict(N=1, C=2, H=8, W=9, K=3, R=3, S=2, stride=(3, 2), padding=(0, 1)),
                  dict(N=2, C=4, H=9, W=7, K=6, R=2, S=3, stride=2, padding=(2, 1), dilation=(2, 1), groups=2)]
        unique = []
        for c in cases:
            if c not in unique:
                unique.append(c)
        return unique

    def demo_case(self, simulator=False):
        return CONV2D.demo_case(simulator)

    def flops(self, case):
        return CONV2D.flops(case)

    def case_id(self, case):
        return CONV2D.case_id({k: v for k, v in case.items() if k not in ("bias", "activation")})

    def _params(self, case):
        return {k: case[k] for k in ("stride", "padding", "dilation", "groups") if k in case}

    def baselines(self):
        what = f"torch.nn.grad.{self.torch_grad} (aten.convolution_backward"
        return [torch_baseline(self.name, "cpu", what + ": oneDNN)", self._torch_gradient),
                torch_baseline(self.name, "gpu", what + ": cuDNN, TF32 off)", self._torch_gradient)]

    def _torch_gradient(self, ts, params):
        """(run, result) of the baselines: torch.nn.grad's function on the tensors ``ts``."""
        import torch
        fn, args = getattr(torch.nn.grad, self.torch_grad), self._torch_args(ts, params)
        conv = {k: params[k] for k in ("stride", "padding", "dilation", "groups")}
        return keeping(lambda: fn(*args, **conv))

    def _torch_args(self, ts, params) -> tuple:
        """The positional arguments of torch.nn.grad's function: the output's shape in place of
        the input it is the gradient of."""
        raise NotImplementedError

    def _dy_shape(self, case):
        p = self.normalize(self._params(case))
        return (case["N"], case["K"]) + output_size(case["H"], case["W"], case["R"], case["S"],
                                                    p["stride"], p["padding"], p["dilation"])

    # --- compiled kernels -------------------------------------------------------------------
    dims_fields = GEOMETRY_FIELDS  # ConvGradShape (kernels/conv2d_backward.h)

    def dims(self, problem):
        """The same for both gradients: x's shape and w's are an array of one and a parameter of
        the other (x_shape, w_shape)."""
        p, infos = problem.params, problem.infos
        return geometry_dims(p["x_shape"] if "x_shape" in p else infos["x"].shape,
                             p["w_shape"] if "w_shape" in p else infos["w"].shape, infos["dy"].shape[2:], p)


class Conv2dBackwardInputSpec(_Conv2dBackwardSpec):
    name = "conv2d_backward_input"
    rank = 50
    inputs = ("dy", "w")
    shape_param = "x_shape"
    torch_grad = "conv2d_input"

    def validate(self, infos, params):
        dy, w = infos["dy"], infos["w"]
        check_rank(dy, 4, "dy: (N, K, P, Q)")
        check_rank(w, 4, "w: (K, C//groups, R, S)")
        x_shape = _shape4(params.get("x_shape"), "x_shape", "(N, C, H, W)")
        p = self.normalize(params)
        self.check_geometry(x_shape, w.shape, dy, p, ("x_shape", "w"))
        return x_shape, self.same_dtype(infos), {"x_shape": x_shape, **p}

    def output_from(self, infos, params):
        return f"x_shape={params['x_shape']}"

    def reference(self, arrays, params):
        return reference_input(arrays["dy"], arrays["w"], **params)

    def magnitude(self, arrays, params):
        return reference_input(np.abs(arrays["dy"]), np.abs(arrays["w"]), **params)

    def make_inputs(self, case, dtype, rng):
        g = case.get("groups", 1)
        arrays = {"dy": random_array(rng, self._dy_shape(case), dtype),
                  "w": random_array(rng, (case["K"], case["C"] // g, case["R"], case["S"]), dtype)}
        return arrays, {"x_shape": (case["N"], case["C"], case["H"], case["W"]), **self._params(case)}

    def bytes_moved(self, case, itemsize):
        n, k, p, q = self._dy_shape(case)
        w = case["K"] * (case["C"] // case.get("groups", 1)) * case["R"] * case["S"]
        return float(itemsize * (n * k * p * q + w + case["N"] * case["C"] * case["H"] * case["W"]))

    def _torch_args(self, ts, params):
        return params["x_shape"], ts["w"], ts["dy"]


class Conv2dBackwardWeightSpec(_Conv2dBackwardSpec):
    name = "conv2d_backward_weight"
    rank = 51
    inputs = ("x", "dy")
    shape_param = "w_shape"
    torch_grad = "conv2d_weight"

    def validate(self, infos, params):
        x, dy = infos["x"], infos["dy"]
        check_rank(x, 4, "x: (N, C, H, W)")
        check_rank(dy, 4, "dy: (N, K, P, Q)")
        w_shape = _shape4(params.get("w_shape"), "w_shape", "(K, C//groups, R, S)")
        p = self.normalize(params)
        self.check_geometry(x.shape, w_shape, dy, p, ("x", "w_shape"))
        return w_shape, self.same_dtype(infos), {"w_shape": w_shape, **p}

    def output_from(self, infos, params):
        return f"w_shape={params['w_shape']}"

    def reference(self, arrays, params):
        return reference_weight(arrays["x"], arrays["dy"], **params)

    def magnitude(self, arrays, params):
        return reference_weight(np.abs(arrays["x"]), np.abs(arrays["dy"]), **params)

    def make_inputs(self, case, dtype, rng):
        g = case.get("groups", 1)
        arrays = {"x": random_array(rng, (case["N"], case["C"], case["H"], case["W"]), dtype),
                  "dy": random_array(rng, self._dy_shape(case), dtype)}
        return arrays, {"w_shape": (case["K"], case["C"] // g, case["R"], case["S"]), **self._params(case)}

    def bytes_moved(self, case, itemsize):
        n, k, p, q = self._dy_shape(case)
        w = case["K"] * (case["C"] // case.get("groups", 1)) * case["R"] * case["S"]
        return float(itemsize * (case["N"] * case["C"] * case["H"] * case["W"] + n * k * p * q + w))

    def _torch_args(self, ts, params):
        return ts["x"], params["w_shape"], ts["dy"]


SPECS = (Conv2dBackwardInputSpec(), Conv2dBackwardWeightSpec())
