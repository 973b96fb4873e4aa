"""conv2d: torch.nn.functional.conv2d semantics, NCHW.

x: (N, C, H, W), w: (K, C//groups, R, S), bias: (K,) or None -> y: (N, K, P, Q) with
P = (H + 2*pad_h - dil_h*(R-1) - 1) // stride_h + 1 (Q likewise).
``activation="relu"`` applies max(., 0) after the bias (a fused epilogue where the variant has one).

y has the inputs' dtype, float16/bfloat16 included (unlike matmul, whose 16-bit inputs give
float32), as torch's conv2d gives; the tensor-core variant accumulates in float32 and rounds y once.
"""
from __future__ import annotations

import re

import numpy as np

from ._baselines import keeping, torch_baseline
from ._spec import OpSpec, check_rank, random_array, sizes_at_least_one

# The epilogue applied after bias: None, or "relu" (fused into the kernel where a variant can).
ACTIVATIONS = (None, "relu")


# Every size, stride, dilation and padding, and the padded input's extent, must stay below 2^31:
# the GPU kernels index in 32 bits, and the CPU variants' strided views multiply these numbers.
INDEX_LIMIT = 2**31 - 1


def pair(value, name: str, minimum: int) -> tuple:
    """An int or a pair of ints in [minimum, INDEX_LIMIT] -> (h, w); ValueError naming the
    parameter otherwise."""
    kind = type(value)  # the common cases first, exactly: a bool is neither, and takes the long way
    if kind is int and minimum <= value <= INDEX_LIMIT:
        return (value, value)
    if (kind is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int
            and minimum <= min(value) and max(value) <= INDEX_LIMIT):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in value)):
        v = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if min(v) < minimum or max(v) > INDEX_LIMIT:
        raise ValueError(f"{name}: every entry must be in [{minimum}, 2^31 - 1], got {value!r}")
    return v


def output_size(h, w, r, s, stride, padding, dilation) -> tuple:
    p = (h + 2 * padding[0] - dilation[0] * (r - 1) - 1) // stride[0] + 1
    q = (w + 2 * padding[1] - dilation[1] * (s - 1) - 1) // stride[1] + 1
    return p, q


def checked_output_size(x_shape, w_shape, p: dict, padding_shown, names=("x", "w")) -> tuple:
    """(P, Q) for x: (N, C, H, W), w: (K, Cg, R, S) and normalized parameters ``p``; ValueError
    when the input or the padded input leaves int32, or the output is empty, naming the arguments
    as the caller passed them: ``names`` says which gave x and w (an array, or x_shape/w_shape),
    ``padding_shown`` is the padding as given."""
    (_, _, h, wd), (_, _, r, s) = x_shape, w_shape
    xn, wn = names
    for axis, size, pad in (("height H", h, p["padding"][0]), ("width W", wd, p["padding"][1])):
        if size > INDEX_LIMIT:
            raise ValueError(f"{xn}: its {axis} = {size} must stay below 2^31 (the kernels index rows and "
                             f"columns in 32 bits); got {xn}: (N, C, H, W) = {tuple(x_shape)}")
        if size + 2 * pad > INDEX_LIMIT:
            raise ValueError(f"padding: the padded input ({axis} + 2*padding = {size} + 2*{pad}) must "
                             f"stay below 2^31, got padding={padding_shown!r}")
    pq = output_size(h, wd, r, s, p["stride"], p["padding"], p["dilation"])
    if min(pq) < 1:
        (ph, pw), (dh, dw) = p["padding"], p["dilation"]
        raise ValueError(f"{xn}: (N, C, H, W) = {tuple(x_shape)} and {wn}: (K, C//groups, R, S) = {tuple(w_shape)} "
                         f"leave no output: the filter spans {dh * (r - 1) + 1}x{dw * (s - 1) + 1} input pixels "
                         f"({r}x{s} taps, dilation {p['dilation']}), more than the padded input's "
                         f"{h + 2 * ph}x{wd + 2 * pw} ({h}x{wd}, padding {p['padding']})")
    return pq


# A convolution's geometry as the compiled kernels take it (the first fields of ConvShape and all
# of ConvGradShape, kernels/conv2d.h and conv2d_backward.h), for conv2d and both its gradients.
GEOMETRY_FIELDS = ("N", "C", "H", "W", "K", "R", "S", "P", "Q", "sh", "sw", "ph", "pw", "dh", "dw", "groups")


def geometry_dims(x_shape, w_shape, pq, params: dict) -> tuple:
    """GEOMETRY_FIELDS' values: x: (N, C, H, W), w: (K, C//groups, R, S), (P, Q), normalized params."""
    n, c, h, w = x_shape
    k, _, r, s = w_shape
    return (n, c, h, w, k, r, s, *pq, *params["stride"], *params["padding"], *params["dilation"], params["groups"])


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
    p, q = output_size(h, wd, r, s, stride, padding, dilation)
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


# DeepBench ResNet conv layers as (H=W, C, K, R=S, pad, stride): the four 3x3 stages, the 1x1
# expansion and the 7x7/2 first layer.
RESNET_LAYERS = [(56, 64, 64, 3, 1, 1), (28, 128, 128, 3, 1, 1), (14, 256, 256, 3, 1, 1),
                 (7, 512, 512, 3, 1, 1), (56, 64, 256, 1, 0, 1), (224, 3, 64, 7, 3, 2)]


def layer_case(n: int, hw: int, c: int, k: int, rs: int, pad: int, stride: int) -> dict:
    """The case of a square layer: batch n, an hw x hw input of c channels, k filters rs x rs."""
    return dict(N=n, C=c, H=hw, W=hw, K=k, R=rs, S=rs, padding=pad, stride=stride)


# A case id as Conv2dSpec.case_id prints it, and its suffixes' parameters.
_CASE_ID = re.compile(r"^N(\d+)C(\d+)H(\d+)W(\d+)K(\d+)R(\d+)S(\d+)((?:_[a-z]+[0-9x]*)*)$")
_SUFFIX = {"s": "stride", "p": "padding", "d": "dilation"}


class ConvLayerSpec(OpSpec):
    """What conv2d and its gradients share in the benchmarks: ResNet layers as cases, the
    --sizes grammar (a layer size or a case id), and plots that show each layer apart."""

    x_label = "ResNet layer: input HxW, C in > K out channels, filter RxS, /stride"
    categorical = True  # unrelated layers: markers only, never a line between them

    def bench_cases(self, device):
        # A batch of one on the CPU keeps the CPU sweep short; eight images fill a GPU.
        return [layer_case(1 if device == "cpu" else 8, *layer) for layer in RESNET_LAYERS]

    def compare_cases(self):
        # Wide enough to contain the size where the GPU starts to win, copies counted or not.
        return [layer_case(1, hw, 64, 64, 3, 1, 1) for hw in (7, 14, 28, 56, 112)]

    def size_forms(self):
        return ("56 or 2^6 (a 3x3, 64->64, pad-1 layer on a 1x64x56x56 input), or a case id as the tables "
                "print it, such as N8C64H56W56K64R3S3_p1x1 (suffixes _sHxW, _pHxW, _dHxW, _gG, _relu, _bias)")

    def parse_size(self, token):
        dims = ("N", "C", "H", "W", "K", "R", "S")
        if re.fullmatch(r"\d+", token):
            return sizes_at_least_one(layer_case(1, int(token), 64, 64, 3, 1, 1), token, dims)
        m = _CASE_ID.fullmatch(token)
        if not m:
            return None
        case = dict(zip(dims, map(int, m.groups()[:7])))
        for part in filter(None, m.group(8).split("_")):
            if part == "relu":
                case["activation"] = "relu"
            elif part == "bias":
                case["bias"] = True
            elif part[0] == "g" and part[1:].isdigit():
                case["groups"] = int(part[1:])
            elif part[0] in _SUFFIX and re.fullmatch(r"\d+x\d+", part[1:]):
                case[_SUFFIX[part[0]]] = tuple(int(v) for v in part[1:].split("x"))
            else:
                return None
        return sizes_at_least_one(case, token, dims)

    def tick_label(self, case):
        st = case.get("stride", 1)
        st = st if isinstance(st, int) else st[0]
        return (f"{case['H']}x{case['W']} C{case['C']}>K{case['K']}\n{case['R']}x{case['S']}"
                + (f" /{st}" if st != 1 else "") + (f" N{case['N']}" if case["N"] != 1 else ""))


class Conv2dSpec(ConvLayerSpec):
    name = "conv2d"
    rank = 30
    inputs = ("x", "w", "bias")
    optional = ("bias",)

    def normalize(self, params):
        groups = params.get("groups", 1)
        if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or not 1 <= groups <= INDEX_LIMIT:
            raise ValueError(f"groups: expected an int in [1, 2^31 - 1], got {groups!r}")
        activation = params.get("activation")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
        return {"stride": pair(params.get("stride", 1), "stride", 1),
                "padding": pair(params.get("padding", 0), "padding", 0),
                "dilation": pair(params.get("dilation", 1), "dilation", 1),
                "groups": int(groups), "activation": activation}

    def validate(self, infos, params):
        x, w, bias = infos["x"], infos["w"], infos.get("bias")
        check_rank(x, 4, "x: (N, C, H, W)")
        check_rank(w, 4, "w: (K, C//groups, R, S)")
        check_rank(bias, 1, "bias: (K,)")
        p = self.normalize(params)
        n, c, h, wd = x.shape
        k, cg, r, s = w.shape
        g = p["groups"]
        if c % g or k % g:
            raise ValueError(f"groups={g} must divide both C={c} (x) and K={k} (w)")
        if cg * g != c:
            raise ValueError(f"w: (K, C//groups, R, S) = {w.shape} expects C//groups = {c // g} "
                             f"for x: (N, C, H, W) = {x.shape} and groups={g}, got {cg}")
        if bias is not None and bias.shape != (k,):
            raise ValueError(f"bias: expected shape ({k},) (one per output channel), got {bias.shape}")
        pq = checked_output_size(x.shape, w.shape, p, params.get("padding", 0))
        dtype = self.same_dtype(infos)
        return (n, k) + pq, dtype, p

    def output_from(self, infos, params):
        return (f"x: (N, C, H, W) = {infos['x'].shape}, w: (K, C//groups, R, S) = {infos['w'].shape} and "
                f"padding={params['padding']} (P and Q grow with the padded input)")

    def reference(self, arrays, params):
        return reference(arrays["x"], arrays["w"], arrays.get("bias"), **params)

    def magnitude(self, arrays, params):
        b = arrays.get("bias")
        # The activation only shrinks errors, so the bound of the plain convolution holds.
        return reference(np.abs(arrays["x"]), np.abs(arrays["w"]),
                         None if b is None else np.abs(b), **(params | {"activation": None}))

    def make_inputs(self, case, dtype, rng):
        g = case.get("groups", 1)
        arrays = {"x": random_array(rng, (case["N"], case["C"], case["H"], case["W"]), dtype),
                  "w": random_array(rng, (case["K"], case["C"] // g, case["R"], case["S"]), dtype),
                  "bias": random_array(rng, (case["K"],), dtype) if case.get("bias") else None}
        params = {k: case[k] for k in ("stride", "padding", "dilation", "groups", "activation") if k in case}
        return arrays, params

    def test_cases(self, backend, simulator=False):
        def c(n, ch, h, w, k, r, s, **kw):
            return dict(N=n, C=ch, H=h, W=w, K=k, R=r, S=s, **kw)
        if simulator:
            # K = 2 here: the Numba simulator's weight gradient runs a block of threads per element
            # of dw (K = 4 took ~5 s a case); the cases below have K = 3 and 4
            return [c(1, 1, 5, 5, 1, 3, 3), c(2, 3, 7, 6, 2, 3, 3, padding=1, bias=True),
                    c(1, 2, 9, 9, 3, 3, 3, stride=2, padding=1), c(1, 2, 8, 7, 2, 2, 3, dilation=2),
                    c(1, 4, 6, 6, 4, 3, 3, groups=2, padding=1, bias=True), c(1, 2, 5, 5, 3, 1, 1),
                    c(1, 3, 6, 5, 4, 3, 3, padding=1, bias=True, activation="relu"),
                    c(1, 2, 4, 3, 3, 1, 1, stride=(4, 1))]  # 1x1, stride past the input
        return [
            c(1, 1, 1, 1, 1, 1, 1), c(2, 3, 7, 6, 4, 3, 3, padding=1, bias=True),
            c(1, 3, 15, 15, 8, 7, 7, stride=2, padding=3), c(2, 4, 11, 13, 5, 3, 3, dilation=2),
            c(1, 8, 9, 9, 6, 3, 2, padding=(1, 0), stride=(1, 2), bias=True),
            c(2, 6, 10, 10, 9, 3, 3, groups=3, padding=1, bias=True),
            c(1, 16, 14, 14, 32, 1, 1), c(1, 5, 3, 3, 7, 3, 3), c(3, 1, 17, 19, 1, 5, 5, padding=2),
            c(2, 64, 28, 28, 64, 3, 3, padding=1, bias=True), c(1, 8, 16, 16, 8, 3, 3, groups=8, padding=1),
            c(2, 16, 12, 12, 24, 3, 3, padding=1, bias=True, activation="relu"),
            c(1, 3, 32, 32, 16, 7, 7, stride=2, padding=3, activation="relu"),
            c(1, 4, 5, 3, 6, 1, 1, stride=(5, 1), bias=True),  # 1x1, stride past the input: one output row
        ]

    def demo_case(self, simulator=False):
        if simulator:
            return dict(N=1, C=2, H=8, W=8, K=2, R=3, S=3, padding=1)
        return dict(N=8, C=64, H=56, W=56, K=64, R=3, S=3, padding=1)

    def _dims(self, case):
        p = self.normalize(case)
        pq = output_size(case["H"], case["W"], case["R"], case["S"], p["stride"], p["padding"], p["dilation"])
        return p, pq

    def flops(self, case):
        p, (pp, qq) = self._dims(case)
        return 2.0 * case["N"] * case["K"] * pp * qq * (case["C"] // p["groups"]) * case["R"] * case["S"]

    def bytes_moved(self, case, itemsize):
        p, (pp, qq) = self._dims(case)
        x = case["N"] * case["C"] * case["H"] * case["W"]
        w = case["K"] * (case["C"] // p["groups"]) * case["R"] * case["S"]
        return float(itemsize * (x + w + case["N"] * case["K"] * pp * qq))

    def case_id(self, case):
        p = self.normalize(case)
        s = f"N{case['N']}C{case['C']}H{case['H']}W{case['W']}K{case['K']}R{case['R']}S{case['S']}"
        for key, default in (("stride", (1, 1)), ("padding", (0, 0)), ("dilation", (1, 1))):
            if p[key] != default:
                s += f"_{key[0]}{p[key][0]}x{p[key][1]}"
        if p["groups"] != 1:
            s += f"_g{p['groups']}"
        if p["activation"]:
            s += f"_{p['activation']}"
        return s + ("_bias" if case.get("bias") else "")

    def baselines(self):
        return [torch_baseline(self.name, "cpu", "torch F.conv2d on the CPU (oneDNN)", _torch_conv2d),
                torch_baseline(self.name, "gpu", "torch F.conv2d: cuDNN, TF32 off, autotuned", _torch_conv2d)]

    def gpu_workspace(self, case, out_shape):
        p, q = out_shape[2:]  # cuda im2col_gemm's col of one image: (C*R*S, P*Q) float32
        return 4 * case["C"] * case["R"] * case["S"] * p * q

    # --- compiled kernels -------------------------------------------------------------------
    dims_fields = GEOMETRY_FIELDS + ("relu",)  # ConvShape (kernels/conv2d.h)

    def dims(self, problem):
        p = problem.params
        return geometry_dims(problem.infos["x"].shape, problem.infos["w"].shape, problem.out_shape[2:], p) + (
            int(p["activation"] == "relu"),)


def _torch_conv2d(ts, params):
    import torch
    fn = torch.nn.functional.conv2d

    def run():
        y = fn(ts["x"], ts["w"], ts.get("bias"), stride=params["stride"], padding=params["padding"],
               dilation=params["dilation"], groups=params["groups"])
        return torch.relu_(y) if params["activation"] == "relu" else y
    return keeping(run)


SPEC = Conv2dSpec()
