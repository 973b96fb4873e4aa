"""The command line: `python -m pykern info [--json]` and `demo`."""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

import pykern as pk


def run_cli(*args, timeout=300, env=None):
    # From a folder with no source tree: run from the repository root, `python -m pykern` would
    # import the source folder instead of the pykern this session tests.
    env = {**os.environ, **(env or {})}
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
    # what the build made, as it recorded it: an editable install's extensions live outside the
    # source folder, where looking for the file said "not built"
    from pykern._install import built_extensions
    assert data["extensions"] == built_extensions() and data["extensions"] is not None
    assert data["extension_built"] == (data["extensions"]["_cuda"] == "built")


def test_info_text_gives_each_backends_status_and_reason():
    # PYKERN_CUDA_SIM=0: with no driver (as in CI) the cuda backend is unavailable, so a reason
    # for unavailability is shown; on a GPU machine every row is still checked.
    env = {"PYKERN_CUDA_SIM": "0"}
    proc = run_cli("info", env=env)
    as_json = run_cli("info", "--json", env=env)
    assert proc.returncode == 0 and as_json.returncode == 0, proc.stderr + as_json.stderr
    backends = json.loads(as_json.stdout)["backends"]
    rows = {ln.split()[0]: ln for ln in proc.stdout.splitlines() if ln.startswith("  ") and ln.split()[0] in backends}
    for name, b in backends.items():
        status = "available" if b["available"] else "unavailable"
        assert rows[name].split()[1] == status, rows[name]
        assert rows[name].rstrip().endswith(b["reason"]), (rows[name], b["reason"])


def test_demo_relu_checks_every_available_variant():
    proc = run_cli("demo", "--op", "relu", "--reps", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for v in pk.variants("relu"):
        assert v.key in proc.stdout
    assert "FAIL" not in proc.stdout
    header = next(ln for ln in proc.stdout.splitlines() if ln.startswith("variant "))
    assert header.split()[-3:] == ["median", "IQR", "rate"]  # the spread, as in `pykern bench`
    for v in pk.variants("relu", "numpy"):  # timed on the host: median, then the IQR in % of it
        cells = next(ln for ln in proc.stdout.splitlines() if ln.startswith(v.key + " ")).split()
        assert cells[-4].endswith("ms") and cells[-3].endswith("%"), cells
        assert 0.0 <= float(cells[-3].rstrip("%")) < 1e4
    if not pk.backends()["cuda"].available:
        assert "not run here" in proc.stdout
    from pykern._backends import cuda_simulator_enabled
    if cuda_simulator_enabled():  # checked, not timed, and said so
        for v in pk.variants("relu", "cuda"):
            line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(v.key + " "))
            assert " ok " in line and " sim " in line and line.split()[-3:-1] == ["sim", "-"], line
        assert "ran in pykern's CUDA C++ simulator" in proc.stdout


def demo_here(monkeypatch, capsys, timing=None):
    """`pykern demo --op relu` in this process, on the CPU only and on 1000 elements (fast);
    ``timing``: what every timed variant reports instead of its own runs."""
    from pykern import _backends, cli
    from pykern.ops import SPECS
    real = pk.backends()
    monkeypatch.setattr(cli, "backends", lambda: {n: a if n == "numpy" else _backends.Availability(False, "off here")
                                                  for n, a in real.items()})
    monkeypatch.setattr(SPECS["relu"], "demo_case", lambda simulator=False: {"shape": (1000,)})
    if timing is not None:
        monkeypatch.setattr(cli, "_time_demo", lambda prepared, backend, reps, slow=False: timing)
    code = cli.main(["demo", "--op", "relu", "--reps", "3"])
    return code, capsys.readouterr().out


def test_demo_flags_a_noisy_time_as_bench_does(monkeypatch, capsys):
    from pykern._timing import Timing
    code, out = demo_here(monkeypatch, capsys, Timing(median=1e-3, q25=0.6e-3, q75=1.97e-3, runs=3))
    assert code == 0, out
    for v in pk.variants("relu", "numpy"):
        lines = out.splitlines()
        row = next(i for i, ln in enumerate(lines) if ln.startswith(v.key + " "))
        assert "137.0%" in lines[row]
        assert lines[row + 1] == "    ! noisy: IQR is 137% of the median (limit 10%): do not trust this time"
    code, out = demo_here(monkeypatch, capsys, Timing(median=1e-3, q25=0.99e-3, q75=1.01e-3, runs=3))
    assert code == 0 and "noisy" not in out


def test_demo_and_info_columns_fit_long_names(monkeypatch, capsys):
    from pykern import cli
    from pykern._registry import register, unregister
    name = "maximum_under_a_name_longer_than_any_column"

    @register("relu", "numpy", dtypes=("float32",), name=name)
    def long_named(x, y):
        """np.maximum, registered under a long name for this test."""
        np.maximum(x, 0, out=y)

    try:
        code, out = demo_here(monkeypatch, capsys)
        assert code == 0, out
        lines = out.splitlines()
        header = next(ln for ln in lines if ln.startswith("variant "))
        rows = [ln for ln in lines if ln.startswith("relu/numpy/")]
        assert len(rows) == len(pk.variants("relu", "numpy"))
        for col in ("dtype", "case", "check"):  # every cell starts under its heading
            assert {ln[header.index(col) - 1:header.index(col) + 1] for ln in rows} <= {" f", " 1", " o"}, (col, out)
        assert cli.main(["info"]) == 0
        listed = [ln for ln in capsys.readouterr().out.splitlines() if ln.split()[:1] and ln.split()[0] in pk.ops.SPECS]
        assert any(name in ln for ln in listed)
        starts = {re.search(r" (b?float\d+)", ln).start(1) for ln in listed}
        assert len(starts) == 1, starts  # the dtypes column starts at one place
    finally:
        unregister("relu", "numpy", name)


def test_the_cuda_reason_says_how_to_run_the_simulator(monkeypatch):
    """As the numba backend's reason names NUMBA_ENABLE_CUDASIM=1, the cuda backend's names
    PYKERN_CUDA_SIM=1, with no GPU and with no pykern._cuda alike."""
    from pykern import _backends, _device, _install

    class NoGpu:
        SIMULATOR = False

        @staticmethod
        def device_count():
            return 0, "cudaErrorNoDevice: no CUDA-capable device is detected"

    def not_built():
        raise RuntimeError("pykern._cuda was not built (no CUDA compiler at install time)")

    monkeypatch.setattr(_backends, "cuda_simulator_enabled", lambda: False)
    monkeypatch.setattr(_install, "shadow_note", lambda: None)
    monkeypatch.setattr(_device, "ext", lambda: NoGpu)
    reason = _backends._cuda_availability().reason
    assert reason.startswith("no CUDA GPU usable: cudaErrorNoDevice") and "set PYKERN_CUDA_SIM=1 before" in reason
    monkeypatch.setattr(_device, "ext", not_built)
    reason = _backends._cuda_availability().reason
    assert reason.startswith("pykern._cuda was not built") and "set PYKERN_CUDA_SIM=1 before" in reason
    monkeypatch.setattr(_backends, "cuda_simulator_enabled", lambda: True)  # the simulator's own error
    assert "set PYKERN_CUDA_SIM=1" not in _backends._cuda_availability().reason


# --- the newcomer's path: which copy runs, --help, pipes, exit codes, output paths -----------

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def console_script():
    """The `pykern` command installed next to this Python (pip install puts it there)."""
    path = os.path.join(os.path.dirname(sys.executable), "pykern")
    if not os.path.exists(path):
        import pytest
        pytest.skip(f"no `pykern` console script next to {sys.executable}: pykern is not pip-installed")
    return path


def test_console_script_from_the_repo_root_runs_the_installed_copy():
    """The README's main command, run where a newcomer runs it: the source folder pykern/ in
    the working directory must not hide the installed package (and its pykern._cuda)."""
    proc = subprocess.run([console_script(), "info", "--json"], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    installed = os.path.dirname(os.path.abspath(pk.__file__))
    assert os.path.realpath(info["location"]) == os.path.realpath(installed)
    if info["extension_built"]:  # then the reason is the machine's, never "was not built"
        assert "was not built" not in info["backends"]["cuda"]["reason"]
        assert "hides the installed copy" not in info["backends"]["cuda"]["reason"]
    assert "RuntimeWarning" not in proc.stderr


def test_help_names_the_command_the_user_typed():
    proc = subprocess.run([console_script(), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: pykern ")
    proc = run_cli("--help")
    assert proc.stdout.startswith("usage: python -m pykern ")


def test_a_closed_pipe_is_not_a_traceback():
    """`pykern info | head`: the reader leaves early; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "pykern", "info"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tempfile.gettempdir())
    proc.stdout.close()  # nobody reads: every write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_bench_exits_non_zero_when_nothing_ran():
    for args in (["--op", "relu", "--dtype", "bfloat16", "--backend", "numpy"],  # no CPU variant takes it
                 ["--op", "relu", "--variant", "reference", "--backend", "numpy", "--dtype", "bfloat16"]):
        proc = run_cli("bench", *args, "--sizes", "2^10", "--quick", "--no-progress")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "nothing ran" in proc.stderr
    if not pk.backends()["cuda"].available:
        proc = run_cli("bench", "--backend", "cuda", "--op", "relu", "--sizes", "2^10", "--quick", "--no-progress")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert pk.backends()["cuda"].reason.split(":")[0] in proc.stdout


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_bench_refuses_output_paths_before_running(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [("--json", str(tmp_path / "missing" / "out.json"), "does not exist"),
             ("--json", str(a_file / "out.json"), "is not a directory"),
             ("--json", str(tmp_path), "is a directory"),
             ("--plot", str(tmp_path / "missing" / "p.png"), "does not exist"),
             # without matplotlib (an optional extra) any plot is refused, for that reason
             ("--plot", str(tmp_path / "p.notaformat"),
              "matplotlib cannot write" if _has_matplotlib() else "--plot needs matplotlib")]
    for opt, path, why in cases:
        for cmd in ("bench", "compare"):
            proc = run_cli(cmd, "--op", "relu", "--sizes", "2^10", "--quick", "--no-progress", opt, path)
            assert proc.returncode == 2, (cmd, opt, path, proc.stdout, proc.stderr)
            assert why in proc.stderr
            assert proc.stdout == ""  # refused before the sweep, which prints its table
    assert not (tmp_path / "missing").exists()  # never created silently


def test_float16_on_the_cpu_suggests_float32_or_a_gpu_backend():
    import numpy as np
    import pytest
    a = np.ones((4, 4), np.float16)
    with pytest.raises(TypeError) as e:
        pk.matmul(a, a)
    msg = str(e.value)
    assert "a.astype(np.float32)" in msg
    assert "backend='cuda', variant='wmma_fp16'" in msg
    with pytest.raises(TypeError, match=r"x.astype\(np.float32\)"):
        pk.conv2d(np.ones((1, 1, 4, 4), np.float16), np.ones((1, 1, 3, 3), np.float16))
    with pytest.raises(TypeError) as e:
        pk.matmul(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32).astype(np.int32))
    assert "astype" not in str(e.value)  # the hint is for 16-bit floats only
    assert pk.relu(np.full(3, -1, np.float16)).dtype == np.float16  # relu takes float16 on the CPU


class FakeCpuTensor:
    """Looks like a torch CPU tensor to pykern's array boundary, without torch installed."""

    is_cuda = False


FakeCpuTensor.__module__ = "torch"


def test_torch_cpu_tensors_are_refused_naming_numpy():
    import pytest
    with pytest.raises(TypeError, match=r"x: a PyTorch CPU tensor is not accepted by pk.<op>; "
                                            r"use pykern.torch .* x.detach\(\).numpy\(\)"):
        pk.relu(FakeCpuTensor())
    try:
        import torch
    except ImportError:
        return  # the boundary's check above is the whole behaviour; torch itself is optional
    with pytest.raises(TypeError, match=r"a.detach\(\).numpy\(\)"):
        pk.matmul(torch.ones(2, 2), torch.ones(2, 2))


# --- the version -----------------------------------------------------------------------------

def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version
    assert pk.__version__ == version("pykern")
    proc = run_cli("info", "--json")
    assert json.loads(proc.stdout)["version"] == pk.__version__


def test_version_of_a_source_tree_that_was_never_installed(tmp_path, monkeypatch):
    """No metadata (a checkout on PYTHONPATH): the checkout's pyproject.toml, else 0+unknown."""
    import importlib.metadata
    from pykern import _version

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["x"]\nversion = "9"\n\n'
                                             '[project]\nname = "pykern"\nversion = "7.8.9"\n\n'
                                             '[tool.other]\nversion = "1"\n')
    assert _version.source_tree_version(str(tmp_path)) == "7.8.9"
    assert _version.source_tree_version(str(tmp_path / "missing")) == _version.UNKNOWN
    assert _version.package_version() == _version.source_tree_version()  # this checkout, or unknown
    if os.path.exists(os.path.join(REPO_ROOT, "pyproject.toml")):
        assert _version.source_tree_version(REPO_ROOT) == importlib.metadata.distribution("pykern").version


def test_reps_below_one_is_a_usage_error():
    from pykern.cli import build_parser
    for cmd in ("demo", "bench"):
        for bad in ("0", "-3", "two"):
            try:
                build_parser().parse_args([cmd, "--reps", bad])
            except SystemExit as e:
                assert e.code == 2, (cmd, bad)
            else:
                raise AssertionError(f"{cmd} --reps {bad} was accepted")
        assert build_parser().parse_args([cmd, "--reps", "1"]).reps == 1
