"""The command line: `python -m pykern info [--json]` and `demo`."""
import json
import os
import subprocess
import sys
import tempfile

import pykern as pk


def run_cli(*args, timeout=300):
    env = dict(os.environ)
    # Not from the repository root: `python -m` puts the working directory first on sys.path,
    # and the source tree's pykern has no compiled extensions.
    return subprocess.run([sys.executable, "-m", "pykern", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tempfile.gettempdir())


def test_info_json_lists_every_variant_and_backend():
    proc = run_cli("info", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data["backends"]) == {"numpy", "numba", "cuda"}
    for b in data["backends"].values():
        assert isinstance(b["available"], bool) and b["reason"]
    listed = {(v["op"], v["backend"], v["name"]) for v in data["variants"]}
    assert listed == {(v.op, v.backend, v.name) for v in pk.variants()}
    for v in data["variants"]:
        assert {"op", "backend", "name", "technique", "dtypes"} <= set(v)


def test_info_text_names_unavailable_reasons():
    proc = run_cli("info")
    assert proc.returncode == 0, proc.stderr
    for name, a in pk.backends().items():
        assert name in proc.stdout
        if not a.available:
            assert "unavailable" in proc.stdout


def test_demo_relu_checks_every_available_variant():
    proc = run_cli("demo", "--op", "relu", "--reps", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for v in pk.variants("relu"):
        assert v.key in proc.stdout
    assert "FAIL" not in proc.stdout
    if not pk.backends()["cuda"].available:
        assert "not run here" in proc.stdout
    from pykern._backends import cuda_simulator_enabled
    if cuda_simulator_enabled():  # checked, not timed, and said so
        for v in pk.variants("relu", "cuda"):
            line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(v.key + " "))
            assert " ok " in line and " sim " in line, line
        assert "ran in pykern's CUDA C++ simulator" in proc.stdout
