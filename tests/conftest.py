"""Test setup. Without a CUDA driver, the Numba kernels run in the CUDA simulator: the
variable must be set before numba.cuda is first imported, so it is set here, before pykern."""
import ctypes.util
import os
import zlib

import pytest

if "NUMBA_ENABLE_CUDASIM" not in os.environ and ctypes.util.find_library("cuda") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pykern as pk  # noqa: E402
from pykern._backends import simulator_enabled  # noqa: E402


def seed_for(*parts) -> int:
    """A stable seed per test case, so every case gets its own fresh random inputs."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def require_backend(name: str) -> None:
    a = pk.backends()[name]
    if not a.available:
        pytest.skip(f"backend {name!r} unavailable: {a.reason}")


def on_simulator(backend: str) -> bool:
    return backend == "numba" and simulator_enabled()


def pytest_report_header(config):
    return ["pykern backends: " + "; ".join(
        f"{n}={'yes' if a.available else 'no'} ({a.reason})" for n, a in pk.backends().items())]
