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

import pykern as pk  # noqa: E402
from pykern._backends import on_simulator as _on_simulator  # noqa: E402


def seed_for(*parts) -> int:
    """A stable seed per test case, so every case gets its own fresh random inputs."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def require_backend(name: str) -> None:
    a = pk.backends()[name]
    if not a.available:
        pytest.skip(f"backend {name!r} unavailable: {a.reason}")


def on_simulator(backend: str) -> bool:
    return _on_simulator(backend)


def pytest_report_header(config):
    return ["pykern backends: " + "; ".join(
        f"{n}={'yes' if a.available else 'no'} ({a.reason})" for n, a in pk.backends().items())]


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
