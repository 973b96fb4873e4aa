"""bench/bench_torch_overhead.py runs: --help without torch, and a tiny run whose table and JSON
have every case and column. Its timings are not tested (a benchmark, not a timed test)."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "bench_torch_overhead.py")


def test_help_works_without_torch(tmp_path):
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['bench_torch_overhead.py'] + sys.argv[1:]; "
            f"runpy.run_path({SCRIPT!r}, run_name='__main__')")
    # From another folder: `python -c` in the checkout would import its source tree, never built.
    helped = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert helped.returncode == 0 and "usage:" in helped.stdout and "--json" in helped.stdout, helped.stderr
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert ran.returncode == 2 and "needs torch" in ran.stderr and "install" in ran.stderr


def test_a_tiny_run_prints_every_case_and_writes_only_when_asked(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch", reason="PyTorch not installed (pip install '.[torch]')")
    spec = importlib.util.spec_from_file_location("bench_torch_overhead", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    path = list(sys.path)  # without an installed pykern the script puts the checkout on sys.path
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = path
    monkeypatch.chdir(tmp_path)
    threads = mod.torch.get_num_threads()
    result = mod.main(["--samples", "2", "--calls", "1"])
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "overhead.json"
    mod.main(["--samples", "2", "--calls", "1", "--json", str(out)])
    assert mod.torch.get_num_threads() == threads  # put back: this process goes on
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert [r["case"] for r in saved["rows"]] == [r["case"] for r in result["rows"]]
    assert len(result["rows"]) == 4
    for row in result["rows"]:
        assert row["case"] in printed
        assert set(row["timings"]) == set(mod.COLUMNS)
        assert all(t["median_s"] > 0 and t["samples"] == 2 for t in row["timings"].values())
