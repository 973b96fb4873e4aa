"""Test setup. Without a CUDA driver, the Numba kernels run in Numba's CUDA simulator and the
CUDA C++ kernels in pykern's (pykern._cuda_sim, csrc/sim/). Both variables must be set before
numba.cuda or pykern is first imported, so they are set here; set either yourself (to 0 or 1)
to choose."""
import ctypes.util
import os
import zlib

import pytest

if ctypes.util.find_library("cuda") is None:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    os.environ.setdefault("PYKERN_CUDA_SIM", "1")
# torch.profiler's tracer (kineto) reads its log level when a process first profiles: without this,
# a test that profiles first (tests/test_torch_adapter.py) made every later profile in that
# worker print 'profiler_start' lines, which bench/train_cnn.py's own test rejects as noise.
os.environ.setdefault("KINETO_LOG_LEVEL", "99")

import pykern as pk  # noqa: E402
from pykern._backends import on_simulator as _on_simulator  # noqa: E402


def _build_problem():
    """Why this suite cannot test the pykern it imported, or None. Never a reason to skip: a
    source tree (which has no extensions) hiding the installed copy, or an extension the build
    made that does not import, would turn hundreds of CUDA tests into skips that look like a pass."""
    import importlib

    from pykern import _install
    built = _install.built_extensions()
    if built is None:
        hidden = _install.other_copies()
        where = f"pykern was imported from {_install.HERE}, a source tree that was never built"
        if hidden:
            return (f"{where}, and it hides the installed copy {hidden[0]}: Python puts the working directory "
                    "first on sys.path under 'python -m pytest'. Run 'pytest' (the command) instead, or run "
                    "from another folder.")
        return f"{where}: install it first, with the README's command: pip install \".[test,bench,torch]\""
    for name, status in built.items():
        if status == "built":
            try:
                importlib.import_module(f"pykern.{name}")
            except ImportError as e:
                return (f"pykern.{name} was built (pykern/_build.py says so) but cannot be imported: {e}. "
                        "Reinstall pykern; its tests would otherwise all be skipped.")
    return None


def pytest_sessionstart(session):
    problem = _build_problem()
    if problem:
        pytest.exit(f"pykern's tests cannot run: {problem}", returncode=pytest.ExitCode.USAGE_ERROR)


def seed_for(*parts) -> int:
    """A stable seed per test case, so every case gets its own fresh random inputs."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def require_backend(name: str) -> None:
    """Skip, with the reason, a test whose backend this machine cannot offer: no GPU and no
    simulator asked for, numba missing, or an extension the build skipped on purpose (the
    session start has already stopped the suite for one that was built and cannot be imported)."""
    a = pk.backends()[name]
    if not a.available:
        pytest.skip(f"backend {name!r} unavailable: {a.reason}")


def on_simulator(backend: str) -> bool:
    return _on_simulator(backend)


@pytest.hookimpl(optionalhook=True)  # xdist's hook: without xdist installed, pytest must not reject it
def pytest_xdist_auto_num_workers(config):
    """`pytest -n auto`: one worker more than the cores this process may use. Numba's simulator
    (a third of the suite's time) runs a Python thread per CUDA thread and spends much of its
    time handing the GIL between them at each barrier, idling its core; a third worker on the
    2-core CI machine fills those gaps (the suite: 184 -> 168 s there)."""
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1


def pytest_report_header(config):
    return ["pykern backends: " + "; ".join(
        f"{n}={'yes' if a.available else 'no'} ({a.reason})" for n, a in pk.backends().items())]


@pytest.fixture(scope="module")
def ext():
    """The CUDA C++ extension in use (pykern._cuda, or the simulator pykern._cuda_sim), or a skip
    with the reason there is none."""
    from pykern._device import ext
    try:
        return ext()
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.fixture()
def sim():
    """pykern._cuda_sim (the CUDA C++ simulator module), its settings (thread order, seed, compute
    capability, SM count) restored after the test."""
    from pykern._device import ext
    try:
        mod = ext()
    except RuntimeError as e:
        pytest.skip(str(e))
    saved = mod.sim_config()
    yield mod
    mod.sim_configure(order=saved["order"], seed=saved["seed"], compute_capability=saved["compute_capability"],
                      sm_count=saved["sm_count"])
