"""Property-based differential tests: every registered variant, on random shapes and parameters
and on hostile data, against the float64 reference under the one tolerance policy.

Data kinds (each array draws its own): standard normal; spiky (a few entries 10^3..10^6 times
larger); wide (magnitudes spread over 6 decades, random signs); all-positive; small integers
(zeros included, never all of them); non-finite (a few NaN / +Inf / -Inf among normal values);
and one-scale (|v| in [0.5, 2]). Variants whose error follows their own terms
(``error_model == "terms"``, every default among them) must pass on all of them, NaN/Inf
pattern included; Winograd's error follows its tile (see pykern/cpu/conv2d.py), so it is held
to the tolerance on one-scale data only, as its docstring says.

Examples are derandomized (reproducible in CI) and bounded per backend: the Numba simulator runs
a Python thread per CUDA thread, so its shapes are tiny and its examples few. Every example that
ran is counted per variant; tests/test_properties.py -s prints the counts.
"""
from collections import Counter

import numpy as np
import pytest
from conftest import on_simulator, require_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykern._check import run_arrays
from pykern._dispatch import Unsupported
from pykern._registry import variants

KINDS = ("normal", "spiky", "wide", "positive", "ints", "nonfinite")
ONE_SCALE = ("one_scale",)
# (examples per variant, largest size of a dimension that sums)
BUDGET = {"numpy": (60, 24), "numba": (8, 6), "numba_sim": (8, 6), "cuda": (60, 40), "cuda_sim": (12, 9)}
RAN = Counter()


def _budget(backend):
    sim = on_simulator(backend) or (backend == "cuda" and _cuda_sim())
    return BUDGET[f"{backend}_sim" if sim else backend]


def _cuda_sim():
    import os
    return os.environ.get("PYKERN_CUDA_SIM", "0") not in ("", "0")


def make_array(rng, kind, shape, dtype):
    """Seeded values of ``kind`` in ``dtype``, within its range (float16 spikes stay finite)."""
    small = dtype in ("float16", "bfloat16")
    if kind == "normal":
        v = rng.standard_normal(shape)
    elif kind == "spiky":
        v = rng.standard_normal(shape)
        flat = v.reshape(-1)
        for i in rng.integers(0, flat.size, size=min(3, flat.size)):
            flat[i] *= 10.0 ** rng.uniform(2 if small else 3, 3 if small else 6)
    elif kind == "wide":
        v = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-2 if small else -3, 2 if small else 3, shape)
    elif kind == "positive":
        v = rng.uniform(0.1, 10.0, shape)
    elif kind == "ints":
        v = rng.integers(-3, 4, shape).astype(np.float64)
        if not v.any():
            v.reshape(-1)[0] = 1.0
    elif kind == "nonfinite":
        v = rng.standard_normal(shape)
        flat = v.reshape(-1)
        for i in rng.integers(0, flat.size, size=min(2, flat.size)):
            flat[i] = rng.choice([np.nan, np.inf, -np.inf])
    elif kind == "one_scale":
        v = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    else:
        raise ValueError(kind)
    if dtype == "bfloat16":
        import ml_dtypes
        return v.astype(ml_dtypes.bfloat16)
    return v.astype(dtype)


# --- cases per op: (arrays' shapes, params) ---------------------------------------------------
def relu_case(draw, limit):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, limit), min_size=rank, max_size=rank)))
    return {"x": shape}, {}


def matmul_case(draw, limit, takes=()):
    m, n, k = (draw(st.integers(1, 3 * limit)) for _ in range(3))
    # the transpose flags, for variants that take them (the others refuse them: test_backward.py)
    ta, tb = ("transpose_a" in takes and draw(st.booleans())), ("transpose_b" in takes and draw(st.booleans()))
    return ({"a": (k, m) if ta else (m, k), "b": (n, k) if tb else (k, n)},
            {"transpose_a": ta, "transpose_b": tb})


def relu_backward_case(draw, limit):
    shapes, params = relu_case(draw, limit)
    return {"dy": shapes["x"], "x": shapes["x"]}, params


def conv2d_case(draw, limit, winograd_shape):
    g = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, max(1, limit // 2))), draw(st.integers(1, max(1, limit // 2)))
    if winograd_shape:  # 3x3, stride 1, dilation 1: what the Winograd variants run
        r = s = 3
        stride = dilation = (1, 1)
    else:
        r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 4)), draw(st.integers(0, 4)))
    h = draw(st.integers(max(1, dilation[0] * (r - 1) + 1 - 2 * padding[0]), limit + 4))
    w = draw(st.integers(max(1, dilation[1] * (s - 1) + 1 - 2 * padding[1]), limit + 4))
    n = draw(st.integers(1, 3))
    shapes = {"x": (n, g * cg, h, w), "w": (g * kg, cg, r, s), "bias": (g * kg,) if draw(st.booleans()) else None}
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=g,
                  activation=draw(st.sampled_from([None, "relu"])))
    return shapes, params


def conv2d_backward_case(draw, limit, op):
    """A conv2d case (any stride, dilation, groups), as the gradient ``op`` sees it."""
    from pykern.ops.conv2d import output_size
    shapes, params = conv2d_case(draw, limit, draw(st.booleans()))
    x, w = shapes["x"], shapes["w"]
    dy = (x[0], w[0]) + output_size(x[2], x[3], w[2], w[3], params["stride"], params["padding"], params["dilation"])
    params = {k: params[k] for k in ("stride", "padding", "dilation", "groups")}
    if op == "conv2d_backward_input":
        return {"dy": dy, "w": w}, dict(params, x_shape=x)
    return {"x": x, "dy": dy}, dict(params, w_shape=w)


def _variants():
    return [pytest.param(v, id=v.key) for v in variants()]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN/Inf data, on purpose
@pytest.mark.parametrize("variant", _variants())
def test_matches_reference_on_any_input(variant):
    require_backend(variant.backend)
    examples, limit = _budget(variant.backend)
    kinds = KINDS if variant.error_model == "terms" else ONE_SCALE

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        draw = data.draw
        if variant.op == "relu":
            shapes, params = relu_case(draw, 2 * limit)
        elif variant.op == "matmul":
            shapes, params = matmul_case(draw, limit, variant.takes)
        elif variant.op == "relu_backward":
            shapes, params = relu_backward_case(draw, 2 * limit)
        elif variant.op.startswith("conv2d_backward"):
            shapes, params = conv2d_backward_case(draw, limit, variant.op)
        else:
            shapes, params = conv2d_case(draw, limit, variant.error_model == "tile" or draw(st.booleans()))
        dtype = draw(st.sampled_from(variant.dtypes))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        arrays = {name: None if shape is None else make_array(rng, draw(st.sampled_from(kinds)), shape, dtype)
                  for name, shape in shapes.items()}
        try:
            cmp = run_arrays(variant, arrays, params)
        except Unsupported:
            return  # a valid input this variant declines (its reason is tested elsewhere)
        RAN[variant.key] += 1
        assert cmp.ok, f"{variant.key} {params} {[(k, None if a is None else a.shape) for k, a in arrays.items()]}\n" \
                       f"{cmp.message()}"

    run()
    assert RAN[variant.key] > 0, f"{variant.key} declined every generated case"
    print(f"\n{variant.key}: {RAN[variant.key]} cases checked")
