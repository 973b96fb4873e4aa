"""The compiled CPU kernels (pykern._cpu): every instruction-set path this machine has, the
binder's checks, the thread setting, and calls from several Python threads at once.

Their correctness on every test case, hostile input and hypothesis search comes from the
registry-generated tests (they are `numpy`-backend variants); this file covers what those cannot
see: the paths below the best one, and the plumbing."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import seed_for

import pykern as pk
from pykern import _build
from pykern._check import run_case
from pykern._dispatch import call
from pykern.cpu import _compiled
from pykern.ops import SPECS
from pykern.ops.conv2d import output_size
from pykern.ops.conv2d_backward import reference_input, reference_weight

BUILT = _build.EXTENSIONS.get("_cpu") == "built"
pytestmark = pytest.mark.skipif(not BUILT, reason=f"pykern._cpu not built: {_build.EXTENSIONS.get('_cpu')}")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    """``python -c code`` with these environment variables, from / (never the source tree)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **env}, cwd="/")


def _restore_pool(before: str) -> None:
    """Put back the pool that _compiled.pool() named before a test changed it."""
    if before == "own":
        _compiled.own_pool()
    else:
        _compiled.share_torch_threads()


@pytest.fixture(params=["own", "torch"])
def pool(request):
    """Whose threads run the test's threaded calls: pykern's own pool, or torch's OpenMP threads
    (share_torch_threads, as after ``import pykern.torch``); the pool before is restored after.
    The same parts run either way, so every bit-equality test holds on both."""
    before = _compiled.pool()
    if request.param == "own":
        _compiled.own_pool()
    else:
        pytest.importorskip("torch")
        if _compiled.share_torch_threads() is None:
            pytest.skip(f"torch's OpenMP runtime here is not {_compiled.TORCH_OPENMP}, or PYKERN_CPU_POOL=own")
    yield request.param
    _restore_pool(before)


def compiled_variants():
    return [v for v in pk.variants(backend="numpy") if v.takes_problem]


def test_every_table_row_is_a_numpy_variant():
    rows = {(op, r["name"]) for op in _compiled.ext.TABLES for r in getattr(_compiled.ext, f"{op}_variants")}
    assert rows == {(v.op, v.name) for v in compiled_variants()}
    assert {"relu", "relu_backward"} <= {op for op, _ in rows}
    # Defaults move only on measurements, each named in _compiled.COMPILED_DEFAULTS with its record.
    assert {(v.op, v.name) for v in compiled_variants() if v.default} == set(_compiled.COMPILED_DEFAULTS.items())


# Small cases per op that cross every vector width and tile edge; the full lists run at the best
# ISA in tests/test_correctness.py.
def _isa_cases(op):
    return SPECS[op].test_cases("numpy", simulator=True)


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_every_isa_path_matches_the_reference(isa):
    if isa not in _compiled.isas():
        pytest.skip(f"this CPU runs only {_compiled.isas()}")
    saved = _compiled.ext.isa()
    try:
        assert _compiled.set_isa(isa) == isa
        for v in compiled_variants():
            for dtype in v.dtypes:
                for case in _isa_cases(v.op):
                    cmp = run_case(v, case, dtype, seed_for("isa", isa, v.key, dtype, case))
                    assert cmp.ok, f"{isa} {v.key} {dtype} {case}: {cmp.message()}"
    finally:
        _compiled.set_isa(saved)


def test_the_environment_forces_a_lower_path_and_a_typo_is_named():
    code = "import pykern.cpu._compiled as c; print(c.isa())"
    out = _python(code, PYKERN_CPU_ISA="baseline")
    assert out.returncode == 0 and out.stdout.strip() == "baseline", out.stderr
    out = _python(code, PYKERN_CPU_ISA="avx3")
    assert out.returncode != 0 and "PYKERN_CPU_ISA: expected baseline, avx2 or avx512, got 'avx3'" in out.stderr
    with pytest.raises(ValueError, match="set_isa: expected"):
        _compiled.set_isa("sse9")


def test_the_binder_refuses_what_would_touch_memory_out_of_bounds():
    ext = _compiled.ext
    x, y = np.ones(8, np.float32), np.empty(8, np.float32)
    with pytest.raises(ValueError, match="expected 9 elements"):
        ext.relu_simd((x,), y, [9], 1)
    with pytest.raises(TypeError, match="unsupported dtype"):
        ext.relu_simd((x.astype(np.int32),), y, [8], 1)
    with pytest.raises(ValueError, match="one dtype"):
        ext.relu_simd((x.astype(np.float64),), y, [8], 1)
    with pytest.raises(ValueError, match="not C-contiguous"):
        ext.relu_simd((np.ones(16, np.float32)[::2],), y, [8], 1)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ext.relu_simd((x,), y, [8], 1)
    with pytest.raises(ValueError, match="expected a NumPy array"):
        ext.relu_simd(([1.0] * 8,), np.empty(8, np.float32), [8], 1)
    with pytest.raises(ValueError, match="non-negative"):
        ext.relu_simd((x,), np.empty(8, np.float32), [-1], 1)


def test_threads_follow_blas_limits():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert _compiled.threads() == 1
    assert _compiled.threads() >= 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.usefixtures("pool")
def test_threaded_relu_chunks_cover_every_element_exactly(dtype):
    """relu and its gradient share a call between threads from 2 MiB on (128 KiB on torch's
    threads), in 64 KiB chunks taken from a counter: at any thread count every element is the
    spec's, the last partial chunk and NaN included (x < 0 ? 0 : x keeps NaN; dx = x <= 0 ? 0 : dy)."""
    ext = _compiled.ext
    itemsize = np.dtype(dtype).itemsize
    for n in ((2 << 20) // itemsize * 3 // 2 + 37, (200 << 10) // itemsize + 37):  # 3 MiB, 200 KiB: ragged tails
        rng = np.random.default_rng(seed_for("relu-chunks", dtype, n))
        x = rng.standard_normal(n).astype(dtype)
        x[rng.integers(0, n, 50)] = np.nan
        dy = rng.standard_normal(n).astype(dtype)
        want_y = np.where(x < 0, 0, x).astype(dtype)
        with np.errstate(invalid="ignore"):
            want_dx = np.where(x <= 0, 0, dy).astype(dtype)
        for threads in (1, 2, 3):
            y = np.full(n, 7, dtype)
            ext.relu_simd((x,), y, [n], threads)
            assert np.array_equal(y, want_y, equal_nan=True), f"relu n={n} threads={threads}"
            dx = np.full(n, 7, dtype)
            ext.relu_backward_simd((dy, x), dx, [n], threads)
            assert np.array_equal(dx, want_dx), f"relu_backward n={n} threads={threads}"


@pytest.mark.usefixtures("pool")
def test_calls_from_several_python_threads_at_once():
    """The GIL is released while a kernel runs and each call owns its buffers: concurrent calls
    (each itself threaded where it may be) give every caller its own right answer."""
    rng = np.random.default_rng(seed_for("concurrent"))
    jobs = []
    for v in compiled_variants():
        spec = SPECS[v.op]
        case = spec.test_cases("numpy")[-3]
        arrays, params = spec.make_inputs(case, v.dtypes[0], rng)
        jobs.append((v, arrays, params, call(v.op, arrays, params, backend="numpy", variant=v.name)))
    errors = []

    def work():
        try:
            for _ in range(3):
                for v, arrays, params, want in jobs:
                    got = call(v.op, arrays, params, backend="numpy", variant=v.name)
                    if not np.array_equal(got, want, equal_nan=True):
                        errors.append(v.key)
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(repr(e))

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("n", [300, 1600])
@pytest.mark.usefixtures("pool")
def test_threads_over_an_a_too_big_to_pack_once_per_thread(n):
    """A of 8.7 MB (over gemm.h's kPrepackBytes): two threads pack it up front for 128-column tiles
    (n = 1600) and share B the BLIS way for 32-column ones (n = 300); either way the one-thread
    bits."""
    ext = _compiled.ext
    rng = np.random.default_rng(seed_for("big-a", n))
    a = rng.standard_normal((1040, 2100)).astype(np.float32)
    b = rng.standard_normal((2100, n)).astype(np.float32)
    want = np.empty((1040, n), np.float32)
    ext.matmul_simd((a, b), want, [1040, n, 2100, 0, 0], 1)
    got = np.full_like(want, np.nan)
    ext.matmul_threaded((a, b), got, [1040, n, 2100, 0, 0], 2)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("m,n,k,ta,tb", [(300, 200, 100, 0, 0), (2, 4000, 600, 0, 0), (257, 33, 513, 1, 0),
                                         (130, 97, 300, 1, 1), (1000, 3, 1500, 0, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.usefixtures("pool")
def test_threaded_matmul_is_simd_bit_for_bit_on_any_thread_count(m, n, k, ta, tb, dtype):
    """Threads split c's tiles, never a sum: every thread count gives the one-thread result,
    row blocks and (for a short, wide c) column ranges alike, transposed operands included."""
    ext = _compiled.ext
    rng = np.random.default_rng(seed_for("threads", m, n, k, ta, tb, dtype))
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    want = np.empty((m, n), dtype)
    ext.matmul_simd((a, b), want, [m, n, k, ta, tb], 1)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert np.allclose(want, ref, rtol=1e-4, atol=1e-4)
    for threads in (1, 2, 3, 4):
        got = np.full((m, n), np.nan, dtype)
        ext.matmul_threaded((a, b), got, [m, n, k, ta, tb], threads)
        assert np.array_equal(got, want), f"threads={threads}"


# The last: x split by stride phase (SplitPlanes) past its threaded size (128 KiB), in chunks.
@pytest.mark.parametrize("geom", [(3, 16, 30, 22, 24, 3, 3, 1, 1, 1, 1), (2, 6, 17, 9, 6, 3, 2, 2, 1, 2, 3),
                                  (5, 4, 7, 7, 40, 1, 1, 1, 0, 1, 2), (4, 32, 40, 36, 16, 3, 3, 2, 1, 1, 2)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.usefixtures("pool")
def test_threaded_conv2d_is_implicit_gemm_bit_for_bit_on_any_thread_count(geom, dtype):
    """conv2d's threads split channel x pixel tiles (tiles straddling two images included), never a
    sum: every thread count gives the one-thread result, bias and ReLU fused or not."""
    ext = _compiled.ext
    n, c, h, w, k, r, s, stride, pad, dil, groups = geom
    rng = np.random.default_rng(seed_for("conv-threads", *geom, dtype))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c // groups, r, s)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    p, q = ((h + 2 * pad - dil * (r - 1) - 1) // stride + 1, (w + 2 * pad - dil * (s - 1) - 1) // stride + 1)
    for b, relu in ((None, 0), (bias, 1)):
        dims = [n, c, h, w, k, r, s, p, q, stride, stride, pad, pad, dil, dil, groups, relu]
        want = np.full((n, k, p, q), np.nan, dtype)
        ext.conv2d_implicit_gemm((x, wt, b), want, dims, 1)
        assert not np.isnan(want).any()
        for threads in (2, 3):
            got = np.full_like(want, np.nan)
            ext.conv2d_threaded((x, wt, b), got, dims, threads)
            assert np.array_equal(got, want), f"threads={threads} bias={b is not None}"


# (N, C, H, W, K, R, S, stride, pad, dilation, groups): dw's pixels span two chunks of the fixed
# split (1,024 pixels or more each), chunks ending inside an image; groups, stride 2 (dx's four
# output phases), dilation, a 1x1 filter. Each GEMM but the third's dx is big enough (> 12 MFLOP,
# gemm.h's threads_for) to run on 3 threads where 3 are asked for.
GRADIENT_GEOMETRIES = [(4, 32, 30, 22, 32, 3, 3, 1, 1, 1, 2), (4, 32, 28, 27, 64, 3, 3, 2, 1, 1, 1),
                       (2, 16, 37, 35, 16, 3, 2, 1, 2, 2, 1), (9, 64, 13, 11, 64, 1, 1, 1, 0, 1, 1)]


@pytest.mark.parametrize("geom", GRADIENT_GEOMETRIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.usefixtures("pool")
def test_threaded_conv2d_gradients_are_the_same_bits_on_any_thread_count(geom, dtype):
    """dx's threads split tiles, never a sum: every thread count gives implicit_gemm's bits. dw's
    threads take chunks of the pixel sum, each into its own partial, added in chunk order: the
    chunks come from the shape alone, so every thread count (and every run) gives the same bits,
    within tolerance of the reference."""
    ext = _compiled.ext
    n, c, h, w, k, r, s, stride, pad, dil, groups = geom
    rng = np.random.default_rng(seed_for("grad-threads", *geom, dtype))
    p, q = ((h + 2 * pad - dil * (r - 1) - 1) // stride + 1, (w + 2 * pad - dil * (s - 1) - 1) // stride + 1)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c // groups, r, s)).astype(dtype)
    dy = rng.standard_normal((n, k, p, q)).astype(dtype)
    dims = [n, c, h, w, k, r, s, p, q, stride, stride, pad, pad, dil, dil, groups]
    conv = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    dx = np.full(x.shape, np.nan, dtype)
    ext.conv2d_backward_input_implicit_gemm((dy, wt), dx, dims, 1)
    check = dtype == "float32"  # the float64 reference is most of this test's time: once per geometry
    assert not check or np.allclose(dx, reference_input(dy, wt, x.shape, **_pairs(conv)), rtol=1e-4, atol=1e-4)
    dw = None
    for threads in (1, 2, 3):
        got = np.full_like(dx, np.nan)
        ext.conv2d_backward_input_threaded((dy, wt), got, dims, threads)
        assert np.array_equal(got, dx), f"dx threads={threads}"
        got = np.full_like(wt, np.nan)
        ext.conv2d_backward_weight_threaded((x, dy), got, dims, threads)
        if dw is None:
            dw = got
            assert not check or np.allclose(dw, reference_weight(x, dy, wt.shape, **_pairs(conv)), rtol=1e-4, atol=1e-3)
        assert np.array_equal(got, dw), f"dw threads={threads}"
    # windows (stride 1; its own summation order, so its own bits): the same on every thread count
    win = None
    for threads in (1, 2, 3):
        got = np.full_like(wt, np.nan)
        ext.conv2d_backward_weight_windows((x, dy), got, dims, threads)
        win = got if win is None else win
        assert np.array_equal(got, win), f"windows threads={threads}"
    assert not check or np.allclose(win, reference_weight(x, dy, wt.shape, **_pairs(conv)), rtol=1e-4, atol=1e-3)


def _pairs(conv):
    return {key: (v, v) if key != "groups" else v for key, v in conv.items()}


def test_the_conv2d_binder_refuses_geometry_a_launcher_cannot_meet():
    ext = _compiled.ext
    x, w, y = np.ones((1, 2, 5, 5), np.float32), np.ones((2, 2, 3, 3), np.float32), np.empty((1, 2, 3, 3), np.float32)
    good = [1, 2, 5, 5, 2, 3, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1, 0]
    ext.conv2d_implicit_gemm((x, w, None), y, good, 1)  # bias is optional: None is taken
    assert np.allclose(y, 18.0)
    with pytest.raises(ValueError, match="groups must be >= 1"):
        ext.conv2d_implicit_gemm((x, w, None), y, good[:15] + [0, 0], 1)
    with pytest.raises(ValueError, match="output size"):
        ext.conv2d_implicit_gemm((x, w, None), y, good[:7] + [3, 3] + [2, 2] + good[11:], 1)
    with pytest.raises(ValueError, match="expected 2 elements"):
        ext.conv2d_implicit_gemm((x, w, np.ones(3, np.float32)), y, good, 1)


def _threaded_in_child(queue):
    ext = _compiled.ext
    a = np.arange(300 * 200, dtype=np.float64).reshape(300, 200) % 7 - 3
    c = np.empty((300, 300))
    ext.matmul_threaded((a, a.T.copy()), c, [300, 300, 200, 0, 0], 2)
    queue.put((float(np.abs(c - a @ a.T).max()), _compiled.pool()))


@pytest.mark.usefixtures("pool")
def test_the_thread_pool_works_in_a_forked_child():
    """The pool's threads exist only in the parent: a forked child's threaded call must start its
    own instead of waiting forever for threads that were never copied."""
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs the fork start method")
    a = np.ones((256, 256))
    _compiled.ext.matmul_threaded((a, a), np.empty_like(a), [256, 256, 256, 0, 0], 2)  # the pool exists
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_threaded_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("a threaded call in a forked child hung")
    # The child runs on pykern's own pool, whoever's threads the parent used: libgomp's are not
    # copied into a child either.
    assert child.exitcode == 0 and queue.get(timeout=5) == (0.0, "own")


@pytest.mark.parametrize("op", ["conv2d_backward_input", "conv2d_backward_weight"])
def test_the_gradient_binders_refuse_geometry_a_launcher_cannot_meet(op):
    """The gradients share the forward's unsupported rule (kernels/cpu/conv.h) and check their own
    operand sizes: dy (N, K, P, Q), w (K, Cg, R, S), x (N, C, H, W)."""
    ext = _compiled.ext
    x, w, dy = np.ones((1, 2, 5, 5), np.float32), np.ones((2, 2, 3, 3), np.float32), np.ones((1, 2, 3, 3), np.float32)
    taps = np.array([1, 2, 3, 2, 1], np.float32)  # the (p, r) pairs with p + r = h, per row of x
    if op == "conv2d_backward_input":
        ins, out, want, short = (dy, w), np.empty_like(x), 2 * taps[:, None] * taps[None, :], "w"
    else:
        ins, out, want, short = (x, dy), np.empty_like(w), np.full(w.shape, 9, np.float32), "x"
    good = [1, 2, 5, 5, 2, 3, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1]
    for row in ("implicit_gemm", "threaded"):
        kernel = getattr(ext, f"{op}_{row}")
        kernel(ins, out, good, 2)
        assert np.array_equal(out, np.broadcast_to(want, out.shape))
        with pytest.raises(ValueError, match="groups must be >= 1"):
            kernel(ins, out, good[:15] + [0], 1)
        with pytest.raises(ValueError, match="output size"):
            kernel(ins, out, good[:7] + [3, 3] + [2, 2] + good[11:], 1)
        bad = tuple(np.ones(7, np.float32) if name == short else a for name, a in zip(("dy", "w") if short == "w"
                                                                                    else ("x", "dy"), ins))
        with pytest.raises(ValueError, match=f"{short}: expected {x.size if short == 'x' else w.size} elements"):
            kernel(bad, out, good, 1)


# (N, C, H, W, K, R, S, stride, padding, dilation, groups): what the direct rungs' tiles meet below
# the best ISA too (the ISA test's cases have at most 4 channels a group): depthwise (1-channel
# tiles) on rows narrower and wider than a tile, several channel blocks with a ragged last one,
# stride phases with dilation and padding, strides past the input, and an unpadded 1x1 layer
# (rows without discarded columns: vectors stored across rows).
DIRECT_GEOMS = [(2, 24, 9, 37, 24, 3, 3, (1, 1), (1, 1), (1, 1), 24), (1, 5, 11, 10, 13, 3, 2, (2, 3), (2, 1), (2, 2), 1),
                (2, 6, 7, 7, 14, 3, 3, (1, 1), (1, 1), (1, 1), 2), (1, 3, 5, 4, 4, 2, 1, (9, 2), (1, 0), (1, 3), 1),
                (2, 5, 7, 9, 13, 1, 1, (1, 1), (0, 0), (1, 1), 1)]


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_the_direct_rungs_are_exact_on_small_integers_on_every_isa(isa):
    """Small integer inputs make every sum exact whatever its order: any indexing slip (a tap, a
    phase, a lane past a row's end, a channel of the next block) shows as a wrong integer."""
    if isa not in _compiled.isas():
        pytest.skip(f"this CPU runs only {_compiled.isas()}")
    from pykern.ops.conv2d import output_size, reference
    ext, saved = _compiled.ext, _compiled.ext.isa()
    try:
        _compiled.set_isa(isa)
        for geom in DIRECT_GEOMS:
            n, c, h, w, k, r, s, stride, pad, dil, groups = geom
            rng = np.random.default_rng(seed_for("direct-exact", *geom))
            x = rng.integers(-4, 5, (n, c, h, w)).astype(np.float32)
            wt = rng.integers(-4, 5, (k, c // groups, r, s)).astype(np.float32)
            bias = rng.integers(-4, 5, k).astype(np.float32)
            p, q = output_size(h, w, r, s, stride, pad, dil)
            for b, relu in ((None, 0), (bias, 1)):
                want = reference(x, wt, b, stride, pad, dil, groups, "relu" if relu else None)
                dims = [n, c, h, w, k, r, s, p, q, *stride, *pad, *dil, groups, relu]
                for name in ("direct", "direct_blocked"):
                    got = np.full((n, k, p, q), np.nan, np.float32)
                    getattr(ext, f"conv2d_{name}")((x, wt, b), got, dims, 1)
                    assert np.array_equal(got, want), f"{isa} {name} {geom} relu={relu}"
    finally:
        _compiled.set_isa(saved)


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_gemm_rungs_are_exact_where_tiles_straddle_images(isa, dtype):
    """7x7 outputs (49 a image) in 32- or 16-column tiles: most tiles hold two images' columns,
    in runs longer and shorter than a vector, stored through the edge path (by vectors where a
    run has whole ones); 360 taps make two KC blocks (the second adds to C, then bias and ReLU);
    12 channels leave a short row block. Small integers make every sum exact."""
    if isa not in _compiled.isas():
        pytest.skip(f"this CPU runs only {_compiled.isas()}")
    from pykern.ops.conv2d import reference
    ext, saved = _compiled.ext, _compiled.ext.isa()
    n, c, h, w, k = 3, 40, 7, 7, 12
    rng = np.random.default_rng(seed_for("gemm-straddle", isa, dtype))
    x = rng.integers(-4, 5, (n, c, h, w)).astype(dtype)
    wt = rng.integers(-4, 5, (k, c, 3, 3)).astype(dtype)
    bias = rng.integers(-4, 5, k).astype(dtype)
    try:
        _compiled.set_isa(isa)
        for b, relu in ((None, 0), (bias, 1)):
            want = reference(x, wt, b, (1, 1), (1, 1), (1, 1), 1, "relu" if relu else None)
            dims = [n, c, h, w, k, 3, 3, h, w, 1, 1, 1, 1, 1, 1, 1, relu]
            for name, threads in (("implicit_gemm", 1), ("threaded", 2), ("tap_gemm", 2)):
                got = np.full((n, k, h, w), np.nan, dtype)
                getattr(ext, f"conv2d_{name}")((x, wt, b), got, dims, threads)
                assert np.array_equal(got, want), f"{isa} {name} relu={relu}"
    finally:
        _compiled.set_isa(saved)


# (N, C, H, W, K, R, S, stride, pad, dilation, groups) for tap_gemm: one slab whose channels are
# cut into parts on 2-3 threads, with taps' last panels of at most 16 columns (half-width); slabs
# of rows across images; stride 2 (x gathered one by one), dilation and groups; padding 4 around
# a 5x6 input (no tap reaches every output, so the outputs are zeroed first, and a few are reached
# by none: bias only); a 1x1 filter in 2 groups (its one tap reaches every output).
TAP_GEOMETRIES = [(8, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1), (3, 16, 30, 22, 24, 3, 3, 1, 1, 1, 1),
                  (2, 6, 17, 9, 6, 3, 2, 2, 1, 2, 3), (2, 4, 5, 6, 8, 3, 3, 1, 4, 1, 1),
                  (4, 32, 9, 9, 16, 1, 1, 1, 0, 1, 2)]


def _tap_case(geom, dtype, rng, integers=False):
    n, c, h, w, k, r, s, stride, pad, dil, groups = geom
    draw = (lambda shape: rng.integers(-4, 5, shape)) if integers else rng.standard_normal
    x, wt, bias = draw((n, c, h, w)).astype(dtype), draw((k, c // groups, r, s)).astype(dtype), draw(k).astype(dtype)
    p, q = output_size(h, w, r, s, (stride,) * 2, (pad,) * 2, (dil,) * 2)
    def dims(relu):
        return [n, c, h, w, k, r, s, p, q, stride, stride, pad, pad, dil, dil, groups, relu]
    return x, wt, bias, (n, k, p, q), dims


def _assert_exact_on_integers(kernel, geom, x, wt, bias, shape, dims, what=""):
    """kernel's output equals the reference's (exact sums: small integers), bias and ReLU fused or not."""
    from pykern.ops.conv2d import reference
    stride, pad, dil, groups = geom[7:]
    for b, relu in ((None, 0), (bias, 1)):
        want = reference(x, wt, b, (stride,) * 2, (pad,) * 2, (dil,) * 2, groups, "relu" if relu else None)
        got = np.full(shape, np.nan, x.dtype)
        kernel((x, wt, b), got, dims(relu), 2)
        assert np.array_equal(got, want), f"integers, {what} bias={b is not None}"


def _assert_same_bits_on_any_thread_count(kernel, x, wt, bias, shape, dims):
    """kernel on 2 and 3 threads gives its one-thread bits, bias and ReLU fused or not."""
    for b, relu in ((None, 0), (bias, 1)):
        one = np.full(shape, np.nan, x.dtype)
        kernel((x, wt, b), one, dims(relu), 1)
        assert not np.isnan(one).any()
        for threads in (2, 3):
            got = np.full_like(one, np.nan)
            kernel((x, wt, b), got, dims(relu), threads)
            assert np.array_equal(got, one), f"threads={threads} bias={b is not None}"


@pytest.mark.parametrize("geom", TAP_GEOMETRIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.usefixtures("pool")
def test_tap_gemm_is_exact_on_small_integers_and_the_same_bits_on_any_thread_count(geom, dtype):
    """tap_gemm skips padded taps and sums each output's taps in its own order: on small integers
    every sum is exact (so equal to the reference), and on random values every thread count gives
    the one-thread bits, bias and ReLU (a pass after the last tap) or not."""
    rng = np.random.default_rng(seed_for("tap-gemm", *geom, dtype))
    _assert_exact_on_integers(_compiled.ext.conv2d_tap_gemm, geom, *_tap_case(geom, dtype, rng, integers=True))
    _assert_same_bits_on_any_thread_count(_compiled.ext.conv2d_tap_gemm, *_tap_case(geom, dtype, rng))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 * Inf, on purpose
@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tap_gemm_multiplies_padding_by_a_weight_that_is_not_finite(special, dtype):
    """A padded tap skipped is 0 * w left out, which is 0 only for a finite w: with an Inf or NaN
    weight tap_gemm runs the threaded rung (the same bits), so 0 * Inf = NaN reaches the outputs
    whose window holds padding under that weight. An Inf in x meets no padding: it stays on the
    skipping path and matches the reference's NaN / Inf pattern."""
    from pykern.ops.conv2d import reference
    ext = _compiled.ext
    geom = (2, 8, 9, 7, 16, 3, 3, 1, 1, 1, 1)
    rng = np.random.default_rng(seed_for("tap-gemm-special", special, dtype))
    x, wt, bias, shape, dims = _tap_case(geom, dtype, rng)
    wt[3, 5, 0, 2] = special
    want = np.full(shape, np.nan, dtype)
    ext.conv2d_threaded((x, wt, bias), want, dims(1), 2)
    got = np.full(shape, np.nan, dtype)
    ext.conv2d_tap_gemm((x, wt, bias), got, dims(1), 2)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isnan(got[:, 3, 0, :]).all()  # the top row: every window holds padding under w[3, 5, 0, 2]
    x, wt, bias, shape, dims = _tap_case(geom, dtype, rng)
    x[1, 2, 0, 6] = special  # a corner of the input: many taps reach it
    ref = reference(x.astype(np.float64), wt.astype(np.float64), None, (1, 1), (1, 1), (1, 1), 1, None)
    got = np.full(shape, 0.0, dtype)
    ext.conv2d_tap_gemm((x, wt, None), got, dims(0), 2)
    assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.array_equal(np.isinf(got), np.isinf(ref))
    assert np.isfinite(got[0]).all() and not np.isfinite(got[1]).all()


# Beside TAP_GEOMETRIES: rows of 30 (two whole 14-pixel tiles and a pair), 20 channels (a part
# block of 16) and 40 output channels (a part block of 32).
BLOCKED_GEOMETRIES = TAP_GEOMETRIES + [(2, 20, 12, 30, 40, 3, 3, 1, 1, 1, 1)]


@pytest.mark.parametrize("geom", BLOCKED_GEOMETRIES)
@pytest.mark.usefixtures("pool")
def test_blocked_direct_is_exact_on_small_integers_on_every_isa_and_the_same_bits_on_any_thread_count(geom):
    """blocked_direct (float32) sums each output in registers in its own order, skipping the
    padded filter rows and the row ends' padded columns: on small integers every sum is exact, so
    equal to the reference, on each ISA path this CPU has; on random values every thread count
    gives the one-thread bits, bias and ReLU fused or not."""
    ext = _compiled.ext
    rng = np.random.default_rng(seed_for("blocked-direct", *geom))
    case = _tap_case(geom, "float32", rng, integers=True)
    saved = ext.isa()
    try:
        for isa in _compiled.isas():
            _compiled.set_isa(isa)
            _assert_exact_on_integers(ext.conv2d_blocked_direct, geom, *case, what=f"isa={isa},")
    finally:
        _compiled.set_isa(saved)
    _assert_same_bits_on_any_thread_count(ext.conv2d_blocked_direct, *_tap_case(geom, "float32", rng))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 * Inf, on purpose
@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan])
def test_blocked_direct_multiplies_padding_by_a_weight_that_is_not_finite(special):
    """With an Inf or NaN weight blocked_direct skips no padded tap (0 * Inf = NaN must reach the
    outputs whose window holds padding under it): its NaN and Inf pattern is the reference's, in
    rows of whole tiles (where the row ends' padded columns are otherwise skipped) and not."""
    from pykern.ops.conv2d import reference
    ext = _compiled.ext
    for geom in ((2, 32, 9, 28, 32, 3, 3, 1, 1, 1, 1), (2, 16, 9, 7, 16, 3, 3, 1, 1, 1, 1)):
        rng = np.random.default_rng(seed_for("blocked-direct-special", special, *geom))
        x, wt, bias, shape, dims = _tap_case(geom, "float32", rng)
        wt[3, 5, 0, 2] = special
        ref = reference(x.astype(np.float64), wt.astype(np.float64), bias.astype(np.float64), (1, 1), (1, 1),
                        (1, 1), 1, None)
        got = np.full(shape, 0.0, np.float32)
        ext.conv2d_blocked_direct((x, wt, bias), got, dims(0), 2)
        assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.array_equal(np.isinf(got), np.isinf(ref))
        assert np.isnan(got[:, 3, 0, :]).all()  # the top row: every window holds padding under w[3, 5, 0, 2]
        finite = np.isfinite(ref)
        assert np.allclose(got[finite], ref[finite], rtol=1e-4, atol=1e-3)


def test_blocked_direct_runs_threaded_where_its_copy_of_x_would_be_too_big():
    """Padding that would make the reordered x pass PaddedPlanes' bound (twice x, plus 2^20
    elements) runs the threaded rung: its bits, and the reference's values."""
    from pykern.ops.conv2d import reference
    ext = _compiled.ext
    rng = np.random.default_rng(seed_for("blocked-direct-wide-padding"))
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    wt = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    pad = 300  # (8 + 600)^2 pixels x 16 channels: about 5.9 million elements
    p = 8 + 2 * pad - 2
    dims = [1, 2, 8, 8, 4, 3, 3, p, p, 1, 1, pad, pad, 1, 1, 1, 0]
    want = np.full((1, 4, p, p), np.nan, np.float32)
    ext.conv2d_threaded((x, wt, None), want, dims, 2)
    got = np.full_like(want, np.nan)
    ext.conv2d_blocked_direct((x, wt, None), got, dims, 2)
    assert np.array_equal(got, want)
    assert np.allclose(got, reference(x, wt, None, (1, 1), (pad, pad), (1, 1), 1, None), atol=1e-5)


def test_the_measured_routes_pick_their_variants_and_an_explicit_variant_wins(monkeypatch):
    """The default's shape rules (_compiled.ROUTES): depthwise-like layers run direct_blocked,
    dx of a strided few-channel layer the NumPy GEMM + col2im, dw of a stride-1 layer with few
    output channels the windows rung; a named variant is never rerouted."""
    from pykern._dispatch import resolve
    x = np.ones((2, 8, 6, 6), np.float32)
    dw, full = np.ones((8, 1, 3, 3), np.float32), np.ones((8, 8, 3, 3), np.float32)
    assert resolve("conv2d", {"x": x, "w": dw, "bias": None}, {"groups": 8}).variant.name == "direct_blocked"
    assert resolve("conv2d", {"x": x, "w": full, "bias": None}, {}).variant.name == _compiled.COMPILED_DEFAULTS["conv2d"]
    assert resolve("conv2d", {"x": x, "w": dw, "bias": None}, {"groups": 8}, variant="threaded").variant.name == "threaded"
    # deep layers whose padding holds TAP_MIN_PADDED of the taps or more: tap_gemm; else the default
    cg = _compiled.TAP_MIN_CG
    deep = {"x": np.ones((2, cg, 7, 7), np.float32), "w": np.ones((64, cg, 3, 3), np.float32), "bias": None}
    saved = _compiled.ext.isa()
    try:  # on AVX-512 only (its masked stores): on a lower path, threaded
        for isa in _compiled.isas():
            _compiled.set_isa(isa)
            want = "tap_gemm" if isa in _compiled.TAP_ISAS else _compiled.COMPILED_DEFAULTS["conv2d"]
            assert resolve("conv2d", deep, {"padding": 1}).variant.name == want, isa
    finally:
        _compiled.set_isa(saved)
    for shallower in ({"padding": 1, "stride": 2}, {"padding": 0}, {"padding": 1, "groups": 2}):
        w = np.ones((64, cg // shallower.get("groups", 1), 3, 3), np.float32)  # 2 groups: Cg below
        assert resolve("conv2d", dict(deep, w=w), shallower).variant.name == _compiled.COMPILED_DEFAULTS["conv2d"]
    # float32 stride-1 layers with rows of whole 14-pixel tiles, 128+ channels in blocks of 16 and
    # little padding: blocked_direct, on AVX-512 only; else tap_gemm (above) or the default
    def layer(c, hw, dtype=np.float32, groups=1):
        return {"x": np.ones((2, c, hw, hw), dtype), "w": np.ones((64, c // groups, 3, 3), dtype), "bias": None}
    try:
        for isa in _compiled.isas():
            _compiled.set_isa(isa)
            on = isa in _compiled.BLOCKED_ISAS
            for c, hw in ((128, 56), (128, 28), (256, 14)):
                want = "blocked_direct" if on else ("tap_gemm" if c >= cg and isa in _compiled.TAP_ISAS
                                                    else _compiled.COMPILED_DEFAULTS["conv2d"])
                assert resolve("conv2d", layer(c, hw), {"padding": 1}).variant.name == want, (isa, c, hw)
    finally:
        _compiled.set_isa(saved)
    default = _compiled.COMPILED_DEFAULTS["conv2d"]
    for args, params in ((layer(128, 24), {"padding": 1}),  # rows of 24: not whole tiles
                         (layer(128, 56, np.float64), {"padding": 1}),  # float32 only
                         (layer(64, 56), {"padding": 1}),  # fewer than 128 channels (the ResNet 56x56)
                         (layer(136, 56), {"padding": 1}),  # not whole blocks of 16
                         (layer(128, 56), {"padding": 2, "dilation": 2}),  # dilated
                         (layer(128, 56), {"padding": 1, "stride": 2})):
        assert resolve("conv2d", args, params).variant.name == default, params
    dy, w3 = np.ones((2, 8, 3, 3), np.float32), np.ones((8, 3, 3, 3), np.float32)
    strided = {"x_shape": (2, 3, 6, 6), "stride": 2, "padding": 1}
    assert resolve("conv2d_backward_input", {"dy": dy, "w": w3}, strided).variant.name == "gemm_col2im_threads"
    assert resolve("conv2d_backward_input", {"dy": np.ones((2, 8, 6, 6), np.float32), "w": w3},
                   {"x_shape": (2, 3, 6, 6), "padding": 1}).variant.name == "threaded"
    # dw: stride 1, ungrouped, at most DW_WINDOWS_MAX_K output channels -> windows, on any thread
    # count; else the default
    default = _compiled.COMPILED_DEFAULTS["conv2d_backward_weight"]
    k = _compiled.DW_WINDOWS_MAX_K
    few = {"x": np.ones((2, 3, 6, 6), np.float32), "dy": np.ones((2, k, 6, 6), np.float32)}
    for n in (1, 2, 3):
        monkeypatch.setattr(_compiled, "threads", lambda n=n: n)
        assert resolve("conv2d_backward_weight", few, {"w_shape": (k, 3, 3, 3), "padding": 1}).variant.name == "windows"
    many = {"x": few["x"], "dy": np.ones((2, k + 1, 6, 6), np.float32)}
    monkeypatch.setattr(_compiled, "threads", lambda: 1)
    assert resolve("conv2d_backward_weight", many, {"w_shape": (k + 1, 3, 3, 3), "padding": 1}).variant.name == default
    strided = {"x": few["x"], "dy": np.ones((2, 16, 3, 3), np.float32)}
    assert resolve("conv2d_backward_weight", strided,
                   {"w_shape": (16, 3, 3, 3), "padding": 1, "stride": 2}).variant.name == default


def test_a_route_to_an_unknown_variant_is_an_error_not_a_silent_default():
    from pykern import _registry
    saved = _registry._ROUTES.get(("relu", "numpy"))
    _registry.set_route("relu", "numpy", lambda infos, params: "no_such_variant")
    try:
        with pytest.raises(RuntimeError, match="no_such_variant"):
            pk.relu(np.ones(4, np.float32))
    finally:
        if saved is None:
            del _registry._ROUTES[("relu", "numpy")]
        else:
            _registry._ROUTES[("relu", "numpy")] = saved


@pytest.mark.usefixtures("pool")
def test_the_pool_serves_calls_of_changing_thread_counts():
    """Calls that use fewer of the pool's threads than the one before leave some idle: one that
    wakes late must never take part in the next call (a race that a (call, parts) ticket closes).
    Thread counts alternate above and below this machine's cores; every result is simd's bits."""
    ext = _compiled.ext
    rng = np.random.default_rng(seed_for("pool-churn"))
    a = rng.standard_normal((130, 300)).astype(np.float32)
    b = rng.standard_normal((300, 250)).astype(np.float32)
    want = np.empty((130, 250), np.float32)
    ext.matmul_simd((a, b), want, [130, 250, 300, 0, 0], 1)
    got = np.empty_like(want)
    for i in range(60):
        got.fill(np.nan)
        ext.matmul_threaded((a, b), got, [130, 250, 300, 0, 0], (4, 2, 3, 1, 5)[i % 5])
        assert np.array_equal(got, want), f"call {i}"


@pytest.mark.usefixtures("pool")
def test_optional_and_full_pool_calls_interleave_with_threads_that_wake_late(monkeypatch):
    """Calls whose parts are optional (matmul's prepacked path, dw's windows: work from counters,
    the caller does not wait for a thread still waking) between calls that need every part (dw
    threaded's partial sums behind a barrier), some after a pause long enough for the pool's
    threads to park: a thread that wakes for a call it was left out of must take no part in it,
    nor run the next call's task with this one's part. Every result is the one-thread bits."""
    import time
    rng = np.random.default_rng(seed_for("pool-optional"))
    a = rng.standard_normal((130, 300)).astype(np.float32)
    b = rng.standard_normal((300, 250)).astype(np.float32)
    x = rng.standard_normal((4, 16, 16, 16)).astype(np.float32)
    dy = rng.standard_normal((4, 32, 16, 16)).astype(np.float32)
    dy16 = np.ascontiguousarray(dy[:, :16])
    calls = {
        "matmul": lambda: pk.matmul(a, b, variant="threaded"),
        "dw threaded": lambda: pk.conv2d_backward_weight(x, dy, (32, 16, 3, 3), padding=1, variant="threaded"),
        "dw windows": lambda: pk.conv2d_backward_weight(x, dy16, (16, 16, 3, 3), padding=1, variant="windows"),
    }
    monkeypatch.setattr(_compiled, "threads", lambda: 1)
    want = {name: f() for name, f in calls.items()}
    names = list(calls)
    for i in range(90):
        monkeypatch.setattr(_compiled, "threads", lambda n=(2, 3, 4)[i % 3]: n)
        if i % 7 == 0:
            time.sleep(0.003)  # the pool's threads park after some tens of microseconds
        name = names[(i * 5 // 3) % 3]
        assert np.array_equal(calls[name](), want[name]), f"call {i}: {name}"


# Padding too big to copy: the forward gathers from a zero-padded copy of x and the input
# gradient from one of dy only while that copy stays within twice the input's size plus 2^20
# elements; past it they clip every run to the array instead. x 3x3 under padding 512 (a
# 1027x1027 padded plane), and dx of a 1100x1100 image under dilation 1000 (taps that leave dy
# by 1000 rows on both sides: a 2100x2100 padded dy against its 100x100), take that path.
@pytest.mark.parametrize("op,shapes,params", [
    ("conv2d", {"x": (1, 2, 3, 3), "w": (3, 2, 1, 1)}, {"padding": 512}),
    ("conv2d_backward_input", {"dy": (1, 2, 100, 100), "w": (2, 1, 2, 2)},
     {"x_shape": (1, 1, 1100, 1100), "dilation": 1000}),
])
@pytest.mark.parametrize("variant", ["implicit_gemm", "threaded"])
def test_gathers_that_clip_where_padding_is_too_big_to_copy(op, shapes, params, variant):
    from pykern._check import run_arrays
    v = next(v for v in pk.variants(op, "numpy") if v.name == variant)
    rng = np.random.default_rng(seed_for("clip", op, variant))
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    if op == "conv2d":
        arrays["bias"] = None
    cmp = run_arrays(v, arrays, params)
    assert cmp.ok, cmp.message()


# Padded copies made row by row: rows of 70 (a memcpy each, past 64) under borders of 20 (40
# zeros between two rows: one memset; dx pads dy by its taps' reach, 40 under dilation 20), and
# rows of 5 with 1-element borders (inline stores); stride 2 splits the forward's copy by phase.
@pytest.mark.parametrize("op,shapes,params,variant", [
    ("conv2d", {"x": (2, 3, 5, 70), "w": (4, 3, 3, 3)}, {"padding": 20}, "threaded"),
    ("conv2d", {"x": (2, 3, 9, 5), "w": (4, 3, 3, 3)}, {"padding": 1, "stride": 2}, "threaded"),
    ("conv2d_backward_input", {"dy": (2, 4, 5, 70), "w": (4, 3, 3, 3)}, {"x_shape": (2, 3, 45, 110), "dilation": 20},
     "threaded"),
    ("conv2d_backward_weight", {"x": (2, 3, 5, 70), "dy": (2, 4, 43, 108)}, {"w_shape": (4, 3, 3, 3), "padding": 20},
     "threaded"),
    ("conv2d_backward_weight", {"x": (2, 3, 5, 70), "dy": (2, 4, 43, 108)}, {"w_shape": (4, 3, 3, 3), "padding": 20},
     "windows"),
    ("conv2d_backward_weight", {"x": (2, 3, 5, 5), "dy": (2, 4, 5, 5)}, {"w_shape": (4, 3, 3, 3), "padding": 1},
     "windows"),
])
def test_padded_copies_of_long_rows_and_wide_borders(op, shapes, params, variant):
    from pykern._check import run_arrays
    v = next(v for v in pk.variants(op, "numpy") if v.name == variant)
    rng = np.random.default_rng(seed_for("padded-rows", op, variant, *shapes.values()))
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    if op == "conv2d":
        arrays["bias"] = rng.standard_normal(4).astype(np.float32)
    cmp = run_arrays(v, arrays, params)
    assert cmp.ok, cmp.message()


@pytest.mark.parametrize("padding", [0, 1])
def test_windows_weight_gradient_keeps_inf_where_the_spec_has_it_and_only_there(padding):
    """dw's windows rung widens dy's rows with zeros that meet x values the spec never multiplies
    (the last columns of a row, under the first taps): an Inf there would make 0 * Inf = NaN
    where the spec's sum is finite. So x holding Inf or NaN takes the implicit GEMM, whose
    products are the spec's: dw is then NaN/Inf exactly where the reference is."""
    from pykern._check import run_arrays
    v = next(v for v in pk.variants("conv2d_backward_weight", "numpy") if v.name == "windows")
    rng = np.random.default_rng(seed_for("windows-inf", padding))
    x = rng.standard_normal((2, 2, 5, 6)).astype(np.float32)
    x[1, 0, 2, -1] = np.inf  # the last column: outside the window of taps s = 0, 1 when padding = 0
    dy_shape = (2, 3, 5 + 2 * padding - 2, 6 + 2 * padding - 2)
    arrays = {"x": x, "dy": rng.standard_normal(dy_shape).astype(np.float32)}
    cmp = run_arrays(v, arrays, {"w_shape": (3, 2, 3, 3), "padding": padding})
    assert cmp.ok, cmp.message()


def test_pykern_cpu_pool_own_keeps_the_own_pool_and_a_typo_is_an_error(monkeypatch):
    pytest.importorskip("torch")
    before = _compiled.pool()
    try:
        monkeypatch.setenv("PYKERN_CPU_POOL", "own")
        _compiled.own_pool()
        assert _compiled.share_torch_threads() is None and _compiled.pool() == "own"
        monkeypatch.setenv("PYKERN_CPU_POOL", "openmp")
        with pytest.raises(ValueError, match="PYKERN_CPU_POOL: expected 'auto' or 'own', got 'openmp'"):
            _compiled.share_torch_threads()
    finally:
        monkeypatch.delenv("PYKERN_CPU_POOL")
        _restore_pool(before)


def test_torch_threads_run_the_calls_after_import_and_those_they_cannot_all_run_fall_back():
    """``import pykern.torch`` moves the threaded calls onto torch's OpenMP threads (and so does
    pykern's CPU module where torch was imported first). With OMP_THREAD_LIMIT=1 torch's runtime
    then gives a call one thread whatever it asks: parts that wait for each other (the big-A
    matmul's barrier) run on pykern's own pool instead, and optional parts (the prepacked matmul,
    relu's chunks) all on the caller; either way the one-thread bits, and nothing hangs. (One
    process for both: each imports torch, seconds of CI.)"""
    pytest.importorskip("torch")
    code = """
import torch
from pykern.cpu import _compiled as c
first = c.pool()
c.own_pool()
import numpy as np, pykern.torch
after = c.pool()
ext = c.ext
rng = np.random.default_rng(7)
a = rng.standard_normal((1040, 2100)).astype(np.float32)
for n in (300, 1600):  # the BLIS path (a barrier) and the prepacked one (optional parts)
    b = rng.standard_normal((2100, n)).astype(np.float32)
    want, got = np.empty((1040, n), np.float32), np.full((1040, n), np.nan, np.float32)
    ext.matmul_simd((a, b), want, [1040, n, 2100, 0, 0], 1)
    ext.matmul_threaded((a, b), got, [1040, n, 2100, 0, 0], 2)
    assert np.array_equal(got, want), n
x = rng.standard_normal(1 << 20).astype(np.float32)
y = np.empty_like(x)
ext.relu_simd((x,), y, [x.size], 2)
assert np.array_equal(y, np.maximum(x, 0))
print(first, after, bool(torch.backends.openmp.is_available()))
"""
    out = _python(code, OMP_THREAD_LIMIT="1")
    assert out.returncode == 0, out.stderr
    first, after, openmp = out.stdout.split()
    if openmp == "False" or after == "own":
        pytest.skip(f"torch here does not run on {_compiled.TORCH_OPENMP}")
    assert (first, after) == (_compiled.TORCH_OPENMP, _compiled.TORCH_OPENMP)
