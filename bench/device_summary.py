"""The closing summary of bench/device_run.sh, read back from the files the run wrote:

    python bench/device_summary.py RESULTS_DIR

steps.tsv (name, status, seconds, exit code, note), the step logs (pytest's closing counts, the
sanitizers' error summaries), bench.json and compare.json (through pykern.benchmark's summary).
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Optional

from pykern.benchmark import crossover_text, summary_lines


def _tail_counts(text: str) -> Optional[dict]:
    """pytest's closing counts ({"passed": 812, "failed": 3, ...}), or None if it never closed."""
    for line in reversed(text.splitlines()):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)", line)
        if found and re.search(r" in [\d.]+s", line):
            return {k.rstrip("s") if k.startswith("error") else k: int(n) for n, k in found}
    return None


def device_summary(results_dir: str) -> str:
    """The closing table of bench/device_run.sh, from the files it wrote to ``results_dir``:
    steps.tsv (name, status, seconds, exit code), the step logs, bench.json, bench-half.json and
    compare.json."""
    def read(name):
        try:
            with open(os.path.join(results_dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def load(name):
        text = read(name)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    bdoc, cdoc = load("bench.json"), load("compare.json")
    env = (bdoc or cdoc or {}).get("env") or {}
    gpu = (env.get("gpu") or {}).get("name") or "no GPU"
    commit = env.get("git_commit") or "unknown"
    lines = [f"pykern device run summary: {gpu}; {env.get('date', '?')}; commit "
             f"{commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}; results in {results_dir}",
             f"{'step':18s} {'status':14s} {'seconds':>7s}  notes"]
    for row in (read("steps.tsv") or "").splitlines():
        name, status, secs, *rest = row.split("\t") + ["", "", ""]
        note = rest[1] if len(rest) > 1 else ""
        log = read(f"{name}.log") or ""
        if name == "tests":
            counts = _tail_counts(log)
            note = (", ".join(f"{v} {k}" for k, v in counts.items()) if counts
                    else "no pytest summary line (crashed or timed out)") + (f"; {note}" if note else "")
        elif name.startswith("sanitize-") and status != "skipped":
            errs = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) error", log)]
            run = re.findall(r"sanitize: \d+ ok, \d+ failed, \d+ skipped", log)
            note = (f"{sum(errs)} sanitizer errors" if errs else "no sanitizer summary line") + \
                   (f"; {run[-1][len('sanitize: '):]}" if run else "") + (f"; {note}" if note else "")
        lines.append(f"{name:18s} {status:14s} {secs:>7s}  {note}")
    if bdoc:
        lines += summary_lines(bdoc)
    else:
        lines.append("bench: no bench.json (see bench.log)")
    hdoc = load("bench-half.json")
    if hdoc:
        lines.append("float16, the tensor-core rungs beside the libraries' half-precision matmul and conv2d:")
        lines += summary_lines(hdoc)
    elif read("bench-half.log") is not None:
        lines.append("bench-half: no bench-half.json (see bench-half.log)")
    if cdoc:
        lines.append("CPU vs GPU, where the GPU starts to win (data on device / copies counted):")
        for res in cdoc["ops"]:
            if res["gpu"]:
                lines.append(f"  {res['op']:7s} {res['cpu']} vs {res['gpu']}: "
                             f"{crossover_text(res.get('crossover_on_device'), res['rows'])} / "
                             f"{crossover_text(res.get('crossover_with_copies'), res['rows'])}")
        no_gpu = {res["gpu_reason"] for res in cdoc["ops"] if not res["gpu"]}
        for why in no_gpu:
            ops = ", ".join(r["op"] for r in cdoc["ops"] if r["gpu_reason"] == why)
            lines.append(f"  no GPU column for {ops}: {why}")
    else:
        lines.append("compare: no compare.json (see compare.log)")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python bench/device_summary.py RESULTS_DIR", file=sys.stderr)
        return 2
    print(device_summary(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
