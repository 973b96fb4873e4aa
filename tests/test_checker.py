"""Test the tester: deliberately broken variants must be rejected by the equivalence check."""
import numpy as np
import pytest
from conftest import require_backend

import pykern as pk
from pykern import _registry
from pykern._check import Comparison, compare


def _numba_skip_last_kernel():
    # Defined at module level (not as a closure): the simulator swaps the module's `cuda`.
    global cuda
    from numba import cuda

    @cuda.jit
    def kernel(x, y):
        i = cuda.grid(1)
        if i < x.size - 1:
            y[i] = max(x[i], 0)

    return kernel


@pytest.fixture
def broken_variants():
    """Register broken ReLU/matmul variants on the numpy and numba backends; remove them after."""
    added = []

    def add(op, backend, name, fn, dtypes=("float32",)):
        fn.__doc__ = f"Deliberately broken: {name}."
        _registry.register(op, backend, dtypes=dtypes, name=name)(fn)
        added.append((op, backend, name))

    def skip_last(x, y):
        y[:-1] = np.maximum(x[:-1], 0)  # the last element is never written (stays poisoned)

    def off_by_one(x, y):
        np.maximum(x, 0, out=y)
        y.reshape(-1)[y.size // 2] += 1e-3  # one wrong element in the middle

    def leaks_negatives(x, y):
        np.copyto(y, np.abs(x))  # "forgets" the max: negatives become positive

    def matmul_drops_k_tile(a, b, c):
        k = a.shape[1]
        if k > 1:
            k -= 1  # misses the last k: the classic tail bug
        np.matmul(a[:, :k], b[:k], out=c)

    add("relu", "numpy", "broken_skip_last", skip_last)
    add("relu", "numpy", "broken_off_by_one", off_by_one)
    add("relu", "numpy", "broken_abs", leaks_negatives)
    add("matmul", "numpy", "broken_k_tail", matmul_drops_k_tile)
    if pk.backends()["numba"].available:
        def numba_skip_last(x, y):
            xf, yf = x.reshape(x.size), y.reshape(y.size)
            _numba_skip_last_kernel()[(x.size + 31) // 32, 32](xf, yf)

        add("relu", "numba", "broken_skip_last", numba_skip_last)
    yield added
    for key in added:
        _registry.unregister(*key)


def test_checker_rejects_broken_variants(broken_variants):
    for op, backend, name in broken_variants:
        report = pk.check(op, backend, name, trials=1)
        assert not report.passed, f"{op}/{backend}/{name} passed the checker:\n{report}"
        assert "FAIL" in str(report)


def _planted_sim():
    """pykern._cuda_sim, which carries the correct and broken kernels of csrc/sim/planted.cu."""
    require_backend("cuda")
    from pykern._device import ext
    mod = ext()
    if not hasattr(mod, "planted_run"):
        pytest.skip("the planted kernels are built only into pykern._cuda_sim (PYKERN_CUDA_SIM=1)")
    return mod


def test_checker_catches_an_unwritten_element_of_a_cuda_kernel_by_device_side_poisoning():
    """Launchers that leave part of the output unwritten, around the planted correct kernels: the
    output is device memory poisoned with NaN bytes before the launch, so every unwritten
    element shows as a NaN where the reference is finite, and nothing else differs."""
    mod = _planted_sim()

    def relu_skips_last(x, y):
        """Deliberately broken: the planted correct relu kernel on all but the last element."""
        mod.planted_run("off_by_one_store", False, x.ptr, 0, y.ptr, x.size - 1, 0, 0)

    def matmul_skips_edge_tile(a, b, c):
        """Deliberately broken: the planted correct tiled matmul on whole 16-row tiles only."""
        (m, k), n = a.shape, b.shape[1]
        mod.planted_run("off_by_one_tile_edge", False, a.ptr, b.ptr, c.ptr, m // 16 * 16, n, k)

    runs = [("relu", relu_skips_last, [{"shape": (300,)}, {"shape": (3, 5, 7)}],
             lambda case: np.prod(case["shape"]) - 1 + np.arange(1)),
            ("matmul", matmul_skips_edge_tile, [{"M": 37, "N": 29, "K": 45}, {"M": 20, "N": 3, "K": 17}],
             lambda case: np.arange(case["M"] // 16 * 16 * case["N"], case["M"] * case["N"]))]
    for op, fn, cases, unwritten in runs:
        _registry.register(op, "cuda", dtypes=("float32",))(fn)
        try:
            report = pk.check(op, "cuda", fn.__name__, trials=1, cases=cases)
        finally:
            _registry.unregister(op, "cuda", fn.__name__)
        assert not report.passed and len(report.results) == len(cases), str(report)
        for (_, _, _, cmp), case in zip(report.results, cases):
            flat = unwritten(case)
            shape = case.get("shape") or (case["M"], case["N"])
            assert cmp.nan_mismatch == cmp.n_bad == flat.size, cmp.message()
            assert [i for i, _, _ in cmp.first_bad] == [np.unravel_index(j, shape) for j in flat[:5]]
            assert all(np.isnan(got) and np.isfinite(ref) for _, got, ref in cmp.first_bad)

    def relu_planted(x, y):
        """The control: the same planted kernel over every element."""
        mod.planted_run("off_by_one_store", False, x.ptr, 0, y.ptr, x.size, 0, 0)

    _registry.register("relu", "cuda", dtypes=("float32",))(relu_planted)
    try:
        assert pk.check("relu", "cuda", "relu_planted", trials=1, cases=runs[0][2]).passed
    finally:
        _registry.unregister("relu", "cuda", "relu_planted")


@pytest.mark.parametrize("variant", pk.variants(backend="numpy"), ids=lambda v: v.key)
def test_checker_accepts_correct_variants(variant):
    """One test per variant (not one loop), so the suite's workers share them."""
    report = pk.check(variant.op, "numpy", variant.name, trials=1)
    assert report.passed, str(report)


def test_check_numba_default_in_simulator_or_gpu():
    require_backend("numba")
    report = pk.check("relu", "numba", trials=2)
    assert report.passed, str(report)
    assert len(report.results) >= 2


def test_compare_reports_unwritten_and_nan():
    ref = np.arange(1.0, 11.0)
    got = ref.copy()
    got[9] = np.nan  # unwritten (poisoned) element
    got[3] += 1.0
    cmp = compare(got, ref, np.abs(ref), "float32")
    assert not cmp.ok and cmp.n_bad == 2 and cmp.nan_mismatch == 1
    assert [b[0] for b in cmp.first_bad] == [(3,), (9,)]
    msg = cmp.message()
    assert "2 of 10" in msg and "NaN/Inf" in msg


def test_compare_tolerance_is_per_dtype():
    ref = np.full(4, 1.0) + np.arange(4)
    mag = np.abs(ref)
    slightly_off = ref * (1 + 1e-4)
    assert compare(slightly_off, ref, mag, "float16").ok
    assert not compare(slightly_off, ref, mag, "float32").ok
    assert not compare(ref * (1 + 1e-9), ref, mag, "float64").ok
    assert compare(ref * (1 + 1e-13), ref, mag, "float64").ok


def test_compare_shape_mismatch():
    assert not compare(np.ones(3), np.ones(4), np.ones(4), "float32").ok


def test_check_report_starts_with_a_summary_line():
    report = pk.check("relu", "numpy", "maximum", trials=2)
    first = str(report).splitlines()[0]
    n = sum(isinstance(r[3], pk.Comparison) for r in report.results)
    assert first.startswith(f"relu/numpy/maximum: PASS: {n} checked, {n} passed, 0 failed")
    assert "worst error 0x the tolerance" in first  # relu is exact


def test_check_summary_counts_failures_and_reports_the_worst_error():
    @_registry.register("matmul", "numpy", dtypes=("float64",), name="off_by_a_bit")
    def off_by_a_bit(a, b, c):
        """matmul with one element nudged by 3x the float64 tolerance (for the checker's summary)."""
        np.matmul(a, b, out=c)
        c[0, 0] += 3 * (1e-12 + 1e-12 * (np.abs(a[0]) @ np.abs(b[:, 0])))

    try:
        report = pk.check("matmul", "numpy", "off_by_a_bit", trials=1)
    finally:
        _registry.unregister("matmul", "numpy", "off_by_a_bit")
    first = str(report).splitlines()[0]
    n = sum(isinstance(r[3], Comparison) for r in report.results)  # it takes no transpose flags: those skip
    assert n and first.startswith(f"matmul/numpy/off_by_a_bit: FAIL: {n} checked, 0 passed, {n} failed")
    worst = max(r[3].worst_vs_tol for r in report.results if isinstance(r[3], Comparison))
    assert 2.5 < worst < 3.5
    assert f"worst error {worst:.2g}x the tolerance" in first
