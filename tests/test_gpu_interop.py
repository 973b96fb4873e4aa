"""GPU arrays in -> the same kind out, zero-copy, for each GPU array library that is installed.

These need a real GPU; without one they are skipped with the reason.
"""
import numpy as np
import pytest
from conftest import require_backend, seed_for

import pykern as pk
from pykern._check import compare, tolerance_key
from pykern.ops import SPECS


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


def _assert_matches(op, host, params, got):
    """``got`` (host copy of the GPU result) against the float64 reference: the one tolerance
    policy (pykern/_check.py)."""
    spec = SPECS[op]
    names = [n for n in spec.inputs if n not in spec.optional][:len(host)]
    arrays = dict.fromkeys(spec.inputs) | {n: a.astype(np.float64) for n, a in zip(names, host)}
    p = spec.normalize(params) if op == "conv2d" else params
    cmp = compare(got, spec.reference(arrays, p), spec.magnitude(arrays, p), tolerance_key(host[0].dtype, got.dtype))
    assert cmp.ok, cmp.message()


@pytest.mark.parametrize("backend", ["cuda", "numba"])
@pytest.mark.parametrize("op", ["relu", "matmul", "conv2d"])
def test_cupy_in_cupy_out(backend, op):
    _require_real_gpu(backend)
    cupy = pytest.importorskip("cupy", reason="CuPy not installed")
    host, params = _inputs(op)
    out = FNS[op](*[cupy.asarray(a) for a in host], backend=backend, **params)
    assert isinstance(out, cupy.ndarray)
    _assert_matches(op, host, params, cupy.asnumpy(out))


@pytest.mark.parametrize("backend", ["cuda", "numba"])
@pytest.mark.parametrize("op", ["relu", "matmul", "conv2d"])
def test_torch_in_torch_out(backend, op):
    _require_real_gpu(backend)
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    host, params = _inputs(op)
    out = FNS[op](*[torch.from_numpy(a).cuda() for a in host], backend=backend, **params)
    assert isinstance(out, torch.Tensor) and out.is_cuda
    _assert_matches(op, host, params, out.cpu().numpy())


@pytest.mark.parametrize("op", ["relu", "matmul", "conv2d"])
def test_numba_device_array_to_cuda_backend(op):
    _require_real_gpu("cuda")
    _require_real_gpu("numba")
    from numba import cuda
    host, params = _inputs(op)
    out = FNS[op](*[cuda.to_device(a) for a in host], backend="cuda", **params)
    assert cuda.is_cuda_array(out)
    _assert_matches(op, host, params, out.copy_to_host())


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


def _require_torch_cuda():
    _require_real_gpu("cuda")
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    return torch


def test_torch_side_stream_orders_the_kernel_after_the_producer():
    """pykern reads torch tensors through DLPack and launches on torch's current stream: a
    kernel queued behind a long producer on a side stream reads the finished input."""
    torch = _require_torch_cuda()
    side = torch.cuda.Stream()
    host, _ = _inputs("matmul")
    with torch.cuda.stream(side):
        a = torch.from_numpy(host[0]).cuda(non_blocking=True)
        b = torch.from_numpy(host[1]).cuda(non_blocking=True)
        torch.cuda._sleep(50_000_000)  # keeps the side stream busy long after this line returns
        a.mul_(2)  # queued behind the sleep: only stream order makes the kernel see it
        c = pk.matmul(a, b, backend="cuda")
        c_host = c.cpu().numpy()  # the copy is queued on the side stream too
    _assert_matches("matmul", [2 * host[0], host[1]], {}, c_host)


def test_torch_bfloat16_cuda_tensors():
    """PyTorch's __cuda_array_interface__ refuses bfloat16; DLPack carries it."""
    torch = _require_torch_cuda()
    pytest.importorskip("ml_dtypes", reason="ml_dtypes provides NumPy's bfloat16")
    g = torch.Generator().manual_seed(seed_for("interop", "bf16"))
    a = torch.randn(37, 40, generator=g).to(torch.bfloat16)
    b = torch.randn(40, 23, generator=g).to(torch.bfloat16)
    c = pk.matmul(a.cuda(), b.cuda(), backend="cuda", variant="wmma_bf16")
    assert isinstance(c, torch.Tensor) and c.is_cuda and c.dtype == torch.float32
    a64, b64 = a.double().numpy(), b.double().numpy()
    cmp = compare(c.cpu().numpy(), a64 @ b64, np.abs(a64) @ np.abs(b64), "bfloat16")
    assert cmp.ok, cmp.message()
