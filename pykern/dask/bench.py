"""`pykern bench --scheduler ADDRESS`: the sweep of `pykern bench` on every distinct device of a
Dask cluster, and one table per op and size comparing the devices, the CPU row as 1x.

    doc = cluster_sweep("tcp://10.0.0.5:8786", ops=["matmul"], quick=True)
    print(cluster_table(doc))

Each worker reports what it runs on (its host, CPU model, GPU name: pykern/benchmark/environment.py).
A device is a CPU model or a GPU name; each one is timed once, on the first worker (by address)
that has it: the workers of one GPU model, or of one CPU model, are not timed twice. A worker
runs pykern.benchmark.sweep as an ordinary task (restricted to that worker) on the backends of
its new devices: numpy for a CPU, cuda and numba for a GPU. The devices run one after another,
never at once, so that two workers sharing a machine do not time each other's load; the
client only gathers the documents, each the JSON `pykern bench --json` writes on that machine.
"""
from __future__ import annotations

import time
from typing import Optional

from ..benchmark.report import fmt_time
from ..benchmark.run import SCHEMA

GPU_BACKENDS = ("cuda", "numba")


def _identity() -> dict:
    """What one worker runs on: host, CPU model, and the GPU pykern's kernels would use (None
    without one, or with only a simulator)."""
    import socket

    from ..benchmark.environment import cpu_info, gpu_info, gpu_present
    has_gpu, reason = gpu_present()
    gpu = gpu_info()[0] if has_gpu else None
    return {"host": socket.gethostname(), "cpu": cpu_info()["model"],
            "gpu": (gpu or {}).get("name") if has_gpu else None, "gpu_reason": None if has_gpu else reason}


def _sweep(kwargs: dict) -> dict:
    from ..benchmark import sweep
    return sweep(**kwargs, progress=False)


def plan_devices(identities: dict, backends_=None) -> tuple[list, list]:
    """Which worker times which device: ([{"worker", "devices", "backends"}], [{"worker",
    "reason"}]). ``identities``: worker address -> _identity(); ``backends_``: the backends asked
    for (None: all), a CPU being timed by numpy and a GPU by cuda and numba."""
    from ..benchmark.plan import split_list
    wanted = split_list(backends_)
    covered: dict = {}  # device -> the worker that times it
    runs, skipped = [], []
    for addr in sorted(identities):
        ident = identities[addr]
        devices = {f"CPU {ident['cpu']}": ["numpy"]}
        if ident.get("gpu"):
            devices[f"GPU {ident['gpu']}"] = list(GPU_BACKENDS)
        new = {d: [b for b in bs if wanted is None or b in wanted] for d, bs in devices.items() if d not in covered}
        new = {d: bs for d, bs in new.items() if bs}
        if not new:
            same = sorted({covered[d] for d in devices if d in covered})
            reason = (f"its devices are timed on {', '.join(same)}" if same else
                      f"no backend asked for ({','.join(wanted or [])}) runs on its devices")
            skipped.append({"worker": addr, "reason": reason})
            continue
        for d in new:
            covered[d] = addr
        runs.append({"worker": addr, "devices": list(new), "backends": [b for bs in new.values() for b in bs]})
    return runs, skipped


def cluster_sweep(scheduler, ops=None, backends_=None, variant_names=None, sizes: Optional[dict] = None,
                  dtype: str = "auto", with_baselines: bool = True, max_reps: int = 30,
                  time_budget: Optional[float] = None, quick: bool = False, seed: int = 0,
                  progress: bool = True) -> dict:
    """Run pykern.benchmark.sweep once per distinct device of the cluster at ``scheduler`` (an
    address, or a distributed.Client), with these arguments (as sweep's), and gather the
    documents. ``time_budget`` applies to each device's sweep."""
    import sys

    import distributed

    from ..benchmark import environment
    t0 = time.perf_counter()
    client = scheduler if isinstance(scheduler, distributed.Client) else distributed.Client(scheduler, timeout=30)
    try:
        identities = client.run(_identity)
        if not identities:
            raise ValueError(f"scheduler {scheduler!r} has no workers")
        # a paused worker (over its memory limit's pause threshold) would take the sweep and never run it
        status = {a: w.get("status", "running") for a, w in client.scheduler_info()["workers"].items()}
        runnable = {a: i for a, i in identities.items() if status.get(a, "running") == "running"}
        runs, skipped = plan_devices(runnable, backends_)
        skipped += [{"worker": a, "reason": f"its status is {status.get(a)!r}, not running (paused: over the "
                                            "memory limit's pause threshold)"} for a in identities if a not in runnable]
        devices = []
        for i, r in enumerate(runs):
            if progress:
                print(f"[{i + 1}/{len(runs)}] {', '.join(r['devices'])} on {r['worker']}", file=sys.stderr, flush=True)
            kwargs = {"ops": ops, "backends_": r["backends"], "variant_names": variant_names, "sizes": sizes,
                      "dtype": dtype, "with_baselines": with_baselines, "max_reps": max_reps,
                      "time_budget": time_budget, "quick": quick, "seed": seed}
            future = client.submit(_sweep, kwargs, workers=[r["worker"]], allow_other_workers=False, pure=False)
            devices.append({**r, **identities[r["worker"]], "doc": _result(client, future, r["worker"])})
    finally:
        if client is not scheduler:
            client.close()
    address = client.scheduler.address if client is scheduler else str(scheduler)
    doc = {"schema": SCHEMA, "command": "bench --scheduler", "scheduler": address,
           "client_env": environment(), "workers": identities, "skipped_workers": skipped, "devices": devices,
           "elapsed_s": time.perf_counter() - t0}
    doc["comparison"] = comparison(doc)
    return doc


def _result(client, future, worker: str, patience_s: float = 30.0):
    """The future's result; RuntimeError when its worker stays paused (over the pause threshold of
    its memory limit: it then starts no task, and the sweep would wait forever) or leaves."""
    import distributed
    paused_since = None
    while True:
        try:
            distributed.wait(future, timeout=1.0)
            return future.result()
        except distributed.TimeoutError:
            pass
        status = client.scheduler_info()["workers"].get(worker, {}).get("status", "gone")
        if status == "running":
            paused_since = None
            continue
        paused_since = paused_since or time.monotonic()
        if time.monotonic() - paused_since > patience_s:
            future.cancel()
            raise RuntimeError(f"worker {worker} has been {status} for {patience_s:.0f} s with the sweep waiting "
                               "(a paused worker is over its memory limit's pause threshold: start it with a "
                               "larger --memory-limit)")


def comparison(doc: dict) -> list:
    """Per (op, case, dtype): one row per device, its fastest correct pykern variant, and how many
    times faster than the first CPU row (the CPU's row is 1x; None where no CPU ran the case)."""
    groups: dict = {}
    for dev in doc["devices"]:
        for label in dev["devices"]:
            kind = label.split(" ", 1)[0].lower()  # "cpu" or "gpu": the entries' own device field
            for r in dev["doc"]["entries"]:
                if r["device"] != kind or r["kind"] != "variant" or r["status"] != "ok" or not r["median_s"]:
                    continue
                rows = groups.setdefault((r["op"], r["case_id"], r["dtype"]), {})
                best = rows.get(label)
                if best is None or r["median_s"] < best["median_s"]:
                    rows[label] = {"device": label, "worker": dev["worker"], "key": r["key"],
                                   "median_s": r["median_s"], "iqr_rel": r["iqr_rel"], "rate": r["rate"],
                                   "unit": r["unit"], "flags": r.get("flags") or []}
    out = []
    for (op, cid, dtype), rows in groups.items():
        rows = sorted(rows.values(), key=lambda row: (not row["device"].startswith("CPU"), row["device"]))
        cpu = next((row for row in rows if row["device"].startswith("CPU")), None)
        for row in rows:
            row["x_cpu"] = None if cpu is None else cpu["median_s"] / row["median_s"]
        out.append({"op": op, "case_id": cid, "dtype": dtype, "cpu": None if cpu is None else cpu["device"],
                    "rows": rows})
    return out


def cluster_table(doc: dict) -> str:
    lines = [f"pykern bench over the cluster at {doc['scheduler']}: {len(doc['workers'])} workers, "
             f"{sum(len(d['devices']) for d in doc['devices'])} distinct devices"]
    for d in doc["devices"]:
        lines.append(f"  {', '.join(d['devices'])}: timed on {d['worker']} ({d['host']}), "
                     f"backends {','.join(d['backends'])}, {d['doc']['elapsed_s']:.0f} s")
    for s in doc["skipped_workers"]:
        lines.append(f"  {s['worker']}: not timed, {s['reason']}")
    lines.append("each row: the device's fastest correct pykern variant (median); x CPU = CPU row's time / "
                 "this row's time (> 1: faster than the CPU); ! = a timing not to trust")
    for res in doc["comparison"]:
        lines.append(f"\n{res['op']} {res['case_id']} {res['dtype']}")
        unit = res["rows"][0]["unit"]
        lines.append(f"  {'device':40s} {'variant':24s} {'median':>10s} {'IQR':>7s} {unit:>10s} {'x CPU':>7s}")
        for row in res["rows"]:
            x = "-" if row["x_cpu"] is None else f"{row['x_cpu']:.2f}x"
            lines.append(f"{'!' if row['flags'] else ' '} {row['device'][:40]:40s} {row['key']:24s} "
                         f"{fmt_time(row['median_s']):>10s} {100 * row['iqr_rel']:6.1f}% {row['rate']:10.1f} {x:>7s}")
        if res["cpu"] is None:
            lines.append("  no CPU row at this size (a CPU sweep's default cases differ from a GPU's: give --sizes)")
    if not doc["comparison"]:
        lines.append("\nno variant was timed on any device")
    for d in doc["devices"]:
        warn = (d["doc"].get("load") or {}).get("warning")
        if warn:
            lines.append(f"{d['worker']}: {warn}")
    return "\n".join(lines)
