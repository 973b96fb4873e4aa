"""The CPU's measured ceilings (pykern/benchmark/ceilings.py, kernels/cpu/ceilings.cpp): the
micro-benchmarks compute what they say and return positive finite rates at tiny sizes, the
fallback without pykern._cpu is a NumPy measurement that says why (never a constant), and the
sweep's JSON, table and plot carry them. Every measurement here is tiny: milliseconds."""
import math

import numpy as np
import pytest
from conftest import seed_for

from pykern import _build
from pykern import benchmark as bench
from pykern.benchmark import ceilings
from pykern.cpu import _compiled

BUILT = _build.EXTENSIONS.get("_cpu") == "built"
needs_cpu = pytest.mark.skipif(not BUILT, reason=f"pykern._cpu not built: {_build.EXTENSIONS.get('_cpu')}")
TINY = {"call_s": 1e-4, "budget_s": 1e-3}


def _finite_positive(x):
    return x is not None and math.isfinite(x) and x > 0


@needs_cpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_fma_peak_counts_its_flops(dtype, threads):
    info = _compiled.ext.fma_peak(dtype, 10, threads)
    lanes = 64 // np.dtype(dtype).itemsize if info["isa"] == "avx512" else None
    if lanes:
        assert info["lanes"] == lanes  # the widest vectors of the active ISA
    assert info["chains"] >= 10 and info["threads"] == threads
    assert info["flops"] == 2 * 10 * info["chains"] * info["lanes"] * threads
    assert _finite_positive(info["checksum"])
    res = ceilings.fma_peak(dtype, threads, **TINY)
    assert _finite_positive(res["rate"]) and res["unit"] == "GFLOP/s" and res["threads"] == threads
    assert res["flops"] == 2 * res["iterations"] * res["chains"] * res["lanes"] * threads
    assert f"{dtype} lanes" in res["how"]


@needs_cpu
@pytest.mark.parametrize("threads", [1, 2])
def test_stream_kernels_compute_every_element(request, threads):
    rng = np.random.default_rng(seed_for(request.node.name))
    n = 1000  # not a multiple of the 64-element slices: the last thread takes the tail
    a, b, c = (rng.integers(-50, 50, n).astype(np.float64) for _ in range(3))  # small integers: exact
    out = np.full(n, np.nan)
    _compiled.ext.stream_copy(a, out, threads)
    np.testing.assert_array_equal(out, a)
    want = b + 0.5 * c
    _compiled.ext.stream_triad(out, b, c, 0.5, threads)
    np.testing.assert_array_equal(out, want)


@needs_cpu
def test_stream_refuses_what_it_cannot_run():
    ext, x = _compiled.ext, np.ones(128)
    with pytest.raises(ValueError, match="a: expected 64 elements, as c has, got 128"):
        ext.stream_copy(x, np.ones(64))
    with pytest.raises(TypeError, match="float32"):
        ext.stream_copy(x.astype(np.float32), x.astype(np.float32))
    with pytest.raises(ValueError, match="not C-contiguous"):
        ext.stream_triad(np.ones(256)[::2], x, x, 1.0)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        ext.stream_copy(x, x.copy(), 0)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        ext.fma_peak("float32", 0)
    with pytest.raises(TypeError, match="float16"):
        ext.fma_peak("float16", 1)


@needs_cpu
@pytest.mark.parametrize("kernel,arrays", [("copy", 2), ("triad", 3)])
def test_stream_rate(kernel, arrays):
    res = ceilings.stream(kernel, 64 << 10, 1, budget_s=1e-3)
    assert _finite_positive(res["rate"]) and res["unit"] == "GB/s"
    assert res["bytes"] == arrays * res["array_bytes"] and f"STREAM {kernel}" in res["how"]


@needs_cpu
def test_cpu_ceilings_measured_once_then_cached(monkeypatch):
    monkeypatch.setattr(ceilings, "_CACHE", {})
    monkeypatch.setattr(ceilings, "FMA_CALL_S", 1e-3)
    monkeypatch.setattr(ceilings, "MEASURE_BUDGET_S", 1e-2)
    keys = {"cpu:compute:float32", "cpu:memory", "cpu:compute:float16"}
    first = ceilings.measure_ceilings(keys, quick=True)
    for key in ("cpu:compute:float32", "cpu:memory"):
        c = first[key]
        assert _finite_positive(c["rate"]) and _finite_positive(c["single_thread_rate"]), c
        assert c["source"].startswith("pykern._cpu") and "fallback" not in c
        assert c["rate"] == max(r["rate"] for r in c["runs"])  # the fastest run is the ceiling
        assert {r["threads"] for r in c["runs"]} == set(ceilings.thread_counts(_compiled.threads()))
    assert first["cpu:memory"]["bytes"] > 0 and "STREAM" in first["cpu:memory"]["how"]
    assert first["cpu:compute:float16"]["rate"] is None and "float16" in first["cpu:compute:float16"]["reason"]

    def measured_again(*a, **k):
        raise AssertionError("a cached ceiling was measured again")
    monkeypatch.setattr(ceilings, "fma_peak", measured_again)
    monkeypatch.setattr(ceilings, "stream", measured_again)
    assert ceilings.measure_ceilings(keys, quick=True) == first


def test_without_the_extension_numpy_measures_and_says_why(monkeypatch):
    monkeypatch.setattr(ceilings, "_cpu_ext", lambda: (None, "PYKERN_NO_CPU_EXT=1 (test)", 2))
    mem = ceilings.cpu_memory_ceiling(quick=True)
    gemm = ceilings.cpu_compute_ceiling("float64", quick=True)
    for c, what in ((mem, "np.copyto"), (gemm, "np.matmul")):
        assert _finite_positive(c["rate"]) and what in c["how"]
        assert "PYKERN_NO_CPU_EXT=1 (test)" in c["fallback"]
    with pytest.raises(RuntimeError, match="PYKERN_NO_CPU_EXT"):
        ceilings.fma_peak("float32")


def test_the_sweep_json_table_and_plot_carry_the_ceilings(tmp_path):
    doc = bench.sweep(["relu"], ["numpy"], ["maximum"], {"relu": bench.parse_sizes("relu", "4096")},
                      with_baselines=False, quick=True, progress=False)
    mem = doc["ceilings"]["cpu:memory"]
    assert _finite_positive(mem["rate"]) and mem["how"]
    assert BUILT == ("fallback" not in mem)
    (rec,) = doc["entries"]
    assert rec["ceiling"] == "cpu:memory" and rec["pct_of_ceiling"] == pytest.approx(100 * rec["rate"] / mem["rate"])
    assert f"{mem['rate']:10.1f} GB/s" in bench.bench_table(doc)
    pytest.importorskip("matplotlib")
    # both lines, whichever thread count won here: a ceiling reached on 2 threads, and its 1-thread rate
    doc["ceilings"]["cpu:memory"] = dict(mem, threads=2, single_thread_rate=mem["rate"] / 2)
    fig = bench.bench_figure(doc)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(lab.startswith(f"measured ceiling {mem['rate']:,.0f} GB/s") for lab in labels), labels
    assert any(lab.startswith(f"measured 1-thread ceiling {mem['rate'] / 2:,.0f} GB/s") for lab in labels), labels
    bench.pyplot().close(fig)
