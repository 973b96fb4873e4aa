"""Bad input: every case is a clear TypeError/ValueError/RuntimeError naming the argument."""
import dataclasses
import re

import numpy as np
import pytest
from conftest import require_backend

import pykern as pk
from pykern import _dispatch
from pykern._dispatch import Unsupported, call
from pykern._registry import BACKENDS
from pykern.ops import OPS

RNG = np.random.default_rng(7)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("fn,args,exc,match", [
    (pk.relu, (np.arange(5, dtype=np.int32),), TypeError, r"x: dtype int32 is not supported"),
    (pk.relu, ([1.0, -2.0],), TypeError, r"x: expected a NumPy array"),
    (pk.matmul, (f32(4), f32(4, 3)), ValueError, r"a: expected a 2-D array a: \(M, K\)"),
    (pk.matmul, (f32(4, 3), f32(4, 3)), ValueError, r"disagree on K \(3 != 4\)"),
    (pk.matmul, (f32(4, 3), f32(3, 2).astype(np.float64)), TypeError, r"b has dtype float64 but a has float32"),
    (pk.matmul, (f32(4, 3).astype(np.float16), f32(3, 2).astype(np.float16)), TypeError,
     r"variant matmul/numpy/\w+ takes float32, float64; got float16"),
    (pk.matmul, (f32(0, 3), f32(3, 2)), ValueError, r"a: empty array"),
    (pk.matmul, (f32(4, 6)[:, ::2], f32(3, 2)), ValueError, r"a is not C-contiguous"),
    (pk.matmul, (f32(4, 3)[::-1], f32(3, 2)), ValueError, r"a has negative strides"),
    (pk.relu, (f32(8)[::2],), ValueError, r"np.ascontiguousarray\(x\)"),
    (pk.conv2d, (f32(1, 2, 5, 5), f32(3, 2, 3)), ValueError, r"w: expected a 4-D array"),
    (pk.conv2d, (f32(1, 4, 5, 5), f32(3, 3, 3, 3)), ValueError, r"expects C//groups = 4"),
    (pk.conv2d, (f32(1, 2, 2, 2), f32(3, 2, 3, 3)), ValueError, r"leave no output: .* more than the padded input's"),
])
def test_bad_arrays(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args)


@pytest.mark.parametrize("kwargs,match", [
    ({"stride": 0}, r"stride: every entry must be in \[1, 2\^31 - 1\]"),
    ({"padding": -1}, r"padding: every entry must be in \[0, 2\^31 - 1\]"),
    ({"dilation": (1, 2, 3)}, r"dilation: expected an int or a pair"),
    ({"groups": 3}, r"groups=3 must divide both C=4"),
    ({"groups": 0}, r"groups: expected an int in \[1, 2\^31 - 1\]"),
    ({"activation": "gelu"}, r"activation: expected one of"),
    ({"bias": np.ones(5, np.float32)}, r"bias: expected shape \(6,\)"),
])
def test_bad_conv_params(kwargs, match):
    x, w = f32(1, 4, 6, 6), f32(6, 4, 3, 3)
    with pytest.raises(ValueError, match=match):
        pk.conv2d(x, w, **kwargs)


def test_unknown_backend_and_variant():
    x = f32(4)
    with pytest.raises(ValueError, match=r"backend: unknown backend 'tpu'"):
        pk.relu(x, backend="tpu")
    with pytest.raises(ValueError, match=r"relu has no variant 'nope' on backend 'numpy'; known: .*maximum"):
        pk.relu(x, variant="nope")
    with pytest.raises(ValueError, match=r"op: unknown op"):
        pk.variants("softmax")
    with pytest.raises(ValueError, match=r"op: unknown op"):
        pk.check("softmax", "numpy")


@pytest.mark.parametrize("name", BACKENDS)
def test_unavailable_backend_gives_reason(name, monkeypatch):
    """Every call on an unavailable backend names it and says why; where the backend is available
    here, its availability is replaced by a made-up reason (the dispatch reads only that)."""
    from pykern import _backends
    reason = pk.backends()[name].reason
    if pk.backends()[name].available:
        reason = f"made-up reason for {name}"
        real = _backends.availability
        monkeypatch.setattr(_backends, "availability",
                            lambda be: _backends.Availability(False, reason) if be == name else real(be))
        monkeypatch.setattr(_dispatch, "_PLANS", {})  # an earlier call's plan took availability as fixed
    assert reason
    expected = re.escape(f"backend '{name}' is not available: {reason}")
    with pytest.raises(RuntimeError, match=expected):
        pk.relu(f32(4), backend=name)
    with pytest.raises(RuntimeError, match=expected):
        pk.check("relu", name)


def test_out_argument_checked():
    x = f32(3, 4)
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 4\) and dtype float32"):
        pk.relu(x, out=np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"out overlaps x partially"):
        big = f32(20)
        pk.relu(big[:10], out=big[5:15])
    with pytest.raises(ValueError, match=r"out: expected shape \(2, 2\) and dtype float32"):
        pk.matmul(f32(2, 3), f32(3, 2), out=np.empty((2, 2), np.float64))
    a, b = f32(4, 4), f32(4, 4)
    with pytest.raises(ValueError, match=r"out overlaps a: matmul cannot write its output over an input"):
        pk.matmul(a, b, out=a)
    with pytest.raises(ValueError, match=r"out overlaps b: matmul cannot write its output over an input"):
        pk.matmul(a, b, out=b)
    x = f32(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"out overlaps x: conv2d"):
        # conv2d has no public out=; the dispatch underneath is the same for every op
        call("conv2d", {"x": x, "w": f32(2, 2, 1, 1), "bias": None}, {}, out=x)


def test_gpu_array_to_numpy_backend_and_mixed_sides():
    require_backend("numba")
    from numba import cuda
    d = cuda.to_device(f32(8))
    with pytest.raises(TypeError, match=r"x: backend 'numpy' takes host \(NumPy\) arrays"):
        pk.relu(d, backend="numpy")
    with pytest.raises(TypeError, match=r"inputs mix host and GPU arrays"):
        pk.matmul(cuda.to_device(f32(2, 3)), f32(3, 2), backend="numba")


def test_gpu_array_in_same_kind_out_numba():
    """A Numba device array in -> a Numba device array out, no host round trip in between."""
    require_backend("numba")
    from numba import cuda
    x = f32(5, 7)
    d = cuda.to_device(x)
    y = pk.relu(d, backend="numba")
    assert type(y) is type(d)
    np.testing.assert_array_equal(y.copy_to_host(), np.maximum(x, 0))
    auto = pk.relu(d)  # a simulator array has no memory the cuda backend can address: numba
    assert type(auto) is type(d)
    np.testing.assert_array_equal(auto.copy_to_host(), np.maximum(x, 0))


def test_cuda_error_becomes_python_exception():
    """A CUDA error (here: no driver, or freeing a pointer cudaMalloc never returned) is a
    RuntimeError with the CUDA error string, never a crash; out of device memory is a MemoryError,
    as NumPy's allocator gives."""
    from pykern._device import ext
    try:
        mod = ext()
    except RuntimeError as e:
        pytest.skip(f"extension not built: {e}")
    with pytest.raises(RuntimeError, match=r"CUDA error in cudaFree: cuda\w+"):
        mod.free(12345)
    if mod.device_count()[0]:
        with pytest.raises(MemoryError, match=r"^cudaMalloc of 4611686018427387904 bytes: out of device memory"):
            mod.malloc(1 << 62)
    else:
        with pytest.raises(RuntimeError, match=r"CUDA error in cudaMalloc: cuda\w+"):
            mod.malloc(1 << 62)


def test_backends_and_variants_api():
    bk = pk.backends()
    assert set(bk) == {"numpy", "numba", "cuda"}
    assert bk["numpy"].available
    for name, a in bk.items():
        assert isinstance(a.reason, str) and a.reason
    vs = pk.variants("relu", "cuda")
    assert {v.name for v in vs} >= {"naive", "grid_stride", "vectorized"}
    assert all(v.op == "relu" and v.backend == "cuda" and v.technique for v in vs)
    for op in OPS:
        for backend in bk:
            assert sum(v.default for v in pk.variants(op, backend)) == 1, (op, backend)


def test_bfloat16_device_array_described_by_its_own_dtype():
    """__cuda_array_interface__ has no bfloat16 typestr ('<V2'): the array's dtype decides."""
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes provides NumPy's bfloat16")
    from pykern._arrays import describe

    class FakeDeviceArray:
        dtype = np.dtype(ml_dtypes.bfloat16)
        __cuda_array_interface__ = {"shape": (4, 2), "typestr": "<V2", "data": (1 << 20, False),
                                    "strides": None, "version": 3}

    info = describe(FakeDeviceArray(), "a")
    assert info.dtype.name == "bfloat16" and info.on_gpu and info.shape == (4, 2)


def test_cai_stream_is_kept_for_launches():
    """Kernels launch on the stream the producer named in __cuda_array_interface__ (v3)."""
    from pykern._arrays import describe

    class FakeDeviceArray:
        def __init__(self, stream):
            self.__cuda_array_interface__ = {"shape": (3,), "typestr": "<f4", "data": (1 << 20, False),
                                             "strides": None, "version": 3, "stream": stream}

    assert describe(FakeDeviceArray(12345), "x").stream == 12345
    assert describe(FakeDeviceArray(None), "x").stream == 0
    assert describe(f32(3), "x").stream == 0


# --- one validation per call (issue 20) ---------------------------------------------------------
@pytest.mark.parametrize("op", OPS)
def test_each_call_validates_once_and_hands_the_problem_on(op, monkeypatch):
    """The spec validates a call exactly once; supports() and the variant see what it resolved
    (the output shape it computed, never recomputed), on every backend that has the op."""
    from pykern import _registry
    from pykern.ops import SPECS
    spec = SPECS[op]
    calls, seen = [], []
    real = spec.validate
    monkeypatch.setattr(spec, "validate", lambda infos, params: calls.append(op) or real(infos, params))
    case = spec.test_cases("numpy", simulator=True)[0]
    arrays, params = spec.make_inputs(case, "float32", np.random.default_rng(1))
    for var in _registry.variants(op, "numpy"):
        spy = dataclasses.replace(var, supports=lambda problem, _s=var.supports: seen.append(problem)
                                  or (_s(problem) if _s else None))
        monkeypatch.setitem(_registry._VARIANTS, (op, "numpy", var.name), spy)
        calls.clear()
        _dispatch._VALIDATED.clear()  # a fresh signature (a repeated one reuses its validation
        _dispatch._PLANS.clear()  # and its plan)
        try:
            shape = call(op, arrays, params, backend="numpy", variant=var.name).shape
        except Unsupported:  # supports() refused, having seen the problem
            shape = seen[-1].out_shape
        assert calls == [op], f"{var.key}: validate ran {len(calls)} times"
        if var.supports:
            assert seen[-1].out_shape == shape and seen[-1].variant.name == var.name


def test_a_repeated_signature_reuses_its_validation_and_only_that(monkeypatch):
    """A call with the kinds, shapes, dtypes, strides and parameters of an earlier valid one takes
    its validation (spec.validate is a pure function of them); any difference validates afresh: a
    shape, a dtype, a parameter's value, or its type (0 and 1 for a flag: refused, though 0 == False).
    A refusal is never kept."""
    from pykern.ops import SPECS
    spec = SPECS["matmul"]
    calls = []
    real = spec.validate
    monkeypatch.setattr(spec, "validate", lambda infos, params: calls.append(1) or real(infos, params))
    monkeypatch.setattr(_dispatch, "_VALIDATED", {})
    monkeypatch.setattr(_dispatch, "_PLANS", {})
    a, b = f32(3, 4), f32(4, 5)
    want = a.astype(np.float64) @ b.astype(np.float64)
    for _ in range(3):
        np.testing.assert_allclose(pk.matmul(a, b), want, rtol=1e-5)
    assert len(calls) == 1
    pk.matmul(f32(3, 4), f32(4, 6))  # another shape
    pk.matmul(a.astype(np.float64), b.astype(np.float64))  # another dtype
    pk.matmul(a, np.ascontiguousarray(b.T), transpose_b=True)  # another parameter value
    assert len(calls) == 4
    with pytest.raises(TypeError, match="transpose_a"):
        pk.matmul(a, b, transpose_a=0)  # 0 == False, but not a bool: refused, never a hit
    with pytest.raises(TypeError, match="transpose_a"):
        pk.matmul(a, b, transpose_a=1)
    with pytest.raises(ValueError, match="disagree on K"):
        pk.matmul(a, a)
    with pytest.raises(ValueError, match="disagree on K"):
        pk.matmul(a, a)  # refused again: nothing was kept
    assert len(calls) == 8
    c = pk.matmul(a, b, transpose_a=False)
    assert len(calls) == 8 and c.shape == (3, 5)
    # The params a Problem holds are its own: changing one call's leaves the next call's alone.
    problem = _dispatch.resolve("matmul", {"a": a, "b": b}, {})
    problem.params["transpose_a"] = True
    assert _dispatch.resolve("matmul", {"a": a, "b": b}, {}).params == {}


def test_variant_lookup_is_a_dict_hit(monkeypatch):
    """Once a backend is loaded, finding a variant lists nothing (the listing sorts every variant)."""
    from pykern import _registry
    _registry.get_variant("relu", "numpy", None)
    monkeypatch.setattr(_registry, "variants", lambda *a, **k: pytest.fail("get_variant listed the variants"))
    assert _registry.get_variant("relu", "numpy", None).default
    assert _registry.get_variant("relu", "numpy", "reference").name == "reference"
    assert pk.relu(f32(4)).shape == (4,)


# --- plans: a repeated host call runs what the dispatch decided for its signature ---------------
def _counting_resolve(monkeypatch) -> list:
    """Count the dispatch's full resolutions from here on, with no plan kept from before."""
    pk.relu(f32(2))  # the numpy backend loaded (its registrations bump the registry's generation)
    resolved = []
    real = _dispatch.resolve
    monkeypatch.setattr(_dispatch, "resolve", lambda op, *a, **k: resolved.append(op) or real(op, *a, **k))
    monkeypatch.setattr(_dispatch, "_PLANS", {})
    return resolved


def test_a_repeated_host_call_runs_its_plan_and_only_that(monkeypatch):
    """The same op, shapes, dtypes, strides, parameters, backend and variant: one resolution, then
    the plan, with the bits of the full path; any difference resolves afresh, and a refusal is
    refused again."""
    resolved = _counting_resolve(monkeypatch)
    a, b = f32(5, 7), f32(7, 3)
    first = pk.matmul(a, b)
    for _ in range(3):
        a2, b2 = f32(5, 7), f32(7, 3)  # new arrays, new values: the plan keeps no array
        np.testing.assert_array_equal(pk.matmul(a2, b2), pk.matmul(a2, b2, out=np.empty((5, 3), np.float32)))
    assert resolved == ["matmul"] + ["matmul"] * 3  # the out= calls resolve every time
    assert first.shape == (5, 3)
    resolved.clear()
    pk.matmul(f32(5, 7), f32(7, 4))  # a shape
    pk.matmul(a.astype(np.float64), b.astype(np.float64))  # a dtype
    pk.matmul(a, np.ascontiguousarray(b.T), transpose_b=True)  # a parameter
    pk.matmul(a, b, variant="blocked")  # a variant asked for
    pk.matmul(a, f32(7, 3, 2)[:, :, 0].copy())  # equal strides, another array: a hit
    assert resolved == ["matmul"] * 4
    wide = f32(7, 6)
    with pytest.raises(ValueError, match="not C-contiguous"):
        pk.matmul(a, wide[:, ::2])  # strides (24, 8): refused, not b's plan
    with pytest.raises(ValueError, match="not C-contiguous"):
        pk.matmul(a, wide[:, ::2])  # refused again
    with pytest.raises(ValueError, match="disagree on K"):
        pk.matmul(a, a)
    sub = f32(5, 7).view(type("Sub", (np.ndarray,), {}))
    pk.relu(sub), pk.relu(sub)  # a subclass is described every time
    assert resolved.count("relu") == 2


def test_a_plan_follows_the_registry_and_the_thread_count(monkeypatch):
    """A change to the registry (here a route) drops every plan, and the thread count, which a
    measured route reads, is part of a plan's key."""
    from pykern import _registry
    from pykern.cpu import _compiled
    resolved = _counting_resolve(monkeypatch)
    x = f32(6, 5)
    default = pk.relu(x)
    ran = []
    reference = _registry.get_variant("relu", "numpy", "reference")
    monkeypatch.setitem(_registry._VARIANTS, ("relu", "numpy", "reference"),
                        dataclasses.replace(reference, fn=lambda *a: ran.append(1) or reference.fn(*a)))
    monkeypatch.setitem(_registry._ROUTES, ("relu", "numpy"), None)  # restored after the test
    _registry.set_route("relu", "numpy", lambda infos, params: "reference")
    np.testing.assert_array_equal(pk.relu(x), default)
    np.testing.assert_array_equal(pk.relu(x), default)
    assert ran == [1, 1] and resolved == ["relu", "relu"]
    _registry.set_route("relu", "numpy", None)
    # A route that reads the thread count: each count has its own plan.
    _registry.set_route("relu", "numpy", lambda infos, params: "reference" if _compiled.threads() == 1 else None)
    for n in (1, 2, 1, 2):
        monkeypatch.setattr(_compiled, "threads", lambda n=n: n)
        for _ in range(2):
            np.testing.assert_array_equal(pk.relu(x), default)
    assert ran == [1, 1, 1, 1, 1, 1] and resolved == ["relu"] * 4
    _registry.set_route("relu", "numpy", None)


def test_a_plan_keeps_no_array():
    import gc
    import weakref
    x = f32(4, 9)
    pk.relu(x), pk.relu(x)
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is None
