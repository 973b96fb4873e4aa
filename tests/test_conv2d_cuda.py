"""The CUDA C++ conv2d kernels on what the generated tests do not reach: every implicit_gemm tile
configuration (the launcher picks one per shape and GPU), its scalar store path (P*Q % 4 != 0,
or y not 16-byte aligned), smem_tiled's multi-chunk and budget-limited staging, mma_sync's two
ways of staging x (16-byte copies of aligned runs, a guarded gather) and its conflict-free
ldmatrix reads (simulator), and the C++ shape rules behind `supports`. Small integer inputs make every float32 sum exact, so results must equal
the float64 reference bit for bit and any indexing slip shows.

Kernel tests need a GPU and skip with the reason without one; the shape-rule tests need only the
compiled extension."""
import numpy as np
import pytest
from conftest import require_backend, seed_for

import pykern as pk
from pykern._device import DeviceArray
from pykern._dispatch import Unsupported, prepare
from pykern.cpu.conv2d import reference
from pykern.cuda import configs
from pykern.cuda._launch import table
from pykern.ops.conv2d import output_size

CASES = [  # (N, C, H, W, K, R, S, params)
    (1, 1, 1, 1, 1, 1, 1, {}),
    (2, 3, 7, 6, 5, 3, 3, dict(padding=1, bias=True)),
    (1, 3, 15, 15, 8, 7, 7, dict(stride=2, padding=3, activation="relu")),
    (2, 4, 11, 13, 5, 3, 3, dict(dilation=2, bias=True, activation="relu")),
    (1, 8, 9, 9, 6, 3, 2, dict(stride=(1, 2), padding=(1, 0), bias=True)),
    (2, 6, 10, 10, 9, 3, 3, dict(padding=1, groups=3, bias=True, activation="relu")),
    (1, 8, 6, 6, 8, 3, 3, dict(padding=1, groups=8)),  # depthwise: Kg = 1 in a 32..128-wide tile
    (2, 4, 5, 6, 3, 1, 1, dict(bias=True)),  # im2col's no-copy 1x1 path; P*Q = 30: scalar stores
    (1, 2, 8, 9, 70, 2, 3, dict(stride=(3, 2), padding=(2, 1), dilation=(2, 3), groups=2, bias=True,
                                activation="relu")),  # Kg = 35: a partial column tile everywhere
    (5, 2, 4, 4, 3, 3, 3, dict(padding=1, bias=True)),  # P*Q = 16: float4 stores; M = 80
    (1, 2, 40, 7, 130, 1, 2, dict(activation="relu")),  # Kg = 130 > 128; M = 240: partial row tile
    (1, 20, 6, 7, 10, 3, 3, dict(padding=1, groups=2, bias=True)),  # Cg = 10: two smem_tiled chunks
    (2, 3, 70, 69, 4, 5, 5, dict(dilation=16)),  # smem_tiled stages one channel at a time
    (3, 16, 12, 12, 24, 3, 3, dict(padding=1, stride=1, bias=True)),  # CRS = 144, 18 k-steps
]


def _case_id(c):
    return "N{}C{}H{}W{}K{}R{}S{}".format(*c[:7]) + "".join(f"-{k}{v}" for k, v in c[7].items())


def _ints(rng, shape, dtype):
    return rng.integers(-3, 4, size=shape).astype(dtype)


def _inputs(case, dtype, seed):
    n, c, h, w, k, r, s, params = case
    params = dict(params)
    g = params.get("groups", 1)
    rng = np.random.default_rng(seed)
    x, wt = _ints(rng, (n, c, h, w), dtype), _ints(rng, (k, c // g, r, s), dtype)
    bias = _ints(rng, (k,), dtype) if params.pop("bias", False) else None
    return x, wt, bias, params


def _ext():
    from pykern._device import ext
    try:
        return ext()
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("variant", pk.variants("conv2d", "cuda"), ids=lambda v: v.name)
def test_exact_small_integers(variant, case):
    require_backend("cuda")
    for dtype in variant.dtypes:
        x, wt, bias, params = _inputs(case, dtype, seed_for("conv2d-cuda-exact", variant.key, dtype, case))
        try:
            prepared = prepare("conv2d", {"x": x, "w": wt, "bias": bias}, params, backend="cuda",
                               variant=variant.name, poison=True)
        except Unsupported as e:
            pytest.skip(str(e))
        prepared.run()
        got = prepared.finish()
        expected = reference(x, wt, bias, **prepared.params).astype(dtype)
        np.testing.assert_array_equal(got, expected, err_msg=f"{variant.key} {dtype}")


def _dims(x, wt, params):
    """The bound launchers' dims (ConvShape's fields, in conv2d's dims_fields order) and y's shape."""
    from pykern.ops import SPECS
    p = SPECS["conv2d"].normalize(params)
    pq = output_size(x.shape[2], x.shape[3], wt.shape[2], wt.shape[3], p["stride"], p["padding"], p["dilation"])
    return (*x.shape, wt.shape[0], *wt.shape[2:], *pq, *p["stride"], *p["padding"], *p["dilation"],
            p["groups"], int(p["activation"] == "relu")), (x.shape[0], wt.shape[0], *pq)


@pytest.mark.parametrize("aligned", [True, False], ids=["y16", "y4"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_implicit_gemm_every_tile(case, aligned):
    """Each tile configuration, forced, with y 16-byte aligned (float4 stores where P*Q % 4 == 0)
    and 4 bytes past that (scalar stores only)."""
    require_backend("cuda")
    from pykern._device import DeviceArray
    mod = _ext()
    x, wt, bias, params = _inputs(case, "float32", seed_for("conv2d-cuda-tiles", case))
    from pykern.ops import SPECS
    # reference() takes the normalized parameters ((h, w) pairs), as the dispatch passes them.
    expected = reference(x, wt, bias, **SPECS["conv2d"].normalize(params)).astype(np.float32)
    dims, y_shape = _dims(x, wt, params)
    dx, dw = DeviceArray.from_host(x), DeviceArray.from_host(wt)
    db = DeviceArray.from_host(bias) if bias is not None else None
    size = int(np.prod(y_shape))
    buf = DeviceArray.empty((size + 1,), np.float32)  # room to shift y by one element
    offset = 0 if aligned else 4
    assert buf.ptr % 16 == 0, "the allocator returns 256-byte aligned memory"
    y = DeviceArray(buf.ptr + offset, y_shape, np.float32, owner=buf._owner)
    tiles = configs("conv2d", "implicit_gemm")
    assert tiles, "implicit_gemm's tile configurations"
    for tile, name in enumerate(tiles):
        mod.memset(buf.ptr, 0xFF, buf.nbytes)  # NaN: an element never written fails below
        mod.conv2d_implicit_gemm((dx.ptr, dw.ptr, db.ptr if db is not None else 0), y.ptr, dims, "float32", 0,
                                 config=tile)
        mod.synchronize()
        np.testing.assert_array_equal(y.copy_to_host(), expected, err_msg=f"tile {name}")


def test_unsupported_reasons():
    """The C++ rules behind every variant's `supports` (no GPU needed, only the extension)."""
    mod = _ext()

    def why(variant, dtype="float32", **kw):
        shape = dict(N=2, C=4, H=9, W=9, K=6, R=3, S=3, P=9, Q=9, sh=1, sw=1, ph=1, pw=1, dh=1, dw=1,
                     groups=1, relu=0) | kw
        return mod.conv2d_unsupported(variant, tuple(shape[f] for f in mod.conv2d_fields), dtype)

    for v in ("direct", "smem_tiled", "im2col_gemm", "implicit_gemm"):
        assert why(v) == "", v
        assert "does not match" in why(v, P=8), v
        assert "groups must divide" in why(v, groups=3), v
        assert "2^31" in why(v, C=1 << 16, H=1 << 8, W=1 << 8, P=1 << 8, Q=1 << 8), v
    assert why("direct", "float64") == why("smem_tiled", "float64") == ""
    assert why("implicit_gemm", "float64") == "unsupported dtype float64 (takes float32)"
    assert why("im2col_gemm", "float64") == "unsupported dtype float64 (takes float32)"
    assert why("direct", "float16") == "unsupported dtype float16 (takes float32, float64)"
    big = dict(H=200, W=200, R=9, S=9, dh=16, dw=16, P=72, Q=72, ph=0, pw=0)
    assert "shared memory" in why("smem_tiled", **big)
    assert why("direct", **big) == why("implicit_gemm", **big) == ""
    assert "unknown conv2d variant" in why("winograd")
    # C/groups*R*S past its GEMM's 32-bit tile offsets (K <= 16777215): im2col_gemm refuses with
    # matmul's own rule; direct and implicit_gemm index the filter their own way.
    deep = dict(C=1 << 25, H=1, W=1, K=1, R=1, S=1, P=1, Q=1, ph=0, pw=0)
    assert "its GEMM (matmul_f32_best" in why("im2col_gemm", **deep)
    assert "K must be at most 16777215" in why("im2col_gemm", **deep)
    assert why("direct", **deep) == why("implicit_gemm", **deep) == ""
    # mma_sync (16-bit only): its grid's y (channel tiles of every group) and its pixel index.
    assert why("mma_sync") == "unsupported dtype float32 (takes float16, bfloat16)"
    assert why("mma_sync", "float16") == why("mma_sync", "bfloat16") == ""
    many = dict(C=65536, K=65536, groups=65536, H=1, W=1, R=1, S=1, P=1, Q=1, ph=0, pw=0)
    assert "65535 channel tiles" in why("mma_sync", "float16", **many)
    assert why("direct", **many) == ""
    wide = dict(N=1, C=1, H=1, W=2**31 - 2, K=1, R=1, S=1, P=1, Q=2**31 - 2, ph=0, pw=0)
    assert "64 below 2^31" in why("mma_sync", "float16", **wide)
    assert why("direct", **wide) == ""


def test_launchers_refuse_bad_shapes_before_touching_the_gpu():
    """The binder asks the table's rule before any launcher runs (the pointers here are null)."""
    mod = _ext()
    shape = (2, 4, 9, 9, 6, 3, 3, 9, 9, 1, 1, 1, 1, 1, 1, 1, 0)
    bad_p = (2, 4, 9, 9, 6, 3, 3, 8, 9, 1, 1, 1, 1, 1, 1, 1, 0)
    rows = [r["kernel"] for r in table("conv2d")]
    for row in table("conv2d"):  # in a dtype the row takes, so the shape is what it refuses
        with pytest.raises(ValueError, match="does not match"):
            getattr(mod, row["kernel"])((0, 0, 0), 0, bad_p, row["dtypes"][0], 0)
    with pytest.raises(TypeError, match=r"conv2d_implicit_gemm: unsupported dtype float64 \(takes float32\)"):
        mod.conv2d_implicit_gemm((0, 0, 0), 0, shape, "float64", 0)
    with pytest.raises(ValueError, match=r"config must be -1 \(auto\) or in \[0, "):
        mod.conv2d_implicit_gemm((0, 0, 0), 0, shape, "float32", 0, config=len(configs("conv2d", "implicit_gemm")))
    untiled = [r for r in table("conv2d") if not configs("conv2d", r["name"])]
    assert untiled and len(untiled) < len(rows)
    for row in untiled:
        with pytest.raises(ValueError, match="config must be -1: only implicit_gemm has configurations"):
            getattr(mod, row["kernel"])((0, 0, 0), 0, shape, row["dtypes"][0], 0, config=0)


def test_dispatch_skips_smem_tiled_past_its_budget():
    require_backend("cuda")
    x = np.ones((1, 3, 200, 200), np.float32)
    wt = np.ones((4, 3, 9, 9), np.float32)
    with pytest.raises(Unsupported, match="shared memory"):
        pk.conv2d(x, wt, dilation=16, backend="cuda", variant="smem_tiled")


# --- mma_sync (tensor cores): its two ways of staging x, and its ldmatrix reads ----------------
# (x: (N, C, H, W), w: (K, C/groups, R, S), params, x shifted by this many elements). The rung
# copies a tap's 8-pixel chunk with one 16-byte cp.async where the chunk is one aligned run of x
# inside the input row, and gathers it pixel by pixel otherwise; the generated tests' small
# feature maps seldom make such runs, so these shapes are chosen to make each kind.
MMA_PATHS = [
    # every chunk an aligned run; w rows of 16 elements (16-byte copies of the filters too)
    pytest.param((2, 16, 3, 16), (24, 16, 1, 1), {}, 0, id="runs"),
    # runs cut by the padding, misaligned taps gathered; CRS = 216: 4 k-tiles through the 3-stage
    # ring; ragged channel (Kg = 70) and pixel (M = 80) tiles
    pytest.param((1, 24, 5, 16), (70, 24, 3, 3), dict(padding=1, bias=True, activation="relu"), 0, id="mixed"),
    # an aligned run whose pixels 12.. lie past the row's end, in the padding: gathered, not copied
    pytest.param((1, 4, 2, 12), (5, 4, 1, 1), dict(padding=(0, 8)), 0, id="run_past_the_row"),
    # x one element past a 16-byte boundary: the taps whose runs were aligned are gathered, and
    # others' runs (iw = 7 mod 8) become the aligned ones
    pytest.param((1, 24, 5, 16), (70, 24, 3, 3), dict(padding=1, bias=True), 1, id="x_misaligned"),
    # stride, dilation, uneven padding, groups; CRS = 18: filters copied element by element
    pytest.param((2, 6, 11, 17), (10, 3, 3, 2), dict(stride=(2, 1), dilation=(2, 3), padding=(3, 2), groups=2,
                                                     bias=True, activation="relu"), 0, id="geometry"),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("x_shape,w_shape,params,shift", MMA_PATHS)
def test_mma_sync_copies_and_gathers_exactly(x_shape, w_shape, params, shift, dtype):
    """Small integers, |sums| <= 9 * 216 < 2048: every product and partial sum is exact in fp32,
    and the result exact in fp16 (in bf16, rounded once as the reference's cast rounds), so any
    wrong pixel, tap, padding zero or fragment shows. x is shifted `shift` elements past a
    16-byte boundary; y by one element (the stores need no alignment); NaN-poisoned y."""
    require_backend("cuda")
    mod = _ext()
    if dtype == "bfloat16":
        np_dtype = pytest.importorskip("ml_dtypes", reason="ml_dtypes needed for bfloat16").bfloat16
    else:
        np_dtype = np.dtype(dtype)
    params = dict(params)
    rng = np.random.default_rng(seed_for("conv2d-mma-paths", x_shape, w_shape, shift, dtype))
    x, wt = _ints(rng, x_shape, np_dtype), _ints(rng, w_shape, np_dtype)
    bias = _ints(rng, (w_shape[0],), np_dtype) if params.pop("bias", False) else None
    from pykern.ops import SPECS
    expected = reference(x.astype(np.float64), wt.astype(np.float64),
                         None if bias is None else bias.astype(np.float64),
                         **SPECS["conv2d"].normalize(params)).astype(np_dtype)
    dims, y_shape = _dims(x, wt, params)
    xb = DeviceArray.from_host(np.concatenate([np.ones(shift, np_dtype), x.reshape(-1)]))
    dw = DeviceArray.from_host(wt)
    db = DeviceArray.from_host(bias) if bias is not None else None
    size = int(np.prod(y_shape))
    yb = DeviceArray.from_host(np.full(size + 2, np.nan, np_dtype))
    mod.conv2d_mma_sync((xb.ptr + shift * x.itemsize, dw.ptr, db.ptr if db is not None else 0),
                        yb.ptr + x.itemsize, dims, dtype, 0)
    mod.synchronize()
    got = yb.copy_to_host()
    assert np.isnan(got.astype(np.float64)[[0, -1]]).all(), "wrote outside y"
    np.testing.assert_array_equal(got[1:-1].reshape(y_shape), expected)


@pytest.mark.parametrize("x_shape,w_shape,params,shift", MMA_PATHS[:2])
def test_mma_sync_ldmatrix_reads_are_bank_conflict_free(x_shape, w_shape, params, shift):
    """The simulator counts each ldmatrix's shared-memory wavefronts: both tiles, the filters
    and the gathered x, must be stored swizzled so every 8x8 matrix takes one."""
    mod = _ext()
    if not getattr(mod, "SIMULATOR", False):
        pytest.skip("bank conflicts are counted by the simulator only")
    params = {k: v for k, v in params.items() if k != "bias"}
    rng = np.random.default_rng(seed_for("conv2d-mma-banks", x_shape))
    x, wt = _ints(rng, x_shape, np.float16), _ints(rng, w_shape, np.float16)
    mod.sim_reset_stats()
    pk.conv2d(x, wt, backend="cuda", variant="mma_sync", **params)
    stats = mod.sim_stats()
    assert stats["ldmatrix_matrices"] > 0
    assert stats["ldmatrix_extra_wavefronts"] == 0, (
        f"{stats['ldmatrix_extra_wavefronts']} extra wavefronts over {stats['ldmatrix_matrices']} ldmatrix "
        "8x8 matrices")
