"""Every registered variant and library baseline: op x backend x variant x size x dtype.

Generated from the registry through pykern.benchmark.plan, so a new variant is benchmarked by
registering it. Each entry is checked against the float64 reference first (a wrong variant
fails here, untimed), then timed with pytest-benchmark's pedantic mode: a warm-up round, the
GPU's L2 flushed before each round (outside the timed interval), and on a GPU the timer is a
CUDA-event clock (pykern._timing.EventClock), so the rounds measure the GPU's time.
"""
import pytest

from pykern import benchmark as bench

_ENTRIES = {}  # (op, backend, variant, size, dtype) -> Entry, or a reason the target is skipped


def pytest_generate_tests(metafunc):
    if "op" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption
    # The CLI's one reading of --op/--sizes: a size is never applied to an op it was not meant for
    # (--bench-op conv2d,relu --bench-sizes 2^16 would run conv2d on a 65536x65536 image).
    items = [("op", opt("--bench-op"))] if opt("--bench-op") else []
    items += [("sizes", opt("--bench-sizes"))] if opt("--bench-sizes") else []
    try:
        ops, sizes = bench.select(items)
    except ValueError as e:
        raise pytest.UsageError(f"--bench-sizes: {e}") from e
    entries, skipped = bench.plan(ops, opt("--bench-backend"), opt("--bench-variant"), sizes,
                                  opt("--bench-dtype"), not opt("--bench-no-baselines"))
    params = []
    for e in entries:
        t = e.target
        key = (t.op, t.backend, t.name, e.case_id, e.dtype)
        _ENTRIES[key] = e
        mark = pytest.mark.benchmark(group=f"{t.op} {e.case_id} {e.dtype} {t.device}", timer=bench.clock_for(t))
        params.append(pytest.param(*key, marks=mark, id="-".join(key)))
    for t, reason in skipped:  # listed once per target, with the reason, not once per size
        key = (t.op, t.backend, t.name, "-", "-")
        _ENTRIES[key] = reason
        params.append(pytest.param(*key, id="-".join(key[:3])))
    metafunc.parametrize("op,backend,variant,size,dtype", params)


def test_kernel(benchmark, pykern_session, request, op, backend, variant, size, dtype):
    entry = _ENTRIES[(op, backend, variant, size, dtype)]
    if isinstance(entry, str):
        pytest.skip(entry)
    t = entry.target
    rec = bench.new_record(entry)
    try:
        data = pykern_session.cache.get(op, entry.case, dtype)
        runner = bench.make_runner(t, data)
    except bench.Unsupported as e:
        pytest.skip(str(e))
    cmp, once = bench.check_runner(runner, data)
    if not cmp.ok and t.kind == "variant":
        pytest.fail(f"wrong (not timed): {t.key} on {entry.case_id} {dtype}:\n{cmp.message()}", pytrace=False)
    info = benchmark.extra_info
    info.update(op=op, backend=backend, variant=variant, kind=t.kind, device=t.device, technique=t.technique,
                case=entry.case, case_id=entry.case_id, dtype=dtype, shapes=data.shapes(), unit=rec["unit"],
                check_ok=cmp.ok, max_rel_err=cmp.max_rel_err)
    flush = bench.flusher(t.device)[0] if benchmark.enabled else None
    rounds = max(3, min(30, int(bench.DEFAULT_ENTRY_BUDGET_S / max(once, 1e-6))))
    benchmark.pedantic(runner.run, setup=flush, rounds=rounds, warmup_rounds=bench.warmup_runs(once))
    runner.sync()
    if not benchmark.enabled:
        return
    median = benchmark.stats.stats.median
    rate = bench.work(op, entry.case, dtype) / median / 1e9
    ckey = bench.ceiling_key(op, t.device, dtype)
    ceil = pykern_session.ceiling(ckey)
    pct = 100.0 * rate / ceil["rate"] if ceil.get("rate") else None
    info.update(rate=rate, pct_of_ceiling=pct, ceiling=ceil)
    st = benchmark.stats.stats
    iqr_rel = st.iqr / median if median > 0 else 0.0
    rec.update(status="ok" if cmp.ok else "inexact", median_s=median, rate=rate, pct_of_ceiling=pct,
               ceiling=ckey, iqr_s=st.iqr, iqr_rel=iqr_rel, check={"ok": cmp.ok, "max_rel_err": cmp.max_rel_err})
    info.update(iqr_rel=iqr_rel, flags=bench.entry_flags(rec, pykern_session.ceilings))
    pykern_session.records[request.node.nodeid] = rec
