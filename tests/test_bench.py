"""The benchmark machinery (pykern.benchmark, `python -m pykern bench|compare`), on tiny CPU sizes.

GPU timings cannot be checked here; what can: plans come from the registry, a wrong variant is
reported and not timed, the JSON carries what it promises, sizes parse, ratios and crossovers are
computed right, the GPU clock subtracts events, and the device-run summary reads its logs.
"""
import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest

import pykern as pk
from pykern import benchmark as bench, cli
from pykern.benchmark import run as bench_run

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
from pykern._backends import simulator_enabled
from pykern._registry import register, unregister
from pykern._timing import EventClock, backend_clock, host_clock, measure


def run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# --- sizes ------------------------------------------------------------------------------------

def test_sizes_parse_per_op():
    assert bench.parse_size("matmul", "128") == {"M": 128, "N": 128, "K": 128}
    assert bench.parse_size("matmul", "1760x128x1760") == {"M": 1760, "N": 128, "K": 1760}
    assert bench.parse_size("relu", "2^20") == {"shape": (1 << 20,)}
    assert bench.parse_size("relu", "3x5") == {"shape": (3, 5)}
    assert bench.parse_size("conv2d", "56") == dict(N=1, C=64, H=56, W=56, K=64, R=3, S=3, padding=1, stride=1)
    for op, bad in (("matmul", "12x3"), ("matmul", "0"), ("relu", "x"), ("conv2d", "N1C2"), ("conv2d", "0")):
        with pytest.raises(ValueError, match="sizes"):
            bench.parse_size(op, bad)


def test_two_to_the_n_works_for_every_op():
    assert bench.parse_size("matmul", "2^10") == bench.parse_size("matmul", "1024")
    assert bench.parse_size("matmul", "2^10x2^7x2^10") == {"M": 1024, "N": 128, "K": 1024}
    assert bench.parse_size("relu", "2^20") == bench.parse_size("relu", "1048576")
    assert bench.parse_size("relu", "2^10x3") == {"shape": (1024, 3)}
    assert bench.parse_size("conv2d", "2^6") == bench.parse_size("conv2d", "64")
    for op in bench.SPECS:
        with pytest.raises(ValueError, match="sizes"):
            bench.parse_size(op, "2^99")


@pytest.mark.parametrize("op", list(bench.SPECS))
def test_size_errors_are_plain_text(op):
    with pytest.raises(ValueError) as e:
        bench.parse_size(op, "nonsense")
    msg = str(e.value)
    assert "``" not in msg and "`" not in msg
    assert msg == f"sizes: 'nonsense' is not a size for {op}; expected {bench.SIZE_FORMS[op]}"
    assert "2^" in msg  # the power-of-two form is offered for every op


@pytest.mark.parametrize("op", list(bench.SPECS))
def test_case_ids_parse_back_to_the_same_case(op):
    """A case id printed in a table can be passed back with --sizes."""
    spec = bench.SPECS[op]
    cases = spec.test_cases("numpy") + bench.BENCH_CASES[op]["gpu"] + bench.COMPARE_CASES[op]
    for case in cases:
        cid = spec.case_id(case)
        assert spec.case_id(bench.parse_size(op, cid)) == cid


# --- sizes per op: --sizes OP=SIZES;OP=SIZES, or one --sizes after each --op ---------------------

def selection(*argv):
    """What `pykern bench ARGV` selects: (ops, {op: [case id, ...]} or None)."""
    ops, sizes = bench.select(cli.build_parser().parse_args(["bench", *argv]).selection)
    return ops, sizes and {op: [bench.SPECS[op].case_id(c) for c in cs] for op, cs in sizes.items()}


def test_sizes_go_to_the_op_they_are_given_for():
    both = (["conv2d", "relu"], {"conv2d": ["N1C64H14W14K64R3S3_p1x1", "N1C64H28W28K64R3S3_p1x1"],
                                 "relu": ["1048576"]})
    assert selection("--sizes", "conv2d=14,28;relu=2^20") == both  # without --op: the ops it names
    assert selection("--op", "conv2d,relu", "--sizes", "conv2d=14,28;relu=2^20") == both
    assert selection("--op", "conv2d", "--sizes", "14,28", "--op", "relu", "--sizes", "2^20") == both
    assert selection("--sizes", "14,28", "--op", "conv2d", "--op", "relu", "--sizes", "2^20") == both
    # an op given no sizes runs its default cases; one size form shared by several ops is fine
    assert selection("--op", "relu", "--op", "matmul", "--sizes", "96") == (["relu", "matmul"], {"matmul": ["96x96x96"]})
    assert selection("--op", "relu,relu_backward", "--sizes", "2^10") == (["relu", "relu_backward"],
                                                                          {"relu": ["1024"], "relu_backward": ["1024"]})
    assert selection("--op", "matmul") == (["matmul"], None)
    assert selection() == (list(bench.SPECS), None)


@pytest.mark.parametrize("argv, words", [
    # one plain list for ops that read sizes differently: conv2d would run a 65536x65536 image
    (["--op", "conv2d,relu", "--sizes", "14,65536"], ["'14,65536'", "conv2d, relu", 'conv2d=14,65536;relu=14,65536']),
    (["--sizes", "128"], ["'128'", "no --op: every op"]),
    (["--op", "relu", "--sizes", "matmul=12"], ["matmul=12", "--op does not select"]),
    (["--sizes", "relu=96;12"], ["'12'", "names no op"]),
    (["--sizes", "14;28"], ["';' separates OP=SIZES groups"]),
    (["--sizes", "nope=3"], ["unknown op 'nope'"]),
    (["--op", "relu", "--sizes", "conv2d=14"], ["conv2d=14", "--op does not select"]),
])
def test_sizes_meant_for_another_op_are_refused_before_anything_runs(argv, words, capsys, monkeypatch):
    monkeypatch.setattr(bench_run, "measure_ceilings", lambda *a, **k: pytest.fail("the sweep started"))
    for cmd in ("bench", "compare"):
        code, out, err = run([cmd, *argv, "--quick", "--no-progress"], capsys)
        assert code == 2 and out == "", (cmd, out, err)
        for w in words:
            assert w in err, (cmd, w, err)


def test_the_sweep_runs_each_op_at_its_own_sizes():
    ops, sizes = bench.select([("op", "conv2d"), ("sizes", "14"), ("op", "relu"), ("sizes", "2^10")])
    entries, _ = bench.plan(ops, ["numpy"], None, sizes)
    assert {(e.target.op, e.case_id) for e in entries} == {("conv2d", "N1C64H14W14K64R3S3_p1x1"), ("relu", "1024")}


# --- memory: every case estimated, what does not fit refused before anything runs ----------------

def fake_memory(monkeypatch, nbytes):
    from pykern.benchmark import memory
    monkeypatch.setattr(memory, "host_available", lambda: (nbytes, "test: a small machine"))


def test_a_size_that_does_not_fit_is_refused_with_the_estimate(capsys, monkeypatch):
    fake_memory(monkeypatch, 100 << 20)
    monkeypatch.setattr(bench_run, "measure_ceilings", lambda *a, **k: pytest.fail("the sweep started"))
    for cmd in ("bench", "compare"):
        code, out, err = run([cmd, "--op", "relu", "--sizes", "2^10,2^24", "--quick", "--no-progress"], capsys)
        assert code == 2 and out == "", (cmd, out, err)
        assert "relu 16777216 (float32, CPU): needs about 1." in err and "GiB of host memory (inputs 64 MiB" in err
        assert "but 100 MiB is available (test: a small machine)" in err and "relu 1024 " not in err


def test_a_case_its_op_refuses_stops_the_run_before_anything_runs(capsys, monkeypatch):
    monkeypatch.setattr(bench_run, "measure_ceilings", lambda *a, **k: pytest.fail("the sweep started"))
    for cmd in ("bench", "compare"):
        code, out, err = run([cmd, "--op", "conv2d", "--sizes", "N1C3H2W2K1R5S5", "--quick", "--no-progress"], capsys)
        assert code == 2 and out == "", (cmd, out, err)
        assert "sizes: conv2d N1C3H2W2K1R5S5 (float32): " in err and "leave no output" in err, err


def test_a_default_case_that_does_not_fit_is_skipped_with_the_reason(capsys, monkeypatch):
    fake_memory(monkeypatch, 1 << 20)
    doc = bench.sweep(["relu"], ["numpy"], ["maximum"], None, with_baselines=False, quick=True, progress=False)
    assert doc["entries"] and all(r["status"] == "skipped" for r in doc["entries"])
    assert all(r["reason"].startswith("does not fit in memory here: relu ") for r in doc["entries"])
    assert doc["memory"]["host_available_bytes"] == 1 << 20


def test_a_gpu_row_is_checked_against_the_gpu_memory():
    case = bench.parse_size("matmul", "4096")
    e = bench.estimate("matmul", case, "float32", "gpu")
    assert e["gpu"] >= 3 * 4096 * 4096 * 4  # a, b and c on the device
    too_big, summary = bench.check_fit([("matmul", case, "float32", "gpu")], host=(1 << 50, "plenty"),
                                       gpu=(1 << 20, "test: a small GPU"))
    (why,) = too_big.values()
    assert why.startswith("matmul 4096x4096x4096 (float32, GPU): needs about") and "on the GPU" in why
    assert "test: a small GPU" in why and "host memory" not in why
    assert summary["gpu_available_bytes"] == 1 << 20


def test_the_available_memory_is_read_from_the_machine():
    nbytes, how = bench.host_available()
    assert nbytes > 0
    if os.path.exists("/proc/meminfo"):
        assert how == "MemAvailable in /proc/meminfo"


@pytest.mark.parametrize("op, size", [("relu", "2^18"), ("matmul", "200x300x400_tA"),
                                      ("conv2d", "N4C8H64W64K16R3S3_p1x1_bias"), ("relu_backward", "2^18"),
                                      ("conv2d_backward_input", "N4C8H64W64K16R3S3_s2x2"),
                                      ("conv2d_backward_weight", "N4C8H64W64K16R3S3_p1x1")])
def test_the_estimate_bounds_what_an_entry_allocates(op, size):
    """tracemalloc sees NumPy's allocations: an entry's peak (inputs, output, the float64 checker)
    stays under the estimate, even before its allowance for CPU workspace (at sizes of a few MB,
    where the checker is most of it)."""
    import tracemalloc
    case = bench.parse_size(op, size)
    est = bench.estimate(op, case, "float32", "cpu")
    shapes, out_shape, _ = bench.case_arrays(op, case, "float32")
    data = bench.CaseData(op, case, "float32")
    assert {k: list(s) for k, (s, _) in shapes.items()} == data.shapes()  # from the spec, nothing allocated
    assert out_shape == data.reference()[0].shape
    del data
    entry = bench.Entry(bench.Target.of_variant(next(v for v in pk.variants(op, "numpy") if v.default)), case, "float32")
    tracemalloc.start()
    try:
        rec = bench.run_entry(entry, bench.CaseCache(), budget_s=0.0, max_reps=1, min_reps=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rec["status"] == "ok", rec
    assert peak <= est["host"] - est["parts"]["workspace"], (peak, est)


# --- plans come from the registry ----------------------------------------------------------------

def test_plan_follows_the_registry():
    @register("relu", "numpy", dtypes=("float32",), name="bench_probe")
    def bench_probe(x, y):
        """A variant that exists only for this test."""
        np.maximum(x, 0, out=y)

    try:
        entries, _ = bench.plan(["relu"], ["numpy"], None, {"relu": [{"shape": (100,)}]})
        keys = [e.target.key for e in entries]
        assert "numpy/bench_probe" in keys
        assert set(keys) >= {f"numpy/{v.name}" for v in pk.variants("relu", "numpy")}
        assert "baseline/numpy" in keys  # the CPU baseline comes with the CPU variants
    finally:
        unregister("relu", "numpy", "bench_probe")
    entries, _ = bench.plan(["relu"], ["numpy"], None, {"relu": [{"shape": (100,)}]})
    assert "numpy/bench_probe" not in [e.target.key for e in entries]


def test_plan_skips_what_cannot_be_timed_with_the_reason():
    entries, skipped = bench.plan(["relu"], None, None, {"relu": [{"shape": (100,)}]})
    reasons = {t.key: r for t, r in skipped}
    if simulator_enabled():
        for v in pk.variants("relu", "numba"):
            assert reasons[v.key.split("/", 1)[1]] == "simulator: timings meaningless"
    if not bench.gpu_present()[0]:
        assert all(e.target.device == "cpu" for e in entries)
    with pytest.raises(ValueError, match="variant"):
        bench.plan(["relu"], ["numpy"], ["no_such_variant"])


# --- the CLI sweep ----------------------------------------------------------------------------

def test_bench_cli_json_has_every_promised_field(tmp_path, capsys):
    path = tmp_path / "b.json"
    code, out, _ = run(["bench", "--op", "relu,matmul", "--backend", "numpy", "--sizes", "relu=96;matmul=96",
                        "--quick", "--no-progress", "--json", str(path)], capsys)
    assert code == 0, out
    doc = json.loads(path.read_text())
    env = doc["env"]
    for k in ("date", "package_version", "git_commit", "cpu", "gpu", "gpu_reason", "backends", "settings"):
        assert k in env
    assert env["cpu"]["model"] and env["cpu"]["cores"] >= 1
    assert env["package_version"] == pk.__version__
    assert env["gpu"] is not None or env["gpu_reason"]
    if env["gpu"]:
        assert {"name", "driver_version", "cuda_runtime_version"} <= set(env["gpu"])
    ok = [r for r in doc["entries"] if r["status"] == "ok"]
    assert {r["op"] for r in ok} == {"relu", "matmul"}
    for r in ok:
        for k in ("backend", "variant", "shapes", "dtype", "median_s", "iqr_s", "rate", "pct_of_ceiling"):
            assert r[k] is not None, k
        assert r["q25_s"] <= r["median_s"] <= r["q75_s"]
        assert r["check"]["ok"] and r["check"]["max_rel_err"] < 1e-5
        assert r["ratio_to_baseline"] > 0 and r["baseline"].startswith("baseline/")
        assert r["rate"] == pytest.approx(bench.work(r["op"], r["case"], r["dtype"]) / r["median_s"] / 1e9)
    base = [r for r in ok if r["key"] == r["baseline"]]
    assert base and all(r["ratio_to_baseline"] == pytest.approx(1.0) for r in base)
    assert "x base" in out and "GB/s" in out and "GFLOP/s" in out
    # the whole public call beside the kernel, for the CPU variants (not the library baselines)
    for r in ok:
        if r["kind"] == "variant":
            assert r["call_q25_s"] <= r["call_median_s"] <= r["call_q75_s"] and r["call_runs"] >= 3
            assert r["call_median_s"] > 0  # timed; which of the two medians is larger is a benchmark's
            # finding, not a test's (a matmul's 330 us kernel measured above its whole call once, under load)
        else:
            assert r["call_median_s"] is None
    assert "pk.<op>" in doc["settings"]["call"]
    assert "call (pk.relu, dispatch incl.)" in out and "call (pk.matmul, dispatch incl.)" in out
    assert doc["memory"]["host_available_bytes"] > 0 and doc["memory"]["largest_host_estimate_bytes"] > 0


def test_a_wrong_variant_is_reported_and_not_timed(tmp_path, capsys):
    @register("relu", "numpy", dtypes=("float32",), name="bench_wrong")
    def bench_wrong(x, y):
        """Deliberately wrong: drops the last element."""
        np.maximum(x, 0, out=y)
        y.reshape(-1)[-1] = 42.0

    path = tmp_path / "w.json"
    try:
        code, out, _ = run(["bench", "--op", "relu", "--backend", "numpy", "--variant", "bench_wrong",
                            "--sizes", "100", "--quick", "--no-progress", "--json", str(path)], capsys)
    finally:
        unregister("relu", "numpy", "bench_wrong")
    assert code == 1
    rec = next(r for r in json.loads(path.read_text())["entries"] if r["variant"] == "bench_wrong")
    assert rec["status"] == "wrong" and rec["median_s"] is None and rec["runs"] == 0
    assert rec["check"]["ok"] is False and rec["check"]["n_bad"] == 1
    assert "WRONG" in out


def test_bench_cli_rejects_bad_arguments(capsys):
    assert run(["bench", "--op", "nope", "--no-progress"], capsys)[0] == 2
    assert run(["bench", "--op", "matmul", "--sizes", "3x4", "--no-progress"], capsys)[0] == 2


def test_bench_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "ladder.png"
    code, out, _ = run(["bench", "--op", "relu", "--backend", "numpy", "--sizes", "64,256", "--quick",
                        "--no-progress", "--plot", str(png)], capsys)
    assert code == 0, out
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


# --- compare ----------------------------------------------------------------------------------

def test_compare_without_a_gpu_says_why(tmp_path, capsys):
    if bench.gpu_present()[0]:
        pytest.skip("a GPU is present: the GPU column is shown")
    path = tmp_path / "c.json"
    code, out, _ = run(["compare", "--op", "relu", "--sizes", "64,4096", "--quick", "--no-progress",
                        "--json", str(path)], capsys)
    assert code == 0, out
    assert "No GPU is available" in out and pk.backends()["cuda"].reason in out
    res = json.loads(path.read_text())["ops"][0]
    assert res["gpu"] is None and res["gpu_reason"]
    assert all(r["cpu_kernel_s"] > 0 and r["cpu_call_s"] > 0 and r["cpu_ok"] for r in res["rows"])


def test_crossover_is_where_the_gpu_wins_from_then_on():
    ids = ["a", "b", "c", "d"]
    assert bench.crossover(ids, [1, 2, 3, 4], [2, 1, 5, 1]) == "d"  # wins at b, loses again at c
    assert bench.crossover(ids, [1, 2, 3, 4], [2, 1, 1, 1]) == "b"
    assert bench.crossover(ids, [1, 2, 3, 4], [0.5, 1, 1, 1]) == "a"
    assert bench.crossover(ids, [1, 2, 3, 4], [2, 3, 4, 5]) is None
    assert bench.crossover(ids, [1, 2, 3, 4], [2, 1, None, 1]) == "b"  # a missing size is no evidence


def test_baseline_ratio_uses_the_first_baseline_listed():
    def rec(kind, name, median, device="gpu"):
        return {"op": "matmul", "device": device, "case_id": "8x8x8", "dtype": "float32", "kind": kind,
                "variant": name, "key": f"{'baseline' if kind == 'baseline' else 'cuda'}/{name}",
                "median_s": median, "baseline": None, "ratio_to_baseline": None}
    recs = [rec("variant", "naive", 4.0), rec("baseline", "torch-cuda", 1.0), rec("baseline", "cupy", 2.0),
            rec("variant", "cpu_thing", 1.0, device="cpu")]
    bench.add_baseline_ratios(recs)
    assert recs[0]["baseline"] == "baseline/cupy" and recs[0]["ratio_to_baseline"] == 0.5
    assert recs[1]["ratio_to_baseline"] == 2.0
    assert recs[3]["ratio_to_baseline"] is None  # no CPU baseline timed: no ratio


# --- timing -----------------------------------------------------------------------------------

class _FakeEvent:
    """Stands in for a CUDA event: 'records' the value of a fake GPU clock."""
    now = 0.0

    def __init__(self):
        self.t, self.synced = None, False

    def record(self):
        self.t = _FakeEvent.now

    def synchronize(self):
        self.synced = True


def test_event_clock_subtracts_gpu_time_and_waits_for_the_end_event():
    clock = EventClock("fake")
    clock._api = (_FakeEvent, lambda a, b: (b.t - a.t) * 1e3)  # elapsed in ms, like CUDA
    _FakeEvent.now = 1.0
    start = clock()
    _FakeEvent.now = 1.25
    end = clock()
    assert end - start == pytest.approx(0.25)
    assert end.event.synced


def test_measure_warms_up_flushes_and_bounds_repetitions():
    calls = {"run": 0, "flush": 0}
    ticks = iter(range(1000))

    def run_():
        calls["run"] += 1

    def flush():
        calls["flush"] += 1

    timing, samples = measure(run_, lambda: next(ticks), flush=flush, warmup=2, min_reps=3, max_reps=7,
                              budget_s=1e9)
    assert len(samples) == 7 and timing.runs == 7
    assert calls == {"run": 9, "flush": 7}
    assert timing.median == 1 and timing.iqr == 0
    timing, samples = measure(run_, lambda: next(ticks), warmup=0, min_reps=3, max_reps=50, budget_s=0.0)
    assert len(samples) == 3


def test_each_backend_times_on_its_own_clock():
    from pykern._backends import on_simulator
    assert backend_clock("numpy") is host_clock
    for backend, lib in (("cuda", "pykern"), ("numba", "numba")):
        clock = backend_clock(backend)
        if on_simulator(backend):  # the simulation's host time: no CUDA events to record
            assert clock is host_clock
        else:
            assert isinstance(clock, EventClock) and clock.lib == lib


def test_demo_times_through_measure_with_the_bench_flush(monkeypatch):
    """`pykern demo`: one warm-up, then exactly --reps timed runs, each after the device's flush."""
    calls = []
    monkeypatch.setattr(bench_run, "_FLUSHERS", {"cpu": (lambda: calls.append("flush"), "test flush")})
    prepared = type("Prepared", (), {"run": lambda self: calls.append("run"), "sync": lambda self: None})()
    timing = cli._time_demo(prepared, "numpy", 4)
    assert timing.runs == 4 and timing.q25 <= timing.median <= timing.q75
    assert calls == ["run"] + ["flush", "run"] * 4


def test_demo_stops_timing_a_slow_variant_after_three_runs(monkeypatch):
    """Past cli.DEMO_BUDGET_S of timed runs a variant gets 3 runs, not --reps (the naive CPU matmul
    at 2048^3 took 1.6 s a run); never more than --reps, and --reps below 3 is kept."""
    calls = []
    monkeypatch.setattr(bench_run, "_FLUSHERS", {"cpu": (lambda: None, "test flush")})
    monkeypatch.setattr(cli, "DEMO_BUDGET_S", 0.0)
    prepared = type("Prepared", (), {"run": lambda self: calls.append("run"), "sync": lambda self: None})()
    assert cli._time_demo(prepared, "numpy", 10).runs == 3
    assert cli._time_demo(prepared, "numpy", 2).runs == 2


def test_demo_times_a_slow_host_variant_by_its_checked_run(monkeypatch, capsys):
    """A host variant whose checked run took longer than cli.DEMO_BUDGET_S is not run again: that
    run is its time (the naive CPU matmul at 2048^3: 1.8 s a run)."""
    monkeypatch.setattr(cli, "DEMO_BUDGET_S", 0.0)
    monkeypatch.setattr(cli, "_time_demo", lambda *a, **k: pytest.fail("a slow host variant was run again"))
    assert cli.main(["demo", "--op", "relu"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("relu/numpy/")]
    assert rows and all(re.search(r" ok .* [0-9.]+ms +0\.0% ", line) for line in rows), rows


def test_the_conv2d_cpu_script_times_through_measure(monkeypatch):
    """bench/bench_conv2d_cpu.py: alternating blocks, each a warm-up and then timed calls."""
    import importlib.util
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts its checkout first
    spec = importlib.util.spec_from_file_location("bench_conv2d_cpu_probe", os.path.join(BENCH_DIR,
                                                                                         "bench_conv2d_cpu.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.measure is measure
    monkeypatch.setattr(script, "SETTLE_S", 0.0)
    calls = []
    times = script.time_side_by_side({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                     reps=4, block=2)
    assert calls == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3  # warm-up + 2 timed, alternating
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    assert all(t >= 0 for v in times.values() for t in v)


# --- the device run's summary ---------------------------------------------------------------------

def device_summary(results_dir) -> str:
    """bench/device_summary.py run the way bench/device_run.sh runs it (from an empty folder)."""
    proc = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "device_summary.py"), str(results_dir)],
                          capture_output=True, text=True, timeout=120, cwd=results_dir)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_device_summary_reads_the_logs(tmp_path, capsys):
    code, _, _ = run(["bench", "--op", "relu", "--backend", "numpy", "--sizes", "64", "--quick", "--no-progress",
                      "--json", str(tmp_path / "bench.json")], capsys)
    assert code == 0
    (tmp_path / "steps.tsv").write_text("tests\tFAILED(rc=1)\t12\t1\t\nsanitize-memcheck\tFAILED(rc=86)\t30\t86\t\n"
                                        "bench\tok\t5\t0\t\n")
    (tmp_path / "tests.log").write_text("....F\n= 3 failed, 10 passed, 2 skipped in 1.50s =\n")
    (tmp_path / "sanitize-memcheck.log").write_text("========= Invalid __global__ read\n"
                                                   "sanitize: 5 ok, 1 failed, 0 skipped\n"
                                                   "========= ERROR SUMMARY: 2 errors\n")
    text = device_summary(tmp_path)
    assert "3 failed, 10 passed, 2 skipped" in text
    assert "2 sanitizer errors; 5 ok, 1 failed, 0 skipped" in text
    assert "relu" in text and "numpy/" in text and "no compare.json" in text


# --- suspect timings are flagged, re-timed, never printed plainly --------------------------------

def _rec(**kw):
    e = bench.Entry(bench.Target.of_variant(pk.variants("relu", "numpy")[0]), {"shape": (1 << 20,)}, "float32")
    rec = bench.new_record(e)
    rec.update(status="ok", median_s=1e-3, q25_s=0.99e-3, q75_s=1.01e-3, iqr_s=2e-5, iqr_rel=0.02, runs=10,
               rate=8.4, pct_of_ceiling=50.0, ceiling="cpu:memory", others_cpu_share=0.0, check=None)
    rec.update(kw)
    return rec


def test_entry_flags_name_noise_impossible_rates_and_a_busy_machine():
    ceilings = {"cpu:memory": {"rate": 10.0, "bytes": 2.0 * (1 << 27)}}
    assert bench.entry_flags(_rec(), ceilings) == []
    (f,) = bench.entry_flags(_rec(iqr_rel=0.35), ceilings)
    assert f.startswith("noisy: IQR is 35% of the median")
    (f,) = bench.entry_flags(_rec(pct_of_ceiling=143.0), ceilings)
    assert f.startswith("impossible: 143% of the measured ceiling") and "stay in the caches" in f
    (f,) = bench.entry_flags(_rec(pct_of_ceiling=143.0, case={"shape": (1 << 28,)}), ceilings)
    assert "disturbed" in f  # as large as the ceiling's copy: no cache to blame
    (f,) = bench.entry_flags(_rec(others_cpu_share=0.6), ceilings)
    assert f.startswith("busy: other processes took 60%")
    assert bench.entry_flags(_rec(others_cpu_share=0.6, device="gpu"), ceilings) == []  # GPU time is the GPU's


class _Idle:
    """OtherLoad as on an idle machine: the tests below are about the re-timing rule, and a real
    load reading (other tests run beside them) would add a 'busy' flag to either timing."""
    share = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_suspect_entry_is_retimed_once_and_keeps_its_flag(monkeypatch):
    monkeypatch.setattr(bench_run, "OtherLoad", _Idle)
    calls = []

    def fake_run_entry(e, cache, **kw):
        calls.append(kw["budget_s"])
        return _rec(iqr_rel=0.5 if len(calls) == 1 else 0.3)

    monkeypatch.setattr(bench_run, "run_entry", fake_run_entry)
    rec = bench.run_entry_checked(None, None, budget_s=0.1)
    assert calls == [0.1, 0.1 * bench.RETIME_BUDGET_FACTOR]
    assert rec["retimed"] and rec["iqr_rel"] == 0.3 and rec["flags"][0].startswith("noisy")
    calls.clear()
    monkeypatch.setattr(bench_run, "run_entry", lambda e, cache, **kw: calls.append(1) or _rec())
    rec = bench.run_entry_checked(None, None)
    assert calls == [1] and rec["flags"] == [] and "retimed" not in rec  # a steady entry runs once


def test_the_table_marks_flagged_entries_and_warns_when_busy(tmp_path, capsys):
    doc = {"env": bench.environment(), "ceilings": {}, "skipped_targets": [], "elapsed_s": 1.0,
           "entries": [_rec(flags=["noisy: IQR is 35% of the median (limit 10%)"], retimed=True), _rec(flags=[])],
           "load": bench.load_summary(0.6)}
    text = bench.bench_table(doc)
    rows = [ln for ln in text.splitlines() if "numpy/reference" in ln]
    assert [ln[:2] for ln in rows] == ["! ", "  "]  # the flagged entry, then the steady one
    assert "! noisy: IQR is 35% of the median (limit 10%) (after re-timing)" in text
    assert "(1 flagged ! : do not trust their numbers)" in text
    assert text.splitlines()[-1].startswith("warning: the machine was busy: other processes took 60%")
    assert bench.load_summary(0.1)["warning"] is None


def test_other_load_sees_a_busy_process():
    import os
    import subprocess
    import sys
    import time
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        with bench.OtherLoad() as load:
            time.sleep(0.6)
    finally:
        spin.kill()
        spin.wait()
    if load.share is None:
        pytest.fail("no /proc/stat: OtherLoad cannot measure here")
    assert 0.3 / os.cpu_count() <= load.share <= 1.0


def test_the_torch_note_only_where_torch_is_installed(monkeypatch):
    from pykern.benchmark import baselines
    monkeypatch.setattr(baselines, "_installed", lambda module: module != "torch")
    doc = {"env": bench.environment(), "ceilings": {}, "skipped_targets": [], "elapsed_s": 1.0, "entries": [],
           "load": bench.load_summary(0.0)}
    assert "allow_tf32" not in bench.bench_table(doc)
    assert doc["env"]["settings"] == [bench.BASELINE_SETTINGS["cupy"]]
    monkeypatch.setattr(baselines, "_installed", lambda module: True)
    assert any("allow_tf32" in note for note in bench.environment()["settings"])


def test_one_rule_flags_a_noisy_spread():
    assert bench.noisy(0.10) is None and bench.noisy(None) is None
    assert bench.noisy(1.37) == "noisy: IQR is 137% of the median (limit 10%)"
    assert bench.entry_flags(_rec(iqr_rel=1.37)) == [bench.noisy(1.37)]


def test_compare_table_marks_noisy_times():
    doc = {"dtype": "float32", "load": bench.load_summary(None),
           "ops": [{"op": "relu", "cpu": "numpy/maximum", "gpu": None, "gpu_reason": "no GPU here",
                    "rows": [{"case_id": "1024", "cpu_kernel_s": 1e-6, "cpu_kernel_iqr_rel": 0.5,
                              "cpu_call_s": 2e-6, "cpu_call_iqr_rel": 0.01}]}]}
    text = bench.compare_table(doc)
    row = next(ln for ln in text.splitlines() if ln.strip().startswith("1024"))
    assert "1.0us!" in row and "2.0us " in row + " "
    assert "! = noisy" in text


def test_device_summary_carries_flags_and_the_busy_warning():
    doc = {"entries": [_rec(flags=["noisy: IQR is 35% of the median (limit 10%)"])], "load": bench.load_summary(0.7)}
    text = "\n".join(bench.summary_lines(doc))
    assert "; ! noisy: IQR is 35% of the median" in text
    assert "warning: the machine was busy: other processes took 70%" in text


def test_every_command_of_the_device_run_exists():
    """bench/device_run.sh runs on a GPU machine only: every script it names is in bench/, and the
    `python -m pykern` commands of its steps parse here (shell expansions stand in as numbers)."""
    import re
    import shlex
    with open(os.path.join(BENCH_DIR, "device_run.sh")) as f:
        text = f.read()
    scripts = set(re.findall(r"\$REPO/bench/([\w.]+\.py)", text))
    assert scripts == {"sanitize.py", "device_summary.py"}
    for name in scripts:
        assert os.path.isfile(os.path.join(BENCH_DIR, name)), name
    steps = [ln for ln in text.replace("\\\n", " ").splitlines() if ln.startswith("step ") and "-m pykern" in ln]
    parser = cli.build_parser()
    commands = []
    for line in steps:
        words = shlex.split(line)
        argv = [("1" if w.startswith("$((") else w) for w in words[words.index("pykern") + 1:]]
        args = parser.parse_args(argv)
        assert args.json and args.plot and args.time_budget == 1
        commands.append(args.command)
    assert commands == ["bench", "bench", "compare"]  # the sweep, the float16 tensor-core rungs, CPU vs GPU
    half = shlex.split(steps[1])
    assert half[half.index("--dtype") + 1] == "float16" and "matmul" in half and "4096,8192" in half
    assert "pykern.bench " not in text and "pykern.bench import" not in text  # the old module is gone


def test_the_overhead_script_prints_every_op_and_the_budgets(capsys, tmp_path):
    """bench/bench_overhead.py: one row per op with host variants (two for ops that take out=),
    the budgeted cases marked met or OVER (the numbers are not asserted: speed is measured, not
    tested), and --json writes the same rows."""
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location("bench_overhead_probe", os.path.join(BENCH_DIR, "bench_overhead.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "overhead.json"
    assert script.main(["--calls", "2", "--repeats", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    ops = {r["op"] for r in rows}
    assert ops == {op for op in pk.ops.OPS if pk.variants(op, "numpy")}
    budgeted = [r for r in rows if r["budget_s"] is not None]
    assert {(r["op"], r["case"], r["out"]) for r in budgeted} == set(script.BUDGETS_US)
    assert all(r["overhead_s"] == r["call_s"] - r["bare_s"] for r in rows)
    assert text.count(" met") + text.count(" OVER") == len(budgeted)
    with pytest.raises(SystemExit):
        script.main(["--calls", "0"])
