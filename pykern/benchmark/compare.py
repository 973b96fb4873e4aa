"""CPU vs GPU per size: the data-on-device kernel time and the whole call (host<->device copies
counted), and the size from which the GPU wins."""
from __future__ import annotations

import time
from typing import Optional

from .._backends import availability
from .._dispatch import Unsupported
from .._registry import variants
from .._timing import host_clock, measure
from ..ops import SPECS
from .environment import OtherLoad, environment, gpu_present, load_summary
from .memory import check_fit, refuse, skip_reason
from .plan import Target, split_list
from .run import SCHEMA, CaseCache, Progress, check_runner, flusher, make_runner, whole_call


def crossover(case_ids: list, cpu: list, gpu: list) -> Optional[str]:
    """The first case from which the GPU is faster at that size and every larger one."""
    first = None
    for cid, c, g in zip(case_ids, cpu, gpu):
        if c is None or g is None:
            continue
        if g < c:
            first = first or cid
        else:
            first = None
    return first


def compare_gpu_target(op: str) -> tuple[Optional[Target], str]:
    """The GPU side of the comparison: the cuda default variant, else numba's; or (None, why)."""
    has_gpu, reason = gpu_present()
    if not has_gpu:
        return None, reason
    for backend in ("cuda", "numba"):
        if not availability(backend).available:
            continue
        v = next((v for v in variants(op, backend) if v.default), None)
        if v is not None:
            return Target.of_variant(v), availability(backend).reason
    return None, f"no default {op} variant registered on cuda or numba"


def compare_sweep(ops=None, sizes: Optional[dict] = None, dtype: str = "float32", quick: bool = False,
                  seed: int = 0, progress: bool = True, time_budget: Optional[float] = None) -> dict:
    """For each op and size: CPU (NumPy default variant) vs GPU (cuda default, else numba),
    with data already in place (kernel only) and with a whole call (host<->device copies counted).
    ValueError, before anything runs, for a size in ``sizes`` that does not fit in memory here
    (pykern/benchmark/memory.py); a default case that does not fit is skipped with the reason."""
    t_start = time.perf_counter()
    ops = split_list(ops) or list(SPECS)
    for op in ops:
        if op not in SPECS:
            raise ValueError(f"op: unknown op {op!r}; expected one of {list(SPECS)}")
    cases = {op: sizes[op] if sizes and op in sizes else SPECS[op].compare_cases() for op in ops}
    cpu_ts = {op: Target.of_variant(next(v for v in variants(op, "numpy") if v.default)) for op in ops}
    gpu_ts = {op: compare_gpu_target(op) for op in ops}  # (target or None, reason)
    too_big, memory = check_fit([(op, case, dtype, t.device) for op in ops for case in cases[op]
                                 for t in (cpu_ts[op], gpu_ts[op][0]) if t], whole_call=True)
    refuse(too_big, sizes)
    load = OtherLoad().__enter__()
    budget = 0.05 if quick else 0.3
    cache = CaseCache(seed=seed)
    ops_out = []
    bar = Progress(sum(len(c) for c in cases.values()), "compare", progress)
    for op in ops:
        cpu_t, (gpu_t, gpu_reason) = cpu_ts[op], gpu_ts[op]
        rows = []
        for case in cases[op]:
            row = {"case": case, "case_id": SPECS[op].case_id(case)}
            over = time_budget is not None and time.perf_counter() - t_start > time_budget
            for side, t in (("cpu", cpu_t), ("gpu", gpu_t)):
                if t is None:
                    continue
                why = too_big.get((op, row["case_id"], dtype, t.device))
                if over or why:
                    row[f"{side}_reason"] = skip_reason(why) if why else f"time budget of {time_budget:.0f} s used up"
                    continue
                row.update(_compare_side(side, t, cache, case, dtype, budget))
            rows.append(row)
            bar.step(f"{op} {row['case_id']}")
        ids = [r["case_id"] for r in rows]
        res = {"op": op, "cpu": cpu_t.key, "gpu": gpu_t.key if gpu_t else None, "gpu_reason": gpu_reason,
               "rows": rows}
        if gpu_t:
            res["crossover_on_device"] = crossover(ids, [r.get("cpu_kernel_s") for r in rows],
                                                   [r.get("gpu_kernel_s") for r in rows])
            res["crossover_with_copies"] = crossover(ids, [r.get("cpu_call_s") for r in rows],
                                                     [r.get("gpu_call_s") for r in rows])
        ops_out.append(res)
    bar.close()
    load.__exit__(None, None, None)
    return {"schema": SCHEMA, "command": "compare", "env": environment(), "dtype": dtype,
            "load": load_summary(load.share), "memory": memory,
            "settings": {"kernel": "run() alone on data already in place (GPU: CUDA events)",
                         "call": "the whole public call pk.<op>(...) (pykern._dispatch.call) on the host "
                                 "clock: validation, host->device copy, launch, device->host copy",
                         "crossover": "the first size from which the GPU is faster at that size and every "
                                      "larger one tried"},
            "ops": ops_out, "elapsed_s": time.perf_counter() - t_start}


def _compare_side(side: str, t: Target, cache: CaseCache, case: dict, dtype: str, budget: float) -> dict:
    out = {}
    try:
        data = cache.get(t.op, case, dtype)
        runner = make_runner(t, data)
        cmp, _ = check_runner(runner, data)
        out[f"{side}_ok"] = cmp.ok
        out[f"{side}_max_rel_err"] = cmp.max_rel_err
        if not cmp.ok:
            out[f"{side}_reason"] = "wrong: " + cmp.message().splitlines()[0]
            return out
        fl = flusher(t.device)[0]
        kt, _ = measure(runner.run, runner.clock, sync=runner.sync, flush=fl, warmup=1, budget_s=budget)
        ct, _ = measure(whole_call(t.op, data, t.backend, t.name), host_clock, sync=runner.sync, flush=fl,
                        warmup=1, budget_s=budget)
        out.update({f"{side}_kernel_s": kt.median, f"{side}_kernel_iqr_rel": kt.spread,
                    f"{side}_kernel_q25_s": kt.q25, f"{side}_kernel_q75_s": kt.q75,
                    f"{side}_call_s": ct.median, f"{side}_call_iqr_rel": ct.spread,
                    f"{side}_call_q25_s": ct.q25, f"{side}_call_q75_s": ct.q75})
    except Unsupported as ex:
        out[f"{side}_reason"] = str(ex)
    except Exception as ex:
        out[f"{side}_reason"] = f"error: {type(ex).__name__}: {ex}"
    return out
