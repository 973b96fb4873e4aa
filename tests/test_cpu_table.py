"""bench/cpu_table.py reads what bench/bench_cpu_ladder.py writes: the ladder script run at a tiny
size (quick ceilings) into a temporary folder, the README table made from that record, and
--write / --check on a README. (The committed README against the committed records:
tests/test_docs.py.)"""
import importlib.util
import json
import os

import pytest

from pykern import _build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILT = _build.EXTENSIONS.get("_cpu") == "built"
pytestmark = pytest.mark.skipif(not BUILT, reason=f"pykern._cpu not built: {_build.EXTENSIONS.get('_cpu')}")


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "bench", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_table_shows_a_fresh_ladder_record(tmp_path, monkeypatch):
    pytest.importorskip("threadpoolctl")
    from pykern.benchmark import ceilings
    ladder = _script("bench_cpu_ladder")
    monkeypatch.setattr(ladder, "measure_ceilings", lambda keys: ceilings.measure_ceilings(keys, quick=True))
    out = tmp_path / "cpu_ladder.json"
    assert ladder.main(["--sizes", "48", "--threads", "1,2", "--runs", "2", "--reps", "1", "--relu-mib", "1",
                        "--pause", "0", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert set(rec["ceilings"]) == {"1", "2"}
    ct = _script("cpu_table")
    table = ct.markdown(str(tmp_path))
    for block in rec["matmul"]:
        top = block["entries"]["threaded"]
        assert f"| {block['n']}³ | {block['threads']} |" in table
        assert f"{top['gflops']['median']:.1f}" in table and f"{top['pct_of_peak']['median']:.0f}%" in table
    relu = rec["relu"][-1]["entries"]["relu/simd"]
    assert (f"{relu['gbps']['median']:.1f} ({relu['vs_copy']['median']:.2f}), "
            f"{relu['pct_of_bandwidth']['median']:.0f}%") in table
    peak = rec["ceilings"]["2"]["cpu:compute:float32"]
    assert all(f"{r['rate']:,.1f} GFLOP/s" in table for r in peak["runs"])
    assert "no record: `python bench/train_cnn.py --model seed" in table  # none in this folder
    # --write fills a README's block; --check then passes, and fails once a number is edited
    readme = tmp_path / "README.md"
    readme.write_text(f"# pykern\n\n{ct.BEGIN}\nstale\n{ct.END}\n")
    assert ct.main(["--results", str(tmp_path), "--write", str(readme)]) == 0
    assert ct.main(["--results", str(tmp_path), "--check", str(readme)]) == 0
    readme.write_text(readme.read_text().replace(f"{top['gflops']['median']:.1f}", "999.9", 1))
    assert ct.main(["--results", str(tmp_path), "--check", str(readme)]) == 1


def _train_record(path, date, ratio, commit, dirty=False, command="python bench/train_cnn.py --no-progress"):
    epochs = [{"test_accuracy": 90.0}, {"test_accuracy": 95.0}]
    doc = {"date": date, "command": command, "config": {"model": "small", "threads": 0},
           "environment": {"checkout": {"commit": commit, "dirty": dirty} if commit else None},
           "comparison": {"numpy": {"time_ratio": ratio}},
           "runs": {"numpy": {"epochs": epochs}, "torch": {"epochs": epochs[:1] + [{"test_accuracy": 95.5}]}}}
    path.write_text(json.dumps(doc))


def test_the_training_row_spreads_the_runs_of_the_newest_records_commit(tmp_path):
    """The newest record and the others of its clean commit and command make one row's min,
    median and max; a run of another commit, of another command or from a dirty checkout does not
    count, and a newest record from a dirty checkout stands alone."""
    ct = _script("cpu_table")
    _train_record(tmp_path / "train_cnn-1.json", "2026-01-01T00:00:03", 1.20, "abc")
    _train_record(tmp_path / "train_cnn-2.json", "2026-01-01T00:00:02", 1.30, "abc")
    _train_record(tmp_path / "train_cnn-3.json", "2026-01-01T00:00:01", 1.10, "abc")
    _train_record(tmp_path / "train_cnn-4.json", "2026-01-01T00:00:00", 9.00, "old")
    _train_record(tmp_path / "train_cnn-5.json", "2026-01-01T00:00:00", 8.00, "abc", command="other")
    _train_record(tmp_path / "train_cnn-6.json", "2026-01-01T00:00:00", 7.00, "abc", dirty=True)
    row = next(line for line in ct.goals_table(str(tmp_path), None) if "small model, default threads" in line)
    assert "1.20 (1.10–1.30)× over 3 runs of one commit" in row and "0.50 points apart" in row
    _train_record(tmp_path / "train_cnn-0.json", "2026-01-01T00:00:04", 1.25, "abc", dirty=True)
    row = next(line for line in ct.goals_table(str(tmp_path), None) if "small model, default threads" in line)
    assert "1.25× (median epoch)" in row and "over 3 runs" not in row


def _conv_record(path, runs):
    """A conv2d_cpu.json: runs of {layer: (default ratio, threaded ratio, routed variant or None)}."""
    out = []
    for run in runs:
        layers = {name: {"pykern:threaded": {"ratio_to_torch": thr}, "torch": {"ratio_to_torch": 1.0}}
                  for name, (_, thr, _) in run.items()}
        doc_run = {"layers": layers}
        if any(routed for _, _, routed in run.values()):
            for name, (default, _, _) in run.items():
                layers[name]["pykern:default"] = {"ratio_to_torch": default}
            doc_run["routed"] = {name: routed for name, (_, _, routed) in run.items()}
        out.append(doc_run)
    path.write_text(json.dumps({"default_variant": "threaded", "command": "bench", "runs": out}))


def test_the_conv2d_row_reads_the_routed_default_where_the_record_has_it(tmp_path):
    """Goal 1's row is the geo-mean of what a call without variant= runs: the routed default
    ("pykern:default", layer by layer) where the record holds it, named with its variants; an
    older record without it reads the default variant's column."""
    ct = _script("cpu_table")
    run = {"resnet_56x56_c64": (1.0, 1.0, "threaded"), "resnet_7x7_c512": (0.25, 4.0, "tap_gemm")}
    _conv_record(tmp_path / "conv2d_cpu.json", [run, run, run])
    row = next(line for line in ct.goals_table(str(tmp_path), None) if line.startswith("| 1. conv2d"))
    assert "(`threaded`; `tap_gemm`: 7x7)" in row and "0.50 (0.50–0.50)× over 3 runs" in row
    _conv_record(tmp_path / "conv2d_cpu.json", [{name: (d, t, None) for name, (d, t, _) in run.items()}])
    row = next(line for line in ct.goals_table(str(tmp_path), None) if line.startswith("| 1. conv2d"))
    assert "(`threaded`)" in row and "2.00 (2.00–2.00)× over 1 runs" in row
