"""One entry, checked then timed (pykern._timing.measure), its suspect timings flagged and
re-timed, and the sweep over a plan that writes the JSON document of `pykern bench`."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .._arrays import describe, format_bytes
from .._check import compare, tolerance_key
from .._dispatch import Unsupported, call, prepare
from .._timing import EventClock, backend_clock, gpu_flusher, host_clock, measure
from ..ops import SPECS
from .baselines import all_baselines
from .cases import work
from .ceilings import ceiling_key, measure_ceilings
from .environment import BUSY_SHARE, OtherLoad, environment, gpu_info, load_summary
from .memory import check_fit, refuse, skip_reason
from .plan import Entry, Target, plan


SCHEMA = "pykern-bench/1"

# An entry whose timing cannot be trusted is re-timed once (with a longer budget) and, if it is
# still suspect, printed with a flag saying why, never plainly: a spread (IQR) above this share of
# the median; a rate above the ceiling measured in the same run; other processes taking more
# than BUSY_SHARE of the CPUs while a CPU entry ran.
NOISY_IQR_REL = 0.10
RETIME_BUDGET_FACTOR = 3
DEFAULT_ENTRY_BUDGET_S = 0.3  # timed wall time per entry once the minimum repetitions are done
SLOW_RUN_S = 1.0  # a target whose median run is slower than this skips its larger cases in a sweep


class CaseData:
    """Seeded host inputs for one (op, case, dtype), and the float64 reference, computed once
    and shared by every target run on that case."""

    def __init__(self, op: str, case: dict, dtype: str, seed: int = 0):
        self.op, self.case, self.dtype = op, case, dtype
        spec = SPECS[op]
        self.arrays, self.raw_params = spec.make_inputs(case, dtype, np.random.default_rng(seed))
        infos = {k: (None if v is None else describe(v, k)) for k, v in self.arrays.items()}
        _, _, self.params = spec.validate(infos, self.raw_params)
        self._ref = None

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ref is None:
            spec = SPECS[self.op]
            a64 = {k: (None if v is None else v.astype(np.float64)) for k, v in self.arrays.items()}
            self._ref = (spec.reference(a64, self.params), spec.magnitude(a64, self.params))
        return self._ref

    def shapes(self) -> dict:
        return {k: list(v.shape) for k, v in self.arrays.items() if v is not None}


class CaseCache:
    """Keeps the CaseData of the most recent cases (sweeps visit one case at a time)."""

    def __init__(self, size: int = 1, seed: int = 0):
        self.size, self.seed, self._items = size, seed, {}

    def get(self, op: str, case: dict, dtype: str) -> CaseData:
        key = (op, SPECS[op].case_id(case), dtype)
        if key not in self._items:
            while len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = CaseData(op, case, dtype, self.seed)
        return self._items[key]


@dataclass
class Runner:
    run: Callable[[], None]  # the timed launch, on data already in place
    sync: Callable[[], None]
    result: Callable[[], object]  # the output as a host array (after the last run)
    clock: Callable  # host_clock or a GPU EventClock


def clock_for(t: Target):
    """A variant's clock comes from its backend (pykern._timing.backend_clock); a GPU baseline
    times itself on its own library's CUDA events."""
    if t.kind == "variant":
        return backend_clock(t.backend)
    return host_clock if t.device == "cpu" else EventClock(t.baseline.lib)


def warmup_runs(once: float) -> int:
    """Untimed runs after the check run, which already warmed up: one more for a fast kernel, none
    for one that takes a quarter of a second (it would eat the entry's budget)."""
    return 1 if once < 0.25 else 0


def whole_call(op: str, data: CaseData, backend: str, name: str) -> Callable[[], object]:
    """What a user's ``pk.<op>(...)`` costs: pykern._dispatch.call, the function every public op
    calls (validation, dispatch, output allocation, host<->device copies on a GPU, the kernel)."""
    return lambda: call(op, data.arrays, data.raw_params, backend=backend, variant=name)


def make_runner(t: Target, data: CaseData) -> Runner:
    """Set ``t`` up on ``data`` (inputs uploaded outside any timing). Raises Unsupported."""
    if t.kind == "variant":
        p = prepare(t.op, data.arrays, data.raw_params, backend=t.backend, variant=t.name, poison=True)
        return Runner(p.run, p.sync, p.finish, clock_for(t))
    run, sync, result = t.baseline.build(data.arrays, data.params)
    return Runner(run, sync, result, clock_for(t))


def check_runner(runner: Runner, data: CaseData):
    """Run once and compare with the float64 reference: (Comparison, seconds for that run)."""
    t0 = time.perf_counter()
    runner.run()
    runner.sync()
    once = time.perf_counter() - t0
    got = np.asarray(runner.result())
    ref, mag = data.reference()
    return compare(got, ref, mag, tolerance_key(data.dtype, got.dtype)), once


_FLUSHERS: dict = {}


def flusher(device: str) -> tuple[Optional[Callable[[], None]], str]:
    """(flush or None, how) for ``device``, created once per process (see pykern._timing)."""
    if device not in _FLUSHERS:
        if device == "cpu":
            _FLUSHERS[device] = (None, "none: CPU runs go back to back (see pykern/_timing.py)")
        else:
            info, _ = gpu_info()
            _FLUSHERS[device] = gpu_flusher((info or {}).get("l2_cache_bytes"))
    return _FLUSHERS[device]


def new_record(e: Entry) -> dict:
    t = e.target
    return {"op": t.op, "backend": t.backend, "variant": t.name, "key": t.key, "kind": t.kind,
            "device": t.device, "technique": t.technique, "dtype": e.dtype, "case": e.case,
            "case_id": e.case_id, "shapes": None, "status": "skipped", "reason": e.skip,
            "median_s": None, "q25_s": None, "q75_s": None, "iqr_s": None, "iqr_rel": None, "runs": 0,
            "rate": None, "unit": SPECS[t.op].rate_unit, "ceiling": None, "pct_of_ceiling": None,
            "baseline": None, "ratio_to_baseline": None, "check": None,
            # CPU variants: the whole public call pk.<op>(...) beside the kernel's median_s
            "call_median_s": None, "call_q25_s": None, "call_q75_s": None, "call_iqr_rel": None, "call_runs": 0}


def run_entry(e: Entry, cache: CaseCache, *, ceilings: Optional[dict] = None, budget_s: float = DEFAULT_ENTRY_BUDGET_S,
              max_reps: int = 30, min_reps: int = 3, flush: bool = True) -> dict:
    """Check ``e`` against the reference, then (when correct) time it. Returns its JSON record.

    Status: ok; wrong (a variant that fails the check is reported, not timed); inexact (a
    baseline that fails the check: still timed, as the yardstick it is); skipped; error."""
    rec = new_record(e)
    if e.skip:
        return rec
    t = e.target
    try:
        data = cache.get(t.op, e.case, e.dtype)
        rec["shapes"] = data.shapes()
        runner = make_runner(t, data)
        cmp, once = check_runner(runner, data)
    except Unsupported as ex:
        rec["reason"] = str(ex)
        return rec
    except ImportError as ex:  # e.g. ml_dtypes for bfloat16 inputs: an optional dependency
        rec["reason"] = f"needs a module that is not installed: {ex}"
        return rec
    except Exception as ex:  # a crash in one target must not stop the sweep
        rec.update(status="error", reason=f"{type(ex).__name__}: {ex}")
        return rec
    rec["once_s"] = once
    rec["check"] = {"ok": cmp.ok, "max_rel_err": cmp.max_rel_err, "n_bad": cmp.n_bad, "n_total": cmp.n_total,
                    "tolerance": cmp.dtype, "message": cmp.message()}
    if not cmp.ok and t.kind == "variant":
        rec.update(status="wrong", reason="does not match the float64 reference: not timed")
        return rec
    try:
        fl = flusher(t.device)[0] if flush else None
        timing, _ = measure(runner.run, runner.clock, sync=runner.sync, flush=fl, warmup=warmup_runs(once),
                            min_reps=min_reps, max_reps=max_reps, budget_s=budget_s)
        call_t = None
        if t.kind == "variant" and t.device == "cpu":  # a GPU row's whole call is `compare`'s job
            call_t, _ = measure(whole_call(t.op, data, t.backend, t.name), host_clock, warmup=1,
                                min_reps=min_reps, max_reps=max_reps, budget_s=budget_s)
    except Exception as ex:
        rec.update(status="error", reason=f"while timing: {type(ex).__name__}: {ex}")
        return rec
    if call_t is not None:
        rec.update(call_median_s=call_t.median, call_q25_s=call_t.q25, call_q75_s=call_t.q75,
                   call_iqr_rel=call_t.spread, call_runs=call_t.runs)
    rate = work(t.op, e.case, e.dtype) / timing.median / 1e9
    rec.update(status="ok" if cmp.ok else "inexact", reason=None if cmp.ok else "baseline outside the "
               "float64 tolerance: timed anyway", median_s=timing.median, q25_s=timing.q25, q75_s=timing.q75,
               iqr_s=timing.iqr, iqr_rel=timing.spread, runs=timing.runs, rate=rate)
    ceil = (ceilings or {}).get(ceiling_key(t.op, t.device, e.dtype))
    if ceil and ceil.get("rate"):
        rec["ceiling"] = ceiling_key(t.op, t.device, e.dtype)
        rec["pct_of_ceiling"] = 100.0 * rate / ceil["rate"]
    return rec


def noisy(iqr_rel: Optional[float]) -> Optional[str]:
    """The one rule for a spread too wide to trust, in `bench`, `compare` and `demo`: the flag in
    words, or None."""
    if iqr_rel is None or iqr_rel <= NOISY_IQR_REL:
        return None
    return f"noisy: IQR is {100 * iqr_rel:.0f}% of the median (limit {100 * NOISY_IQR_REL:.0f}%)"


def entry_flags(rec: dict, ceilings: Optional[dict] = None) -> list:
    """Why ``rec``'s timing is suspect, in words (empty: trust it)."""
    flags = []
    if rec.get("median_s") is None:
        return flags
    spread = noisy(rec.get("iqr_rel"))
    if spread:
        flags.append(spread)
    pct = rec.get("pct_of_ceiling")
    if pct is not None and pct > 100:
        why = "the ceiling run or this timing was disturbed"
        ceil = (ceilings or {}).get(rec.get("ceiling") or "", {})
        moved = work(rec["op"], rec["case"], rec["dtype"])
        if rec["unit"] == "GB/s" and ceil.get("bytes") and moved < ceil["bytes"] / 4:
            why = (f"its {format_bytes(moved)} stay in the caches, while "
                   f"the ceiling streams {format_bytes(ceil['bytes'])} through memory")
        flags.append(f"impossible: {pct:.0f}% of the measured ceiling ({why})")
    if rec.get("device") == "cpu" and (rec.get("others_cpu_share") or 0) > BUSY_SHARE:
        flags.append(f"busy: other processes took {100 * rec['others_cpu_share']:.0f}% of the CPUs while it ran")
    return flags


def run_entry_checked(e: Entry, cache: CaseCache, *, ceilings: Optional[dict] = None,
                      budget_s: float = DEFAULT_ENTRY_BUDGET_S, max_reps: int = 30, retime: bool = True) -> dict:
    """run_entry, with the load from other processes recorded; a suspect timing (entry_flags)
    is re-timed once with a longer budget, the steadier of the two kept, and the flags that
    remain are stored in the record's ``flags``."""
    def once(budget):
        with OtherLoad() as load:
            rec = run_entry(e, cache, ceilings=ceilings, budget_s=budget, max_reps=max_reps)
        rec["others_cpu_share"] = load.share
        rec["flags"] = entry_flags(rec, ceilings)
        return rec

    rec = once(budget_s)
    if retime and rec["flags"] and rec["status"] in ("ok", "inexact"):
        again = once(budget_s * RETIME_BUDGET_FACTOR)
        steadier = (len(again["flags"]), again["iqr_rel"]) <= (len(rec["flags"]), rec["iqr_rel"])
        if again["status"] in ("ok", "inexact") and steadier:
            rec = again
        rec["retimed"] = True
    return rec


def add_baseline_ratios(records: list) -> None:
    """ratio_to_baseline = baseline median time / entry median time (> 1: faster than the
    baseline), against the baseline its op's spec lists first among those timed on the same device,
    case and dtype."""
    order = {(b.op, b.device, b.name): i for i, b in enumerate(all_baselines())}
    best = {}
    for r in records:
        if r["kind"] == "baseline" and r["median_s"]:
            k = (r["op"], r["device"], r["case_id"], r["dtype"])
            rank = order[(r["op"], r["device"], r["variant"])]
            if k not in best or rank < best[k][0]:
                best[k] = (rank, r)
    for r in records:
        b = best.get((r["op"], r["device"], r["case_id"], r["dtype"]))
        if b and r["median_s"]:
            r["baseline"] = b[1]["key"]
            r["ratio_to_baseline"] = b[1]["median_s"] / r["median_s"]


# --- progress ---------------------------------------------------------------------------------


class Progress:
    """tqdm on stderr when installed and stderr is a terminal, else a plain counter on stderr."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self.total, self.n, self.enabled, self._bar = total, 0, enabled, None
        if enabled and sys.stderr.isatty():  # a log file gets one plain line per entry instead
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, desc=desc, unit="entry", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def step(self, label: str) -> None:
        self.n += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(label[:60], refresh=False)
            self._bar.update(1)
        else:
            print(f"[{self.n}/{self.total}] {label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --- the sweep --------------------------------------------------------------------------------


def sweep(ops=None, backends_=None, variant_names=None, sizes: Optional[dict] = None, dtype: str = "auto",
          with_baselines: bool = True, max_reps: int = 30, time_budget: Optional[float] = None,
          quick: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """Check and time every planned entry; the result document written as JSON by the CLI.
    ValueError, before anything runs, for a size in ``sizes`` that does not fit in memory here
    (pykern/benchmark/memory.py); a default case that does not fit is skipped with the reason."""
    t_start = time.perf_counter()
    entries, skipped = plan(ops, backends_, variant_names, sizes, dtype, with_baselines)
    too_big, memory = check_fit((e.target.op, e.case, e.dtype, e.target.device) for e in entries)
    refuse(too_big, sizes)
    for e in entries:
        why = too_big.get((e.target.op, e.case_id, e.dtype, e.target.device))
        if why:
            e.skip = skip_reason(why)
    load = OtherLoad().__enter__()
    needed = {ceiling_key(e.target.op, e.target.device, e.dtype) for e in entries}
    ceilings = measure_ceilings(needed, quick=quick)
    deadline = None if time_budget is None else t_start + time_budget
    entry_budget = 0.05 if quick else DEFAULT_ENTRY_BUDGET_S
    cache = CaseCache(seed=seed)
    slow: dict = {}  # target -> (work, case_id, seconds) of the run that was too slow
    records = []
    bar = Progress(len(entries), "bench", progress)
    for i, e in enumerate(entries):
        t = e.target
        now = time.perf_counter()
        w = work(t.op, e.case, e.dtype)
        if deadline is not None and now >= deadline:
            e.skip = f"time budget of {time_budget:.0f} s used up"
        elif t in slow and w > slow[t][0]:
            e.skip = f"too slow: {slow[t][2]:.2f} s per run at {slow[t][1]}; larger sizes skipped"
        budget = entry_budget
        if deadline is not None:
            budget = max(0.0, min(budget, 0.6 * (deadline - now) / (len(entries) - i)))
        rec = run_entry_checked(e, cache, ceilings=ceilings, budget_s=budget, max_reps=max_reps,
                                retime=deadline is None or time.perf_counter() < deadline)
        if (rec["median_s"] or 0) > SLOW_RUN_S * (0.1 if quick else 1):
            slow.setdefault(t, (w, e.case_id, rec["median_s"]))
        records.append(rec)
        bar.step(f"{t.op} {t.key} {e.case_id} {e.dtype}: {rec['status']}")
    bar.close()
    load.__exit__(None, None, None)
    add_baseline_ratios(records)
    flush_how = {d: flusher(d)[1] for d in sorted({r["device"] for r in records if r["runs"]})}
    return {
        "schema": SCHEMA, "command": "bench", "env": environment(),
        "settings": {"dtype": dtype, "max_reps": max_reps, "entry_budget_s": entry_budget, "seed": seed,
                     "time_budget_s": time_budget, "quick": quick, "cache_flush": flush_how,
                     "timing": "median_s: the prepared kernel alone, median of repeated runs after a "
                               "warm-up; GPU: CUDA events on the default stream, L2 flushed before every "
                               "timed run; CPU: perf_counter, runs back to back",
                     "call": "call_median_s (CPU variants): the whole public call pk.<op>(...), "
                             "i.e. pykern._dispatch.call: validation, dispatch, output allocation and the "
                             "kernel, timed the same way",
                     "ratio_to_baseline": "baseline median time / entry median time (> 1: faster)"},
        "ceilings": ceilings,
        "memory": memory,
        "skipped_targets": [{"op": t.op, "key": t.key, "device": t.device, "reason": r} for t, r in skipped],
        "entries": records,
        "load": load_summary(load.share),
        "elapsed_s": time.perf_counter() - t_start,
    }
