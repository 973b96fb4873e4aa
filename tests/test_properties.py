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


# The largest stride or dilation the ops take (pykern/ops/conv2d.py: INDEX_LIMIT).
HUGE = 2**31 - 1
# The geometry classes of a conv2d case. Each variant runs one hypothesis search per class, so
# every class is reached on every run (drawn from one search, hypothesis's bias towards simple
# choices left the edge classes to chance, and a 1x1 stride-past-the-input crash went unseen):
#   middle          filters of 1-4 taps, strides and dilations of 1-3, padding 0-4
#   one_tap         1x1 filters and no padding (a ResNet projection); stride 1, 2-3, or past the
#                   input up to 2^31 - 1; a dilation (which selects nothing) up to 2^31 - 1
#   past_the_input  strides at least the input's size, up to 2^31 - 1: one output per axis
#   one_output      small strides, and inputs that end before the second window starts
#   rows_unread     strides of 2-4 that do not divide the span: the last rows reach no output
#                   (for the gradients: x_shape and w_shape with rows that no dy element reads)
#   mixed           each axis of its own class
#   winograd        3x3, stride 1, dilation 1: the only class the Winograd variants take
AXIS_KINDS = ("middle", "one_tap", "past_the_input", "one_output", "rows_unread")
CONV_KINDS = AXIS_KINDS + ("mixed", "winograd")


def conv_axis(draw, limit, kind):
    """One spatial axis of a conv2d case of ``kind`` (one of AXIS_KINDS): (input size, filter
    taps, stride, padding, dilation)."""
    if kind == "winograd":
        padding = draw(st.integers(0, 4))
        return draw(st.integers(max(1, 3 - 2 * padding), limit + 4)), 3, 1, padding, 1
    taps = 1 if kind == "one_tap" else draw(st.integers(1, 4))
    dilation = draw(st.one_of(st.integers(1, 3), st.just(HUGE))) if taps == 1 else draw(st.integers(1, 3))
    padding = 0 if kind == "one_tap" else draw(st.integers(0, 4))
    span = dilation * (taps - 1) + 1  # input rows one output reads
    smallest = max(1, span - 2 * padding)  # the smallest input with an output
    size = draw(st.integers(smallest, max(smallest, limit + 4)))
    if kind == "one_tap":
        stride = draw(st.one_of(st.just(1), st.integers(size, HUGE), st.integers(2, 3)))
    elif kind == "past_the_input":
        stride = draw(st.integers(size, HUGE))
    elif kind == "one_output":
        stride = draw(st.integers(1, 3))
        size = smallest + draw(st.integers(0, stride - 1))
    elif kind == "rows_unread":
        stride = draw(st.integers(2, 4))
        if (size + 2 * padding - span) % stride == 0:
            size += 1
    else:
        stride = draw(st.integers(1, 3))
    return size, taps, stride, padding, dilation


def conv2d_case(draw, limit, kind):
    """x, w, bias shapes and conv2d's parameters for a case of geometry class ``kind``."""
    g = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, max(1, limit // 2))), draw(st.integers(1, max(1, limit // 2)))
    kinds = [draw(st.sampled_from(AXIS_KINDS)) for _ in range(2)] if kind == "mixed" else [kind, kind]
    (h, r, sh, ph, dh), (w, s, sw, pw, dw) = (conv_axis(draw, limit, k) for k in kinds)
    n = draw(st.integers(1, 3))
    shapes = {"x": (n, g * cg, h, w), "w": (g * kg, cg, r, s), "bias": (g * kg,) if draw(st.booleans()) else None}
    params = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=g,
                  activation=draw(st.sampled_from([None, "relu"])))
    return shapes, params


def conv2d_backward_case(draw, limit, op, kind):
    """A conv2d case of class ``kind``, as the gradient ``op`` sees it."""
    from pykern.ops.conv2d import output_size
    shapes, params = conv2d_case(draw, limit, kind)
    x, w = shapes["x"], shapes["w"]
    dy = (x[0], w[0]) + output_size(x[2], x[3], w[2], w[3], params["stride"], params["padding"], params["dilation"])
    params = {k: params[k] for k in ("stride", "padding", "dilation", "groups")}
    if op == "conv2d_backward_input":
        return {"dy": dy, "w": w}, dict(params, x_shape=x)
    return {"x": x, "dy": dy}, dict(params, w_shape=w)


def _runs():
    """(variant, geometry class) for every registered variant: one class per run for the conv2d
    ops (the Winograd variants take only theirs), None for the others."""
    for v in variants():
        if not v.op.startswith("conv2d"):
            yield pytest.param(v, None, id=v.key)
            continue
        for kind in ("winograd",) if v.error_model == "tile" else CONV_KINDS:
            yield pytest.param(v, kind, id=f"{v.key}-{kind}")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN/Inf data, on purpose
@pytest.mark.parametrize("variant, geometry", _runs())
def test_matches_reference_on_any_input(variant, geometry):
    require_backend(variant.backend)
    examples, limit = _budget(variant.backend)
    if geometry is not None:  # the conv2d ops' examples are shared out among the classes
        examples = max(2, examples // 3)
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
            shapes, params = conv2d_backward_case(draw, limit, variant.op, geometry)
        else:
            shapes, params = conv2d_case(draw, limit, geometry)
        dtype = draw(st.sampled_from(variant.dtypes))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        arrays = {name: None if shape is None else make_array(rng, draw(st.sampled_from(kinds)), shape, dtype)
                  for name, shape in shapes.items()}
        try:
            cmp = run_arrays(variant, arrays, params)
        except Unsupported:
            return  # a valid input this variant declines (its reason is tested elsewhere)
        RAN[variant.key, geometry] += 1
        assert cmp.ok, f"{variant.key} {params} {[(k, None if a is None else a.shape) for k, a in arrays.items()]}\n" \
                       f"{cmp.message()}"

    run()
    assert RAN[variant.key, geometry] > 0, f"{variant.key} declined every generated case"
    print(f"\n{variant.key} {geometry or ''}: {RAN[variant.key, geometry]} cases checked")
