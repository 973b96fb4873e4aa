"""The pytest-benchmark suite in bench/: selection applies to every file, and machine_info is
stable between runs on one machine (else --benchmark-compare always warns)."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each test runs the benchmark suite in a subprocess

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
TINY = ["--bench-backend", "numpy", "--bench-sizes", "2^10", "--bench-no-baselines", "-p", "no:cacheprovider"]


def run_pytest(args, cwd):
    # From a folder with no source tree, so the bench suite imports the same pykern as this session.
    # Without this session's pytest-xdist worker variables and plugin: pytest-benchmark disables
    # itself in what it takes for a parallel run.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    return subprocess.run([sys.executable, "-m", "pytest", BENCH, "-p", "no:xdist", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.parametrize("op,other_file_runs", [("relu", False), ("conv2d", True)])
def test_bench_op_selects_in_every_file(tmp_path, op, other_file_runs):
    proc = run_pytest(["--collect-only", "-q", "--bench-op", op, *TINY], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("bench_conv2d_cpu.py" in proc.stdout) == other_file_runs, proc.stdout
    assert f"-{op}-" in proc.stdout or f"{op}-numpy" in proc.stdout  # bench_kernels.py still lists the op


def test_machine_info_is_the_same_in_two_runs(tmp_path):
    storage = f"file://{tmp_path / 'store'}"
    args = ["--bench-op", "relu", *TINY, f"--benchmark-storage={storage}", "-q"]
    first = run_pytest(args + ["--benchmark-autosave"], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_pytest(args + ["--benchmark-compare"], tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    out = second.stdout + second.stderr
    assert "Comparing against benchmarks from" in out  # it did compare
    assert "machine_info is different" not in out, out
