"""Text tables of `pykern bench` and `pykern compare`, the one-screen summary of a sweep, and the
JSON writer."""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from .cases import work
from .run import NOISY_IQR_REL, noisy


def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f}us"
    if s < 1:
        return f"{s * 1e3:.3f}ms"
    return f"{s:.3f}s"


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def bench_table(doc: dict) -> str:
    env = doc["env"]
    lines = [f"pykern {env['package_version']} bench  {env['date']}  commit {(env['git_commit'] or 'unknown')[:12]}",
             f"CPU: {env['cpu']['model']} ({env['cpu']['usable_cores']} cores)",
             "GPU: " + (f"{env['gpu']['name']} (driver {env['gpu'].get('driver_version', '?')}, CUDA runtime "
                        f"{env['gpu'].get('cuda_runtime_version', '?')})" if env["gpu"] else
                        f"none ({env['gpu_reason']})")]
    lines.append("ceilings (measured now):")
    for k, c in doc["ceilings"].items():
        lines.append(f"  {k:22s} " + (f"{c['rate']:10.1f} {c['unit']:8s} {c['how']}" if c.get("rate")
                                      else f"unavailable: {c.get('reason')}"))
        if c.get("rate") and c.get("single_thread_rate") and (c.get("threads") or 1) > 1:
            lines.append(f"  {'':22s} {c['single_thread_rate']:10.1f} {c['unit']:8s} the same on 1 thread")
        if c.get("fallback"):
            lines.append(f"  {'':22s} (fallback: {c['fallback']})")
    for note in env["settings"]:
        lines.append(f"note: {note}")
    lines.append("kernel = median time of the prepared kernel alone (data in place, output allocated); "
                 "call (pk.<op>, dispatch incl.) = the whole public call on the CPU: validation, dispatch, "
                 "output allocation and the kernel")
    lines.append("x base = baseline time / variant time (> 1: faster than the baseline); ! = a timing "
                 "not to trust (noisy, above the ceiling, or timed while the machine was busy), re-timed once")
    groups: dict = {}
    for r in doc["entries"]:
        groups.setdefault((r["op"], r["device"], r["case_id"], r["dtype"]), []).append(r)
    for (op, device, cid, dtype), rows in groups.items():
        unit = rows[0]["unit"]
        # The CPU's whole-call column: what pk.<op>(...) costs beside the kernel it runs.
        call = f"call (pk.{op}, dispatch incl.)" if device == "cpu" else ""
        lines.append(f"\n{op} {cid} {dtype} on the {device.upper()}")
        lines.append(f"  {'target':28s} {'kernel':>10s} {'IQR':>7s} {unit:>10s} {'%ceil':>6s} {'x base':>7s}"
                     + (f"  {call}" if call else "") + "  check")
        for r in rows:
            chk = r["check"]
            check = "-" if chk is None else ("ok" if chk["ok"] else "FAIL") + f" {chk['max_rel_err']:.1e}"
            if r["status"] in ("ok", "inexact"):
                mark = "!" if r.get("flags") else " "
                call_t = f"  {fmt_time(r.get('call_median_s')):>{len(call)}s}" if call else ""
                lines.append(f"{mark} {r['key']:28s} {fmt_time(r['median_s']):>10s} {100 * r['iqr_rel']:6.1f}% "
                             f"{r['rate']:10.1f} {_f(r['pct_of_ceiling'], '6.1f'):>6s} "
                             f"{_f(r['ratio_to_baseline'], '7.2f'):>7s}{call_t}  {check}")
                for flag in r.get("flags") or []:
                    lines.append(f"      ! {flag}" + (" (after re-timing)" if r.get("retimed") else ""))
            else:
                lines.append(f"  {r['key']:28s} {r['status'].upper():>10s}  {r['reason'] or ''}"
                             + (f"  [{check}]" if chk else ""))
                if r["status"] == "wrong":
                    lines.append("      " + chk["message"].replace("\n", "\n      "))
    if doc["skipped_targets"]:
        lines.append("\nnot run here:")
        by_reason: dict = {}
        for s in doc["skipped_targets"]:
            by_reason.setdefault(s["reason"], {}).setdefault(s["op"], []).append(s["key"])
        for reason, per_op in by_reason.items():
            lines.append(f"  {reason}:")
            for op, keys in per_op.items():
                lines.append(f"      {op}: {', '.join(keys)}")
    counts = {}
    for r in doc["entries"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    flagged = sum(1 for r in doc["entries"] if r.get("flags"))
    lines.append("\n" + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no entries")
                 + (f" ({flagged} flagged ! : do not trust their numbers)" if flagged else "")
                 + f" in {doc['elapsed_s']:.0f} s")
    if (doc.get("load") or {}).get("warning"):
        lines.append(doc["load"]["warning"])
    return "\n".join(lines)


def compare_table(doc: dict) -> str:
    lines = [f"CPU vs GPU ({doc['dtype']}): kernel = data already in place; call = prepare+run+finish, "
             "host<->device copies counted",
             "speedup = CPU time / GPU time (> 1: the GPU wins)"]
    reasons = {res["gpu_reason"] for res in doc["ops"] if not res["gpu"]}
    if len(reasons) == 1 and all(not res["gpu"] for res in doc["ops"]):
        lines.append(f"No GPU is available, so only the CPU columns are shown. Why (pykern.backends()): "
                     f"{reasons.pop()}")
    for res in doc["ops"]:
        lines.append(f"\n{res['op']}: CPU {res['cpu']}" + (f" vs GPU {res['gpu']}" if res["gpu"] else ""))
        hdr = f"  {'size':26s} {'CPU kernel':>11s} {'CPU call':>11s}"
        if res["gpu"]:
            hdr += f" {'GPU kernel':>11s} {'GPU call':>11s} {'speedup kernel':>15s} {'speedup call':>13s}"
        lines.append(hdr)
        for r in res["rows"]:
            row = f"  {r['case_id']:26s} {_ct(r, 'cpu_kernel'):>11s} {_ct(r, 'cpu_call'):>11s}"
            if res["gpu"]:
                sk = _ratio(r.get("cpu_kernel_s"), r.get("gpu_kernel_s"))
                sc = _ratio(r.get("cpu_call_s"), r.get("gpu_call_s"))
                row += (f" {_ct(r, 'gpu_kernel'):>11s} {_ct(r, 'gpu_call'):>11s}"
                        f" {_f(sk, '15.2f'):>15s} {_f(sc, '13.2f'):>13s}")
            for side in ("cpu", "gpu"):
                if r.get(f"{side}_reason"):
                    row += f"  [{side}: {r[f'{side}_reason']}]"
            lines.append(row)
        if res["gpu"]:
            lines.append("  GPU wins " + crossover_text(res["crossover_on_device"], res["rows"]) +
                         " with the data already on the device; " +
                         crossover_text(res["crossover_with_copies"], res["rows"]) + " with the copies counted.")
        elif not lines[2].startswith("No GPU"):
            lines.append(f"  no GPU column: {res['gpu_reason']}")
    if any(is_noisy(r, k) for res in doc["ops"] for r in res["rows"] for k in _COMPARE_TIMES):
        lines.append(f"\n! = noisy: IQR above {100 * NOISY_IQR_REL:.0f}% of the median; do not trust that time")
    if (doc.get("load") or {}).get("warning"):
        lines.append(doc["load"]["warning"])
    return "\n".join(lines)


_COMPARE_TIMES = ("cpu_kernel", "cpu_call", "gpu_kernel", "gpu_call")


def is_noisy(r: dict, k: str) -> bool:
    return noisy(r.get(f"{k}_iqr_rel")) is not None


def _ct(r: dict, k: str) -> str:
    """A compare time, with '!' when its spread is too wide to trust."""
    return fmt_time(r.get(f"{k}_s")) + ("!" if is_noisy(r, k) else "")


def _ratio(a, b):
    return None if a is None or b is None else a / b


def crossover_text(cid: Optional[str], rows: list) -> str:
    if cid is None:
        return "at no size tried"
    if rows and cid == rows[0]["case_id"]:
        return f"from the smallest size tried ({cid})"
    return f"from {cid}"


def best_per_op(doc: dict) -> list:
    """Per op: on the GPU if any GPU variant was timed (else the CPU), at the largest case timed,
    the variant with the highest rate, with its % of ceiling and ratio to the baseline."""
    out = []
    for op in dict.fromkeys(r["op"] for r in doc["entries"]):
        timed = [r for r in doc["entries"] if r["op"] == op and r["kind"] == "variant" and r["status"] == "ok"]
        if not timed:
            out.append({"op": op, "reason": "no variant timed"})
            continue
        device = "gpu" if any(r["device"] == "gpu" for r in timed) else "cpu"
        timed = [r for r in timed if r["device"] == device]
        biggest = max(work(op, r["case"], r["dtype"]) for r in timed)
        at = [r for r in timed if work(op, r["case"], r["dtype"]) == biggest]
        b = max(at, key=lambda r: r["rate"])
        out.append({"op": op, "device": device, "case_id": b["case_id"], "dtype": b["dtype"], "key": b["key"],
                    "rate": b["rate"], "unit": b["unit"], "pct_of_ceiling": b["pct_of_ceiling"],
                    "ratio_to_baseline": b["ratio_to_baseline"], "baseline": b["baseline"],
                    "flags": b.get("flags") or []})
    return out


def summary_lines(doc: dict) -> list:
    lines = []
    counts = {}
    for r in doc["entries"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines.append("bench entries: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"))
    if (doc.get("load") or {}).get("warning"):
        lines.append("  " + doc["load"]["warning"])
    wrong = [f"{r['op']} {r['key']} {r['case_id']}" for r in doc["entries"] if r["status"] in ("wrong", "error")]
    for w in wrong[:10]:
        lines.append(f"  wrong/error: {w}")
    lines.append("best variant per op (largest size timed):")
    for b in best_per_op(doc):
        if "reason" in b:
            lines.append(f"  {b['op']:7s} {b['reason']}")
            continue
        pct = "-" if b["pct_of_ceiling"] is None else f"{b['pct_of_ceiling']:.1f}% of ceiling"
        ratio = "no baseline" if b["ratio_to_baseline"] is None else f"{b['ratio_to_baseline']:.2f}x {b['baseline']}"
        lines.append(f"  {b['op']:7s} {b['device'].upper()} {b['case_id']} {b['dtype']}: {b['key']} "
                     f"{b['rate']:.1f} {b['unit']}, {pct}, {ratio}"
                     + "".join(f"; ! {flag}" for flag in b["flags"]))
    return lines


def write_json(doc: dict, path: str) -> None:
    tmp = path + ".tmp"  # the folder is never created: the CLI checks it exists before a sweep
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)
