"""What a user sees for input the ops refuse or find hostile, named regression tests for the
messages of issue 21: each says what was passed and what to do, without contradicting itself."""
import warnings

import numpy as np
import pytest

import pykern as pk


def test_bfloat16_on_the_cpu_names_what_the_cpu_takes():
    """relu takes float16 on the CPU: the hint must not say 'float32 or float64' after listing it."""
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes not installed (pip install '.[test]')")
    with pytest.raises(TypeError) as e:
        pk.relu(np.ones(3, ml_dtypes.bfloat16))
    msg = str(e.value)
    assert msg.startswith("x: variant relu/numpy/maximum takes float16, float32, float64; got bfloat16")
    assert "NumPy has no bfloat16 arithmetic, and the CPU computes relu in float16, float32 or float64" in msg
    with pytest.raises(TypeError, match=r"the CPU computes matmul in float32 or float64: pass a.astype"):
        pk.matmul(np.ones((2, 2), np.float16), np.ones((2, 2), np.float16))


def test_an_unsupported_dtype_is_named_before_the_mismatch():
    """int64 x with float32 w said only that the dtypes differ."""
    with pytest.raises(TypeError, match=r"^x: dtype int64 is not supported; expected one of float16, float32"):
        pk.conv2d(np.ones((1, 1, 3, 3), np.int64), np.ones((1, 1, 1, 1), np.float32))
    with pytest.raises(TypeError, match=r"^w has dtype float64 but x has float32; all inputs must share one dtype"):
        pk.conv2d(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 1, 1), np.float64))


def test_a_numpy_scalar_is_named_as_such():
    """np.float32(3) was refused with '... got float32', which reads like a dtype complaint."""
    with pytest.raises(TypeError, match=r"^x: expected an array, got a NumPy scalar \(float32\); pass np.asarray\(x\)"):
        pk.relu(np.float32(3))
    assert pk.relu(np.asarray(np.float32(-3))) == 0


def test_nan_and_inf_inputs_raise_no_numpy_warnings():
    """0 * Inf is NaN by the spec, as in torch, which stays silent: NumPy warned 'invalid value
    encountered in matmul' for conv2d, its gradients and matmul on the CPU."""
    x = np.ones((2, 3, 4, 4), np.float32)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    w = np.ones((3, 3, 3, 3), np.float32)
    w[0, 0, 0, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = pk.conv2d(x, w, padding=1)
        pk.conv2d_backward_input(y, w, x.shape, padding=1)
        pk.conv2d_backward_weight(x, y, w.shape, padding=1)
        pk.matmul(x.reshape(8, 12), np.ascontiguousarray(x.reshape(8, 12).T))
    assert np.isnan(y).any() and np.isinf(y).any()
    with np.errstate(invalid="raise"):  # the caller's own settings hold outside pykern's calls
        with pytest.raises(FloatingPointError):
            np.float32(np.inf) * np.float32(0)


def test_the_public_namespace_holds_only_pykern():
    """`from __future__ import annotations` left `pk.annotations` behind."""
    assert "annotations" not in dir(pk)
    assert set(pk.__all__) <= set(dir(pk))


def test_a_check_of_nothing_is_refused():
    """pk.check(..., trials=0) printed 'PASS: 0 checked'."""
    for trials in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"^trials: expected an int >= 1"):
            pk.check("relu", "numpy", "maximum", trials=trials)
    with pytest.raises(ValueError, match=r"^cases: expected at least one case"):
        pk.check("relu", "numpy", "maximum", cases=[])
    assert pk.check("relu", "numpy", "maximum", trials=1)


def test_a_check_whose_every_case_is_declined_fails():
    """Winograd takes only 3x3 filters: a check on a 1x1 case checked nothing, and says so
    instead of passing."""
    case = dict(N=1, C=2, H=6, W=6, K=2, R=1, S=1)
    report = pk.check("conv2d", "numpy", "winograd_2x2", trials=1, cases=[case])
    assert not report.passed
    assert "FAIL: 0 checked" in report.summary() and "nothing was checked" in report.summary()
    assert pk.check("conv2d", "numpy", "winograd_2x2", trials=1, cases=[dict(case, R=3, S=3, padding=1)])
