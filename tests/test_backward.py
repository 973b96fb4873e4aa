"""The backward ops (relu_backward, conv2d_backward_input, conv2d_backward_weight) and matmul's
transpose flags, beyond the registry-generated tests (test_correctness.py, test_properties.py,
which run every variant on every test case with poisoned outputs): gradients against
torch.autograd, exact integer cases that catch indexing bugs, the NaN rule of relu's gradient,
in-place use, errors that name the argument, the refusal of the transpose flags by variants
that do not take them, and a broken gradient that the checker must reject."""
import numpy as np
import pytest
from conftest import on_simulator, require_backend, seed_for

import pykern as pk
from pykern import _registry
from pykern._check import run_arrays
from pykern._dispatch import Unsupported
from pykern.ops.conv2d import output_size
from pykern.ops.conv2d_backward import reference_input, reference_weight
from pykern.ops.relu_backward import reference as relu_backward_reference

CONV_OPS = ("conv2d_backward_input", "conv2d_backward_weight")

# (x shape, w shape, params): odd sizes, stride with rows the last output never reaches,
# padding, dilation, groups, and all of them at once. Tiny: the Numba simulator runs them too.
def _geometry_id(g):
    return f"{g[0]}-{g[1]}-{g[2]}"


GEOMETRIES = [
    # K = 2 keeps the Numba simulator's block_reduce (a block of threads per element of dw) to
    # 54 blocks: with K = 4 it took ~14 s a test
    ((2, 3, 7, 6), (2, 3, 3, 3), dict(padding=1)),
    ((1, 2, 8, 9), (3, 2, 3, 2), dict(stride=(3, 2), padding=(0, 1))),
    ((1, 2, 9, 7), (2, 2, 2, 3), dict(dilation=(2, 1), padding=(1, 2))),
    ((2, 4, 6, 5), (6, 2, 3, 3), dict(groups=2, padding=1, stride=2)),
    ((1, 6, 7, 8), (6, 1, 3, 2), dict(groups=6, stride=(2, 3), padding=(2, 1), dilation=(1, 2))),
    ((1, 3, 5, 5), (2, 3, 1, 1), {}),
]


def _conv_args(x_shape, w_shape, params):
    p = {"stride": 1, "padding": 0, "dilation": 1, **params}
    pair = {k: (v, v) if isinstance(v, int) else v for k, v in p.items()}
    pq = output_size(x_shape[2], x_shape[3], w_shape[2], w_shape[3], pair["stride"], pair["padding"], pair["dilation"])
    return (x_shape[0], w_shape[0]) + pq, pair


def _variants(ops):
    return [pytest.param(v, id=v.key) for op in ops for v in pk.variants(op)]


def _dtypes(variant, geometry) -> list:
    """The dtypes a geometry test runs: all of the variant's, but in Numba's simulator (a Python
    thread per CUDA thread; these two tests were a tenth of CI's test time) float64 only on every
    other geometry, as tests/test_correctness.py does. float32 still runs every geometry."""
    if on_simulator(variant.backend) and variant.backend == "numba" and len(variant.dtypes) > 1 \
            and GEOMETRIES.index(geometry) % 2:
        return [d for d in variant.dtypes if d != "float64"]
    return list(variant.dtypes)


# --- against torch.autograd ----------------------------------------------------------------------
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_geometry_id)
@pytest.mark.parametrize("variant", _variants(CONV_OPS))
def test_conv2d_gradients_match_torch_autograd(variant, geometry):
    torch = pytest.importorskip("torch")
    require_backend(variant.backend)
    x_shape, w_shape, params = geometry
    rng = np.random.default_rng(seed_for("torch", variant.key, geometry))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, **params)
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(dy))
    call = dict(params, backend=variant.backend, variant=variant.name)
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-4)):
        if dtype not in _dtypes(variant, geometry):
            continue
        if variant.op == "conv2d_backward_input":
            got, want = pk.conv2d_backward_input(dy.astype(dtype), w.astype(dtype), x_shape, **call), xt.grad
        else:
            got, want = pk.conv2d_backward_weight(x.astype(dtype), dy.astype(dtype), w_shape, **call), wt.grad
        assert got.dtype == dtype and got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_relu_and_matmul_gradients_match_torch_autograd(backend):
    """y = relu(a @ b): dY -> relu_backward -> dC, then dA = dC @ b^T and dB = a^T @ dC through
    the transpose flags, as torch computes them."""
    torch = pytest.importorskip("torch")
    require_backend(backend)
    rng = np.random.default_rng(seed_for("mlp", backend))
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 9))
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    c = at @ bt
    y = torch.relu(c)
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(dy))
    kw = dict(backend=backend, variant="naive" if backend == "numba" else None)  # numba's default is float32-only
    c_np = pk.matmul(a, b, **kw)
    dc = pk.relu_backward(dy, c_np, backend=backend)
    np.testing.assert_allclose(pk.matmul(dc, b, transpose_b=True, **kw), at.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pk.matmul(a, dc, transpose_a=True, **kw), bt.grad.numpy(), rtol=1e-12, atol=1e-12)


# --- exact cases -----------------------------------------------------------------------------
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_geometry_id)
@pytest.mark.parametrize("variant", _variants(CONV_OPS))
def test_conv2d_gradients_exact_on_small_integers(variant, geometry):
    """Integer inputs in [-3, 3]: every sum is exact in float64 and float32 alike, so any
    misplaced, missing or doubled term shows as an inequality, not as rounding."""
    require_backend(variant.backend)
    x_shape, w_shape, params = geometry
    dy_shape, pair = _conv_args(x_shape, w_shape, params)
    rng = np.random.default_rng(seed_for("ints", variant.key, geometry))
    x, w, dy = (rng.integers(-3, 4, s).astype(np.float64) for s in (x_shape, w_shape, dy_shape))
    groups = params.get("groups", 1)
    for dtype in _dtypes(variant, geometry):
        call = dict(params, backend=variant.backend, variant=variant.name)
        if variant.op == "conv2d_backward_input":
            got = pk.conv2d_backward_input(dy.astype(dtype), w.astype(dtype), x_shape, **call)
            want = reference_input(dy, w, x_shape, pair["stride"], pair["padding"], pair["dilation"], groups)
        else:
            got = pk.conv2d_backward_weight(x.astype(dtype), dy.astype(dtype), w_shape, **call)
            want = reference_weight(x, dy, w_shape, pair["stride"], pair["padding"], pair["dilation"], groups)
        assert np.any(want != 0)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("variant", _variants(["conv2d_backward_weight"]))
def test_weight_gradient_with_many_terms_per_element(variant):
    """Few elements of dw, each summing 2*23*23 = 1058 terms: block_reduce runs its widest
    tree (REDUCE_THREADS threads per element), which the small test cases never reach."""
    require_backend(variant.backend)
    rng = np.random.default_rng(seed_for("many_terms", variant.key))
    x, dy = rng.standard_normal((2, 1, 24, 24)), rng.standard_normal((2, 2, 23, 23))
    for dtype in variant.dtypes:
        cmp = run_arrays(variant, {"x": x.astype(dtype), "dy": dy.astype(dtype)}, dict(w_shape=(2, 1, 2, 2)))
        assert cmp.ok, cmp.message()


@pytest.mark.parametrize("variant", _variants(CONV_OPS))
def test_a_stride_or_dilation_that_selects_nothing_is_harmless(variant):
    """The largest valid stride and dilation on axes with one output or one tap (the forward's
    hostile case, tests/test_hostile.py): no offset overflows, the result matches."""
    require_backend(variant.backend)
    rng = np.random.default_rng(seed_for("huge_stride", variant.key))
    x_shape, w_shape = (1, 2, 5, 6), (3, 2, 1, 3)
    for params in [dict(stride=(2**31 - 1, 2**31 - 1)), dict(stride=(1, 2**31 - 1), dilation=(2**31 - 1, 1)),
                   dict(stride=(2**31 - 1, 1), padding=(2, 0))]:
        dy_shape, _ = _conv_args(x_shape, w_shape, params)
        dy = rng.standard_normal(dy_shape).astype(np.float32)
        if variant.op == "conv2d_backward_input":
            arrays, extra = {"dy": dy, "w": rng.standard_normal(w_shape).astype(np.float32)}, dict(x_shape=x_shape)
        else:
            arrays, extra = {"x": rng.standard_normal(x_shape).astype(np.float32), "dy": dy}, dict(w_shape=w_shape)
        cmp = run_arrays(variant, arrays, dict(params, **extra))
        assert cmp.ok, (params, cmp.message())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 * Inf, on purpose
@pytest.mark.parametrize("variant", _variants(["conv2d_backward_weight"]))
def test_padded_taps_times_inf_give_nan(variant):
    """x = 1, dy[0, 0, 0, 0] = Inf, padding 1: the taps whose row or column meets that output
    in the padding get 0 * Inf = NaN (as the forward's padded taps do, and torch's), the
    others +Inf; skipping padded taps would leave them finite."""
    require_backend(variant.backend)
    for dtype in variant.dtypes:
        x, dy = np.ones((1, 1, 3, 3), dtype), np.ones((1, 1, 3, 3), dtype)
        dy[0, 0, 0, 0] = np.inf
        cmp = run_arrays(variant, {"x": x, "dy": dy}, dict(w_shape=(1, 1, 3, 3), padding=1))
        assert cmp.ok, cmp.message()
        dw = pk.conv2d_backward_weight(x, dy, (1, 1, 3, 3), padding=1, backend=variant.backend, variant=variant.name)
        assert np.isnan(dw[0, 0, 0]).all() and np.isnan(dw[0, 0, :, 0]).all() and (dw[0, 0, 1:, 1:] == np.inf).all()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 * Inf, on purpose
@pytest.mark.parametrize("variant", _variants(["conv2d_backward_input"]))
def test_an_infinite_weight_meets_only_the_dy_it_multiplies(variant):
    """w[0, 0, 0, 0] = Inf, dy = 1 but one 0, padding 1: dx[h, w] gets the Inf tap only where
    dy[h + 1, w + 1] exists, so the last row and column stay finite (an implicit GEMM that
    multiplied w by the zeros past dy's edge gave 0 * Inf = NaN there), and the real 0 of dy
    that the spec multiplies by Inf gives NaN at dx[0, 0]."""
    require_backend(variant.backend)
    for dtype in variant.dtypes:
        w, dy = np.ones((1, 1, 3, 3), dtype), np.ones((1, 1, 3, 3), dtype)
        w[0, 0, 0, 0], dy[0, 0, 1, 1] = np.inf, 0
        for params in (dict(padding=1), dict(padding=1, stride=2)):
            x_shape = (1, 1, 3, 3) if "stride" not in params else (1, 1, 5, 5)
            cmp = run_arrays(variant, {"dy": dy, "w": w}, dict(params, x_shape=x_shape))
            assert cmp.ok, (params, cmp.message())
        dx = pk.conv2d_backward_input(dy, w, (1, 1, 3, 3), padding=1, backend=variant.backend, variant=variant.name)
        assert np.isfinite(dx[0, 0, 2]).all() and np.isfinite(dx[0, 0, :, 2]).all()
        assert np.isnan(dx[0, 0, 0, 0]) and (dx[0, 0, :2, :2].ravel()[1:] == np.inf).all()


def test_unreached_inputs_get_exactly_zero():
    """Stride 3 over 8 rows: rows 6 and 7 of x are read by no output, so dx is 0 there."""
    dy = np.arange(1, 7, dtype=np.float64).reshape(1, 1, 2, 3)
    w = np.ones((1, 1, 3, 2))
    dx = pk.conv2d_backward_input(dy, w, (1, 1, 8, 9), stride=3)
    assert not dx[0, 0, 6:].any() and dx[0, 0, :6].any()
    np.testing.assert_array_equal(dx, reference_input(dy, w, (1, 1, 8, 9), (3, 3)))


@pytest.mark.parametrize("variant", _variants(["relu_backward"]))
def test_relu_backward_exact_with_specials(variant):
    """dx = dy where x > 0 else 0, bit for bit; x = NaN passes dy (torch's rule), -0.0 and -Inf
    give 0, a NaN or Inf in dy reaches dx only where x > 0."""
    require_backend(variant.backend)
    for dtype in variant.dtypes:
        rng = np.random.default_rng(seed_for(variant.key, dtype))
        dy, x = rng.standard_normal((2, 37)).astype(dtype)
        x[[0, 5, 17, 36, 9, 10]] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 2.0]
        dy[[9, 10, 11, 20]] = [np.nan, np.inf, np.nan, -np.inf]
        x[11], x[20] = -1.0, 3.0
        dx = pk.relu_backward(dy, x, backend=variant.backend, variant=variant.name)
        assert dx.dtype == dtype
        assert np.array_equal(dx, relu_backward_reference(dy, x), equal_nan=True)
        assert dx[0] == dy[0] and dx[5] == dy[5] and dx[17] == 0 and dx[36] == 0 and dx[9] == 0
        assert dx[10] == np.inf and dx[11] == 0 and dx[20] == -np.inf


def test_relu_backward_nan_rule_is_torchs():
    torch = pytest.importorskip("torch")
    x = torch.tensor([np.nan, -1.0, 0.0, -0.0, 2.0, np.inf, -np.inf], dtype=torch.float64, requires_grad=True)
    dy = torch.arange(1.0, 8.0, dtype=torch.float64)
    torch.relu(x).backward(dy)
    xs = x.detach().numpy()
    np.testing.assert_array_equal(pk.relu_backward(dy.numpy(), xs), x.grad.numpy())
    # from relu's output instead of its input: the same gradient
    np.testing.assert_array_equal(pk.relu_backward(dy.numpy(), pk.relu(xs)), x.grad.numpy())


@pytest.mark.parametrize("variant", _variants(["relu_backward"]))
@pytest.mark.parametrize("over", ["dy", "x"])
def test_relu_backward_in_place(variant, over):
    require_backend(variant.backend)
    dtype = variant.dtypes[-1]
    rng = np.random.default_rng(seed_for("inplace", variant.key, over))
    dy, x = rng.standard_normal((2, 3, 41)).astype(dtype)
    expected = np.where(x > 0, dy, 0)
    target = dy if over == "dy" else x
    got = pk.relu_backward(dy, x, backend=variant.backend, variant=variant.name, out=target)
    assert got is target
    np.testing.assert_array_equal(target, expected)


# --- matmul's transpose flags ----------------------------------------------------------------
@pytest.mark.parametrize("variant", [pytest.param(v, id=v.key) for v in pk.variants("matmul")
                                     if v.takes and "float32" in v.dtypes])
def test_transposes_are_read_in_place(variant):
    """Every flag combination on non-square shapes, exact on small integers: op(a) is a.T, no
    more, no less."""
    require_backend(variant.backend)
    rng = np.random.default_rng(seed_for("transposes", variant.key))
    a, b = rng.integers(-3, 4, (6, 4)).astype(np.float32), rng.integers(-3, 4, (4, 5)).astype(np.float32)
    for ta in (False, True):
        for tb in (False, True):
            sa = np.ascontiguousarray(a.T) if ta else a
            sb = np.ascontiguousarray(b.T) if tb else b
            got = pk.matmul(sa, sb, transpose_a=ta, transpose_b=tb, backend=variant.backend, variant=variant.name)
            np.testing.assert_array_equal(got, a @ b)


def test_variants_without_the_flags_refuse_them_by_name():
    """Variants that take no transpose flags (the CUDA C++ rungs past smem_tiled) refuse them,
    and the error names the variants that do (never a silently wrong product)."""
    takes = [v for v in pk.variants("matmul") if v.takes]
    assert {v.backend for v in takes} >= {"numpy"}
    refusing = [v for v in pk.variants("matmul") if not v.takes]
    if not refusing:
        pytest.skip("every registered matmul variant takes the flags")
    v = refusing[0]
    require_backend(v.backend)
    a, b = np.ones((3, 2), v.dtypes[0]), np.ones((3, 4), v.dtypes[0])
    refusal = rf"variant {v.key} does not take transpose_a; variants that do: .*numpy/blas"
    with pytest.raises(Unsupported, match=refusal):
        pk.matmul(a, b, transpose_a=True, backend=v.backend, variant=v.name)


def test_cuda_default_matmul_refuses_the_flags_cleanly():
    require_backend("cuda")
    a, b = np.ones((3, 2), np.float32), np.ones((4, 2), np.float32)
    with pytest.raises(Unsupported, match=r"does not take transpose_b; variants that do: "):
        pk.matmul(a, b, transpose_b=True, backend="cuda")


def test_flag_errors_name_the_argument():
    a, b = np.ones((3, 2), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match=r"^transpose_a: expected True or False, got 1"):
        pk.matmul(a, b, transpose_a=1)
    with pytest.raises(ValueError, match=r"^a: \(M, K\) = \(3, 2\) and b: \(K, N\) = \(3, 4\) disagree on K"):
        pk.matmul(a, b)
    disagree = r"^a: \(K, M\) = \(3, 2\) and b: \(N, K\) = \(3, 4\) disagree on K \(3 != 4\)"
    with pytest.raises(ValueError, match=disagree):
        pk.matmul(a, b, transpose_a=True, transpose_b=True)
    np.testing.assert_array_equal(pk.matmul(a, b, transpose_a=True), a.T @ b)


# --- validation ----------------------------------------------------------------------------------
# dy of x: (1, 2, 8, 9) and w: (3, 2, 3, 2) at stride (3, 2), padding (0, 1)
X, DY, W = np.ones((1, 2, 8, 9), np.float32), np.ones((1, 3, 2, 5), np.float32), np.ones((3, 2, 3, 2), np.float32)
GEO = dict(stride=(3, 2), padding=(0, 1))


def _dx(x_shape, dy=DY, w=W, **params):
    return lambda: pk.conv2d_backward_input(dy, w, x_shape, **params)


def _dw(w_shape, x=X, dy=DY, **params):
    return lambda: pk.conv2d_backward_weight(x, dy, w_shape, **params)


@pytest.mark.parametrize("call,error,pattern", [
    (_dx((1, 2, 8)), ValueError, r"^x_shape: expected a shape \(N, C, H, W\) of four ints"),
    (_dx((1, 2, 0, 9)), ValueError, r"^x_shape: every entry"),
    (_dx((1, 2, 8, 10), **GEO), ValueError,
     r"^dy: expected conv2d's output shape \(N, K, P, Q\) = \(1, 3, 2, 6\) for x_shape: \(1, 2, 8, 10\)"),
    (_dx((2, 2, 8, 9), **GEO), ValueError, r"^dy: expected"),
    (_dx((1, 4, 8, 9), **GEO), ValueError,
     r"^w: \(K, C//groups, R, S\) = \(3, 2, 3, 2\) expects C//groups = 4 for x_shape"),
    (_dx((1, 2, 8, 9), groups=2), ValueError, r"^groups=2 must divide both C=2 \(x_shape\) and K=3 \(w\)"),
    (_dx((1, 2, 8, 9), stride=0), ValueError, r"^stride: "),
    (_dx((1, 2, 8, 9), dy=DY[0]), ValueError, r"^dy: expected a 4-D array"),
    (_dx((1, 2, 8, 9), w=W.astype(np.float64), **GEO), TypeError, r"^w has dtype float64 but dy has float32"),
    (_dw((3, 2, 3)), ValueError, r"^w_shape: expected a shape \(K, C//groups, R, S\) of four ints"),
    (_dw((3, 2, 3, 4), **GEO), ValueError,
     r"^dy: expected conv2d's output shape \(N, K, P, Q\) = \(1, 3, 2, 4\) for x: \(1, 2, 8, 9\), "
     r"w_shape: \(3, 2, 3, 4\)"),
    (_dw((3, 1, 3, 2), **GEO), ValueError,
     r"^w_shape: \(K, C//groups, R, S\) = \(3, 1, 3, 2\) expects C//groups = 2 for x"),
    (lambda: pk.relu_backward(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)), ValueError,
     r"^x: expected the shape of dy \(2, 3\)"),
    (lambda: pk.relu_backward(np.ones(3, np.float32), np.ones(3, np.float64)), TypeError,
     r"^x has dtype float64 but dy"),
])
def test_errors_name_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_the_right_x_shape_among_several():
    """With stride 3, H = 8, 9 and 10 all give P = 3 rows of dy: x_shape picks one, and dx has it."""
    dy, w = np.ones((1, 1, 3, 2), np.float32), np.ones((1, 1, 2, 2), np.float32)
    for h in (8, 9, 10):
        assert pk.conv2d_backward_input(dy, w, (1, 1, h, 5), stride=3).shape == (1, 1, h, 5)


def test_every_backend_has_one_terms_default_per_backward_op():
    for op in ("relu_backward",) + CONV_OPS:
        for backend in ("numpy", "numba", "cuda"):
            defaults = [v for v in pk.variants(op, backend) if v.default]
            assert len(defaults) == 1, (op, backend, defaults)
            assert defaults[0].error_model == "terms", (op, backend)


def test_gpu_arrays_under_auto_run_on_the_gpu():
    """A GPU array under backend='auto' runs a GPU backend's kernels and comes back as a GPU
    array (under the Numba simulator, whose arrays the cuda backend cannot address: numba's)."""
    require_backend("numba")
    from numba import cuda
    dy = np.random.default_rng(3).standard_normal(40).astype(np.float32)
    x = np.random.default_rng(4).standard_normal(40).astype(np.float32)
    got = pk.relu_backward(cuda.to_device(dy), cuda.to_device(x))
    np.testing.assert_array_equal(got.copy_to_host(), np.where(x > 0, dy, 0))


# --- the checker rejects a wrong gradient ---------------------------------------------------------
def test_checker_rejects_a_gradient_that_ignores_the_stride_phase():
    """dx computed as if the stride were 1 (the classic transposed-convolution bug): checked
    against the reference, it fails on every case with stride > 1 and passes the others."""
    def stride_blind(dy, w, dx, *, x_shape, stride, padding, dilation, groups):
        np.copyto(dx, reference_input(dy, w, x_shape, (1, 1), padding, dilation, groups))  # places dy densely

    stride_blind.__doc__ = "Deliberately broken: wrong for stride > 1."
    _registry.register("conv2d_backward_input", "numpy", dtypes=("float64",), name="broken_stride")(stride_blind)
    try:
        v = _registry.get_variant("conv2d_backward_input", "numpy", "broken_stride")
        rng = np.random.default_rng(seed_for("broken_stride"))
        for stride, ok in (((1, 1), True), ((2, 1), False)):
            dy_shape, _ = _conv_args((1, 2, 7, 6), (3, 2, 3, 3), dict(stride=stride))
            cmp = run_arrays(v, {"dy": rng.standard_normal(dy_shape), "w": rng.standard_normal((3, 2, 3, 3))},
                             dict(x_shape=(1, 2, 7, 6), stride=stride))
            assert cmp.ok == ok, cmp.message()
        report = pk.check("conv2d_backward_input", "numpy", "broken_stride", trials=1)
        assert not report.passed and "FAIL" in str(report)
    finally:
        _registry.unregister("conv2d_backward_input", "numpy", "broken_stride")


# --- the CPU defaults' batch split -------------------------------------------------------------
@pytest.mark.parametrize("op,plain,split", [("conv2d_backward_input", "gemm_col2im", "gemm_col2im_threads"),
                                            ("conv2d_backward_weight", "weight_im2col_gemm", "im2col_gemm_threads")])
def test_cpu_defaults_split_the_batch_over_threads(monkeypatch, op, plain, split):
    """The NumPy defaults (the CPU's where pykern._cpu is not built): an odd batch split over the
    BLAS threads (uneven slices): every image goes to exactly one slice, and the result (dx slices
    written in place; dw partial sums added in batch order) matches the reference."""
    pytest.importorskip("threadpoolctl")
    import pykern.cpu.conv2d as conv
    import pykern.cpu.conv2d_backward as bwd
    if conv._BATCH_THREADS.workers() < 2:
        pytest.skip("NumPy's BLAS runs one thread here: the defaults have nothing to split")
    slices, real = [], getattr(bwd, plain)

    def spy(a, b, out, **params):
        slices.append(a.shape[0])
        real(a, b, out, **params)

    monkeypatch.setattr(bwd, plain, spy)
    n = 2 * conv.PARALLEL_MIN_IMAGES + 1
    x_shape, w_shape = (n, 8, 9, 7), (6, 4, 3, 3)
    dy_shape, _ = _conv_args(x_shape, w_shape, dict(padding=1, stride=(2, 1), groups=2))
    rng = np.random.default_rng(seed_for("split", op))
    params = dict(padding=1, stride=(2, 1), groups=2)
    x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, dy_shape))
    if op == "conv2d_backward_input":
        arrays, params["x_shape"] = {"dy": dy, "w": w}, x_shape
    else:
        arrays, params["w_shape"] = {"x": x, "dy": dy}, w_shape
    variant = _registry.get_variant(op, "numpy", split)
    cmp = run_arrays(variant, arrays, params)
    assert cmp.ok, cmp.message()
    assert sum(slices) == n and len(slices) > 1


# --- benchmarks --------------------------------------------------------------------------------
def test_backward_ops_benchmark_and_plot_like_their_forward_ops(tmp_path):
    """A backward op takes its forward op's cases, --sizes forms and plot axes; its case ids
    parse back; a plot of it is drawn (it raised KeyError once)."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from pykern import benchmark as bench
    from pykern.ops.conv2d import RESNET_LAYERS, layer_case
    for op in ("relu_backward", "conv2d_backward_input", "conv2d_backward_weight"):
        fwd = op.replace("_backward_input", "").replace("_backward_weight", "").replace("_backward", "")
        assert bench.BENCH_CASES[op] == bench.BENCH_CASES[fwd] and bench.SIZE_FORMS[op] == bench.SIZE_FORMS[fwd]
        for case in bench.SPECS[op].test_cases("numpy"):
            cid = bench.SPECS[op].case_id(case)
            assert bench.SPECS[op].case_id(bench.parse_size(op, cid)) == cid
    assert bench.parse_size("matmul", "17x33x13_tA_tB") == {"M": 17, "N": 33, "K": 13, "transpose_a": True,
                                                             "transpose_b": True}
    entries = []
    for i, layer in enumerate(RESNET_LAYERS[:2]):
        case = layer_case(1, *layer)
        w = bench.work("conv2d_backward_input", case) / 1e9
        entries.append({"op": "conv2d_backward_input", "key": "numpy/gemm_col2im", "kind": "variant", "device": "cpu",
                        "dtype": "float32", "case": case, "case_id": bench.SPECS["conv2d_backward_input"].case_id(case),
                        "status": "ok", "unit": "GFLOP/s", "rate": 10.0 + i, "flags": [],
                        "median_s": w / 10, "q25_s": w / 11, "q75_s": w / 9})
    env = {"date": "2026-12-03T08:00:00+00:00", "package_version": "0.1.0", "git_commit": "abcdef1234567",
           "cpu": {"model": "Test CPU", "cores": 2, "usable_cores": 2}, "gpu": None, "gpu_reason": "none",
           "settings": []}
    path = tmp_path / "bwd.png"
    bench.plot_bench({"env": env, "entries": entries, "load": bench.load_summary(0.0), "ceilings": {}}, str(path))
    assert path.stat().st_size > 0
