"""The pytest-benchmark suite in bench/: selection applies to every file, and machine_info is
stable between runs on one machine (else --benchmark-compare always warns)."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each test runs the benchmark suite in a subprocess

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
TINY = ["--bench-backend", "numpy", "--bench-sizes", "2^10", "--bench-no-baselines", "--bench-quick", "-p",
        "no:cacheprovider"]


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


def test_bench_sizes_are_never_applied_to_an_op_they_were_not_meant_for():
    """--bench-op conv2d,relu --bench-sizes 2^16 read 2^16 as a conv2d image side too (the CLI's
    --sizes bug, in the pytest-benchmark suite): it is now the CLI's one reading, refused."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_kernels", os.path.join(BENCH, "bench_kernels.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Metafunc:
        fixturenames = ["op"]

        def __init__(self, options):
            self.config = type("Config", (), {"getoption": staticmethod(lambda name: options.get(name))})()

        def parametrize(self, names, params):
            self.params = params

    crossing = Metafunc({"--bench-op": "conv2d,relu", "--bench-sizes": "2^16", "--bench-dtype": "auto"})
    with pytest.raises(pytest.UsageError, match=r"--bench-sizes: sizes: '2\^16' would be read as a size of conv2d, relu"):
        mod.pytest_generate_tests(crossing)
    named = Metafunc({"--bench-op": "conv2d,relu", "--bench-sizes": "conv2d=8;relu=2^10", "--bench-backend": "numpy",
                      "--bench-dtype": "auto", "--bench-no-baselines": True})
    mod.pytest_generate_tests(named)
    ids = [p.id for p in named.params]
    assert any(i.startswith("conv2d-numpy-") and "H8W8" in i for i in ids)
    assert any(i.startswith("relu-numpy-") and i.endswith("-1024-float32") for i in ids)
