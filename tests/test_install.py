"""A source tree that hides an installed copy of pykern is named as such, at import and in the
cuda backend's reason, instead of "pykern._cuda was not built"."""
import os
import shutil
import subprocess
import sys

import pytest

import pykern as pk

PKG = os.path.dirname(os.path.abspath(pk.__file__))
CODE = "import pykern; print(pykern.__file__); print(pykern.backends()['cuda'].reason)"


def _copy(dest, with_extension: bool):
    shutil.copytree(PKG, dest, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    if with_extension:  # found by name only: never imported in this test
        (dest / "_cuda.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")


def _run(cwd, pythonpath):
    env = dict(os.environ, PYTHONPATH=str(pythonpath), NUMBA_ENABLE_CUDASIM="1")
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_a_source_tree_hiding_an_installed_copy_is_named(tmp_path):
    src, site = tmp_path / "checkout", tmp_path / "site"
    _copy(src / "pykern", with_extension=False)
    (src / "pyproject.toml").write_text("[project]\nname = 'pykern'\n")
    _copy(site / "pykern", with_extension=True)
    proc = _run(src, site)  # python -c from the checkout: the working directory comes first
    assert proc.returncode == 0, proc.stderr
    where, reason = proc.stdout.strip().splitlines()[-2:]
    assert where.startswith(str(src / "pykern"))
    for text in (reason, proc.stderr):
        assert f"source tree {src / 'pykern'}" in text
        assert f"hides the installed copy {site / 'pykern'}" in text
        assert "'pykern' command" in text
    assert "was not built" not in reason


def test_no_note_when_nothing_is_hidden(tmp_path, monkeypatch):
    from pykern import _install
    src, site, built = tmp_path / "checkout", tmp_path / "site", tmp_path / "built"
    _copy(src / "pykern", with_extension=False)
    _copy(site / "pykern", with_extension=False)
    _copy(built / "pykern", with_extension=True)
    monkeypatch.setattr(_install, "HERE", str(src / "pykern"))
    monkeypatch.setattr(sys, "path", [str(src), str(site)])
    assert _install.other_copies() == [str(site / "pykern")]
    assert _install.shadow_note() is None  # the hidden copy has no extension either: nothing lost
    assert _install.explain_missing_extension("not built") == "not built"
    monkeypatch.setattr(sys, "path", [str(src), str(site), str(built)])
    assert "hides the installed copy " + str(built / "pykern") in _install.shadow_note()
    monkeypatch.setattr(_install, "HERE", str(built / "pykern"))  # the copy with the extension itself
    assert _install.shadow_note() is None


def test_the_suite_stops_for_a_source_tree_or_an_extension_that_does_not_import(monkeypatch):
    """tests/conftest.py stops the session (never skips 800 CUDA tests) when pykern came from a
    never-built source tree, naming the installed copy it hides, or when an extension the build
    made cannot be imported."""
    import types

    from conftest import _build_problem

    from pykern import _install
    assert _build_problem() is None  # the copy under test: built, and its extensions import
    monkeypatch.setitem(sys.modules, "pykern._build", None)  # as in a source tree: no _build.py
    monkeypatch.delattr(pk, "_build", raising=False)
    monkeypatch.setattr(_install, "other_copies", lambda: ["/site/pykern"])
    problem = _build_problem()
    assert "a source tree that was never built, and it hides the installed copy /site/pykern" in problem
    monkeypatch.setattr(_install, "other_copies", lambda: [])
    assert "install it first" in _build_problem()
    fake = types.ModuleType("pykern._build")
    fake.EXTENSIONS = {"_cuda": "no CUDA compiler (nvcc) was found at build time", "_no_such_extension": "built"}
    monkeypatch.setitem(sys.modules, "pykern._build", fake)
    monkeypatch.setattr(pk, "_build", fake, raising=False)
    assert _build_problem().startswith("pykern._no_such_extension was built (pykern/_build.py says so) but "
                                       "cannot be imported")


def test_the_build_records_its_extensions():
    """pykern/_build.py is written by CMakeLists.txt; every extension is 'built' or says why not."""
    from pykern import _build
    assert set(_build.EXTENSIONS) == {"_cuda", "_cuda_sim", "_cpu"}
    assert all(status for status in _build.EXTENSIONS.values())
    assert "not configured" not in _build.EXTENSIONS.values()


def test_a_bench_script_refuses_a_source_tree_that_was_never_built(monkeypatch):
    """bench/ scripts time the installed copy: from a never-built source tree every figure would
    time the NumPy fallback, so they stop with the reason (and name a missing extension)."""
    import importlib.util
    from pykern import _install
    bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
    spec = importlib.util.spec_from_file_location("bench_overhead_refusal", os.path.join(bench, "bench_overhead.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(_install, "built_extensions", lambda: None)
    with pytest.raises(SystemExit, match=r"bench_overhead.py: .* a source tree that was never built"):
        script.main(["--calls", "1", "--repeats", "1"])
    monkeypatch.setattr(_install, "built_extensions", lambda: {"_cpu": "PYKERN_NO_CPU_EXT was set"})
    with pytest.raises(SystemExit, match=r"built without pykern._cpu: PYKERN_NO_CPU_EXT was set"):
        _install.require_built("bench_cpu_ladder.py", ("_cpu",))
