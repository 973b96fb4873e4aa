"""CUDA C++ matmul checks beyond the generated reference tests (tests/test_correctness.py).

* Exact results on small-integer inputs: any indexing slip changes an integer, whereas the
  generated tests compare random normals under a tolerance.
* Misaligned views: fresh allocations are always 16-byte aligned, so the generated tests never
  reach the scalar fallback that vector variants take for a misaligned a, b or c; these views
  force it with shapes where K and N alone would allow vector accesses. Guard cells around c
  catch writes outside it.
* Argument errors from the bound launchers, which need the extension but no GPU.
* On the simulator, ldmatrix reads free of shared-memory bank conflicts.
"""
import re

import numpy as np
import pytest
from conftest import require_backend, seed_for

import pykern as pk
from pykern._check import compare, tolerance_key
from pykern._device import DeviceArray
from pykern.ops import SPECS

VARIANTS = pk.variants("matmul", "cuda")


def _variant_dtypes() -> list:
    return [pytest.param(v, dtype, id=f"{v.name}-{dtype}") for v in VARIANTS for dtype in v.dtypes]

# (M, N, K): vector-friendly (K, N multiples of 8), scalar-only (odd K and N), and edge tiles
# on every side of the 128x128 block tiles and 16x16 fragments.
EXACT_SHAPES = [(1, 1, 1), (130, 136, 40), (33, 67, 129), (257, 9, 17)]


def _host(rng, shape, dtype, lo=-4, hi=5):
    x = rng.integers(lo, hi, size=shape).astype(np.float64)
    x[x == 0] = 1  # no zeros: an element never read would go unnoticed
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes needed for bfloat16")
        return x.astype(ml_dtypes.bfloat16)
    return x.astype(dtype)


@pytest.mark.parametrize("variant,dtype", _variant_dtypes())
def test_exact_on_small_integers(variant, dtype):
    """Integer inputs in [-4, 4], K <= 129: every product and partial sum is exact in fp32
    accumulation (and the inputs exact in fp16/bf16), so the result must equal a @ b exactly."""
    require_backend("cuda")
    for m, n, k in EXACT_SHAPES:
        rng = np.random.default_rng(seed_for("exact", variant.key, dtype, m, n, k))
        a, b = _host(rng, (m, k), dtype), _host(rng, (k, n), dtype)
        c = pk.matmul(a, b, backend="cuda", variant=variant.name)
        expected = a.astype(np.float64) @ b.astype(np.float64)
        assert c.dtype == SPECS["matmul"].output_dtype(a.dtype)
        bad = np.argwhere(c.astype(np.float64) != expected)
        assert bad.size == 0, (f"{m}x{n}x{k}: {len(bad)} wrong, first at {tuple(bad[0])}: "
                               f"got {c[tuple(bad[0])]}, expected {expected[tuple(bad[0])]}")


def _view(base: DeviceArray, offset: int, shape):
    """A DeviceArray of ``shape`` starting ``offset`` elements into ``base``."""
    return DeviceArray(base.ptr + offset * base.dtype.itemsize, shape, base.dtype, owner=base._owner)


@pytest.mark.parametrize("variant,dtype", _variant_dtypes())
@pytest.mark.parametrize("offsets", [(0, 0, 0), (1, 0, 0), (0, 3, 0), (0, 0, 2), (5, 6, 7)],
                         ids=lambda o: "a+{}_b+{}_c+{}".format(*o))
def test_misaligned_views(variant, dtype, offsets):
    """a, b and c start 0..7 elements past a 16-byte boundary; K = 136 and N = 72 are
    multiples of 8, so only the pointers decide between vector and scalar paths."""
    require_backend("cuda")
    m, n, k = 130, 72, 136
    ao, bo, co = offsets
    rng = np.random.default_rng(seed_for("misaligned", variant.key, dtype, *offsets))
    a, b = _host(rng, (m, k), dtype), _host(rng, (k, n), dtype)
    out_dtype = SPECS["matmul"].output_dtype(a.dtype)
    a_buf = DeviceArray.from_host(np.concatenate([a.reshape(-1)[:ao], a.reshape(-1)]))
    b_buf = DeviceArray.from_host(np.concatenate([b.reshape(-1)[:bo], b.reshape(-1)]))
    guard = 16
    c_buf = DeviceArray.from_host(np.full(co + m * n + guard, np.nan, out_dtype))
    c = _view(c_buf, co, (m, n))
    pk.matmul(_view(a_buf, ao, (m, k)), _view(b_buf, bo, (k, n)), backend="cuda",
              variant=variant.name, out=c)
    got = c_buf.copy_to_host()
    assert np.isnan(got[:co]).all() and np.isnan(got[co + m * n:]).all(), "wrote outside c"
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cmp = compare(got[co:co + m * n].reshape(m, n), a64 @ b64, np.abs(a64) @ np.abs(b64),
                  tolerance_key(dtype, out_dtype))
    assert cmp.ok, f"offsets {offsets}: {cmp.message()}"


@pytest.mark.parametrize("variant", [v for v in VARIANTS if {"float16", "bfloat16"} & set(v.dtypes)],
                         ids=lambda v: v.name)  # the tensor-core rungs, which may feed on ldmatrix
def test_ldmatrix_reads_are_bank_conflict_free(variant):
    """The simulator counts each ldmatrix's shared-memory wavefronts: a variant that reads its
    tiles with ldmatrix must lay them out (swizzled) so every 8x8 matrix takes one, on the vector
    path (64^3) and on the scalar one (K odd)."""
    mod = _ext()
    if not getattr(mod, "SIMULATOR", False):
        pytest.skip("bank conflicts are counted by the simulator only")
    dtype = variant.dtypes[0]
    for m, n, k in [(64, 64, 64), (33, 40, 37)]:
        rng = np.random.default_rng(seed_for("ldmatrix-banks", variant.key, m, n, k))
        a, b = _host(rng, (m, k), dtype), _host(rng, (k, n), dtype)
        mod.sim_reset_stats()
        pk.matmul(a, b, backend="cuda", variant=variant.name)
        stats = mod.sim_stats()
        if stats["ldmatrix_matrices"] == 0:
            pytest.skip(f"{variant.name} does not use ldmatrix")
        assert stats["ldmatrix_extra_wavefronts"] == 0, (
            f"{m}x{n}x{k}: {stats['ldmatrix_extra_wavefronts']} extra wavefronts over "
            f"{stats['ldmatrix_matrices']} ldmatrix 8x8 matrices")


def _ext():
    from pykern._device import ext
    try:
        return ext()
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_launcher_rejects_bad_arguments(variant):
    """Shape and dtype errors are raised before any CUDA call, so this runs without a GPU."""
    launch = getattr(_ext(), f"matmul_{variant.name}")
    dtype = variant.dtypes[0]
    for m, n, k in [(0, 4, 4), (4, 0, 4), (4, 4, 0), (2**31, 4, 4), (4, 4, 2**31 - 1)]:
        with pytest.raises(ValueError, match=r"M, N, K must be in \[1, "):
            launch((0, 0), 0, (m, n, k, 0, 0), dtype, 0)
    wrong = "float64" if dtype != "float64" and "float64" not in variant.dtypes else "float16"
    with pytest.raises(TypeError, match=f"matmul_{variant.name}: unsupported dtype {wrong}"):
        launch((0, 0), 0, (4, 4, 4, 0, 0), wrong, 0)


# From blocktile_2d on, offsets inside a tile are 32-bit: the rows whose table rule refuses a K
# one past the largest any 128-row tile allows, and the rows that take it (naming no rung here).
_DEEP = (1, 4, (2**31 - 1) // 128 + 1, 0, 0)


def _tile_limits():
    """{variant: its refusal of _DEEP} for the tiled rows, and the names of the others in order."""
    mod = _ext()
    why = {v.name: mod.matmul_unsupported(v.name, _DEEP, v.dtypes[0]) for v in VARIANTS}
    return {n: w for n, w in why.items() if w}, [n for n, w in why.items() if not w]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_k_or_n_past_the_tile_offset_limit_is_refused(variant):
    """BM*K + BK or BK*N + BN past 2^31 - 1 is a ValueError naming both limits and the tiles, and
    the rows that take any K and N, raised before any CUDA call (the pointers here are null)."""
    tiled, untiled = _tile_limits()
    assert tiled and untiled, "the ladder has rungs on both sides of the 32-bit tile offsets"
    launch = getattr(_ext(), f"matmul_{variant.name}")
    if variant.name not in tiled:  # 64-bit offsets: past every shape rule, to the pointer check
        with pytest.raises(ValueError, match=rf"^matmul_{variant.name}: the output is a null pointer"):
            launch((1, 1), 0, _DEEP, variant.dtypes[0], 0)
        return
    tiles = re.search(r"inside its (\d+)x(\d+) and (\d+)x(\d+) tiles", tiled[variant.name])
    assert tiles and tiles[2] == tiles[3], tiled[variant.name]
    bm, bk, bn = int(tiles[1]), int(tiles[2]), int(tiles[4])
    max_k, max_n = (2**31 - 1 - bk) // bm, (2**31 - 1 - bn) // bk
    limits = rf"K must be at most {max_k} and N at most {max_n} \(32-bit offsets inside its"
    others = ", ".join(untiled[:-1]) + " and " + untiled[-1]
    for m, n, k in [(1, 4, max_k + 1), (1, max_n + 1, 4), (3, max_n + 7, max_k + 5)]:
        with pytest.raises(ValueError, match=rf"^matmul_{variant.name}: {limits} .* got K={k} N={n}; {others} take"):
            launch((0, 0), 0, (m, n, k, 0, 0), variant.dtypes[0], 0)



@pytest.mark.parametrize("m,n,k", [(70, 136, 648), (70, 135, 647)], ids=["tma", "fallback"])
def test_wgmma_ring_wraps_exactly(m, n, k):
    """The wgmma rung over 11 k-tiles, so its 4-stage ring wraps and stages are refilled while
    other groups are in flight (on the simulator, a stage released too early reads the TMA's NaN
    poison): exact on small integers, through TMA (K, N multiples of 8) and through the producer
    warp's fallback copies (N, K odd)."""
    require_backend("cuda")
    rng = np.random.default_rng(seed_for("wgmma-ring", m, n, k))
    a, b = _host(rng, (m, k), "float16"), _host(rng, (k, n), "float16")
    c = pk.matmul(a, b, backend="cuda", variant="wgmma")
    np.testing.assert_array_equal(c, a.astype(np.float64) @ b.astype(np.float64))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_inputs_without_a_variant_run_the_tensor_core_rung(dtype):
    """The cuda defaults are float32 rungs; 16-bit matmul and conv2d inputs without variant= go to
    mma_sync (pykern/cuda/__init__.py's route), the same bits as naming it; float32 keeps the
    default, and a named 16-bit variant is never rerouted."""
    require_backend("cuda")
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="NumPy has no bfloat16 without ml_dtypes")
    from pykern._dispatch import resolve
    rng = np.random.default_rng(seed_for("half-route", dtype))
    a, b = (rng.standard_normal(s).astype(np.float32).astype(dtype) for s in ((17, 33), (33, 9)))
    assert np.array_equal(pk.matmul(a, b, backend="cuda"), pk.matmul(a, b, backend="cuda", variant="mma_sync"))
    x = rng.standard_normal((2, 4, 6, 7)).astype(np.float32).astype(dtype)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32).astype(dtype)
    assert np.array_equal(pk.conv2d(x, w, padding=1, backend="cuda"),
                          pk.conv2d(x, w, padding=1, backend="cuda", variant="mma_sync"), equal_nan=True)
    f32 = {"a": a.astype(np.float32), "b": b.astype(np.float32)}
    default = next(v.name for v in pk.variants("matmul", "cuda") if v.default)
    assert resolve("matmul", f32, {}, backend="cuda").variant.name == default
    if dtype == "float16":
        named = resolve("matmul", {"a": a, "b": b}, {}, backend="cuda", variant="wmma_fp16")
        assert named.variant.name == "wmma_fp16"
