"""Every registered variant x dtype x test case against the float64 NumPy reference.

Generated from the registry: a new variant is tested by registering it. Outputs are poisoned
with NaN before each run, so an element a kernel never writes fails the comparison.
"""
import numpy as np
import pytest
from conftest import on_simulator, require_backend, seed_for

import pykern as pk
from pykern._check import run_case
from pykern._dispatch import Unsupported
from pykern._registry import BACKENDS
from pykern.ops import SPECS
from pykern.ops.relu import reference as relu_reference


def _cases():
    for v in pk.variants():
        spec = SPECS[v.op]
        sim = on_simulator(v.backend)
        for dtype in v.dtypes:
            for i, case in enumerate(spec.test_cases(v.backend, simulator=sim)):
                # Numba's simulator (a Python thread per CUDA thread) is a third of CI's time: there a
                # float64 build of a kernel runs every other case. Every case still runs in float32,
                # and float64 in the same kernel source on a spread of shapes, edge cases among them.
                if sim and v.backend == "numba" and dtype == "float64" and i % 2 and len(v.dtypes) > 1:
                    continue
                yield pytest.param(v, dtype, case, id=f"{v.key}-{dtype}-{spec.case_id(case)}")


@pytest.mark.parametrize("variant,dtype,case", list(_cases()))
def test_matches_reference(variant, dtype, case):
    require_backend(variant.backend)
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="NumPy has no bfloat16 without ml_dtypes")
    try:
        cmp = run_case(variant, case, dtype, seed_for(variant.key, dtype, case))
    except Unsupported as e:
        pytest.skip(str(e))
    assert cmp.ok, cmp.message()


@pytest.mark.parametrize("variant", pk.variants("relu"), ids=lambda v: v.key)
def test_relu_exact_with_specials(variant):
    """ReLU is exact: equal to the reference, NaN/Inf/-0.0 included, at a length that leaves a
    vector tail (the sign of a zero result is not specified, as in torch)."""
    require_backend(variant.backend)
    for dtype in variant.dtypes:
        x = np.random.default_rng(seed_for(variant.key, dtype)).standard_normal(37).astype(dtype)
        x[[0, 5, 17, 36]] = [np.nan, np.inf, -np.inf, -0.0]
        y = pk.relu(x, backend=variant.backend, variant=variant.name)
        ref = relu_reference(x)
        assert y.dtype == x.dtype
        assert np.array_equal(y, ref, equal_nan=True), f"{dtype}: {y} != {ref}"


@pytest.mark.parametrize("variant", pk.variants("relu"), ids=lambda v: v.key)
def test_relu_in_place(variant):
    require_backend(variant.backend)
    dtype = variant.dtypes[-1]
    x = np.random.default_rng(seed_for("inplace", variant.key)).standard_normal((3, 41)).astype(dtype)
    expected = np.maximum(x, 0)
    y = pk.relu(x, backend=variant.backend, variant=variant.name, out=x)
    assert y is x
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_variant_runs(backend):
    require_backend(backend)
    x = np.random.default_rng(1).standard_normal(100).astype(np.float32)
    np.testing.assert_array_equal(pk.relu(x, backend=backend), np.maximum(x, 0))
