"""GPU arrays in -> the same kind out, zero-copy, for each GPU array library that is installed.

These need a real GPU; without one they are skipped with the reason.
"""
import numpy as np
import pytest
from conftest import require_backend, seed_for

import pykern as pk


def _require_real_gpu(backend):
    require_backend(backend)
    from pykern._backends import cuda_simulator_enabled, simulator_enabled
    if backend == "numba" and simulator_enabled():
        pytest.skip("numba runs in the CUDA simulator here: no real device memory to share")
    if backend == "cuda" and cuda_simulator_enabled():
        pytest.skip("cuda runs in pykern's CUDA C++ simulator here: no real device memory to share")


def _inputs(op, dtype="float32"):
    rng = np.random.default_rng(seed_for("interop", op))
    if op == "relu":
        return [rng.standard_normal((33, 17)).astype(dtype)], {}
    if op == "matmul":
        return [rng.standard_normal((37, 19)).astype(dtype), rng.standard_normal((19, 23)).astype(dtype)], {}
    return ([rng.standard_normal((2, 3, 9, 9)).astype(dtype), rng.standard_normal((4, 3, 3, 3)).astype(dtype)],
            {"padding": 1})


FNS = {"relu": pk.relu, "matmul": pk.matmul, "conv2d": pk.conv2d}


def _expected(op, arrays, params):
    return FNS[op](*arrays, backend="numpy", variant="reference", **params)


def _tol(expected):
    return dict(rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


@pytest.mark.parametrize("backend", ["cuda", "numba"])
@pytest.mark.parametrize("op", ["relu", "matmul", "conv2d"])
def test_cupy_in_cupy_out(backend, op):
    _require_real_gpu(backend)
    cupy = pytest.importorskip("cupy", reason="CuPy not installed")
    host, params = _inputs(op)
    if not pk.variants(op, backend):
        pytest.skip(f"no {op} variants on {backend} yet")
    out = FNS[op](*[cupy.asarray(a) for a in host], backend=backend, **params)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(out), _expected(op, host, params), **_tol(_expected(op, host, params)))


@pytest.mark.parametrize("backend", ["cuda", "numba"])
@pytest.mark.parametrize("op", ["relu", "matmul", "conv2d"])
def test_torch_in_torch_out(backend, op):
    _require_real_gpu(backend)
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    if not pk.variants(op, backend):
        pytest.skip(f"no {op} variants on {backend} yet")
    host, params = _inputs(op)
    out = FNS[op](*[torch.from_numpy(a).cuda() for a in host], backend=backend, **params)
    assert isinstance(out, torch.Tensor) and out.is_cuda
    exp = _expected(op, host, params)
    np.testing.assert_allclose(out.cpu().numpy(), exp, **_tol(exp))


@pytest.mark.parametrize("op", ["relu", "matmul", "conv2d"])
def test_numba_device_array_to_cuda_backend(op):
    _require_real_gpu("cuda")
    _require_real_gpu("numba")
    from numba import cuda
    if not pk.variants(op, "cuda"):
        pytest.skip(f"no {op} variants on cuda yet")
    host, params = _inputs(op)
    out = FNS[op](*[cuda.to_device(a) for a in host], backend="cuda", **params)
    assert cuda.is_cuda_array(out)
    exp = _expected(op, host, params)
    np.testing.assert_allclose(out.copy_to_host(), exp, **_tol(exp))


def test_relu_in_place_on_gpu_array():
    _require_real_gpu("cuda")
    cupy = pytest.importorskip("cupy", reason="CuPy not installed")
    host, _ = _inputs("relu")
    d = cupy.asarray(host[0])
    out = pk.relu(d, out=d)
    assert out is d
    np.testing.assert_array_equal(cupy.asnumpy(d), np.maximum(host[0], 0))


def test_relu_vectorized_misaligned_views():
    """Offsets of 1..7 elements from a 16-byte boundary, for x and y independently."""
    _require_real_gpu("cuda")
    cupy = pytest.importorskip("cupy", reason="CuPy not installed")
    rng = np.random.default_rng(seed_for("misaligned"))
    base = rng.standard_normal(300).astype(np.float16)
    d = cupy.asarray(base)
    for xo in range(0, 8):
        for yo in range(0, 8):
            n = 200 - xo
            y = cupy.full(300, cupy.nan, dtype=cupy.float16)
            pk.relu(d[xo:xo + n], out=y[yo:yo + n], variant="vectorized", backend="cuda")
            got = cupy.asnumpy(y)
            np.testing.assert_array_equal(got[yo:yo + n], np.maximum(base[xo:xo + n], 0))
            assert np.isnan(got[:yo]).all() and np.isnan(got[yo + n:]).all(), "wrote outside out"
