"""Calling a bound kernel: device arrays arrive as ArrayInfo records (ptr, shape, dtype)."""
from __future__ import annotations

from .._device import ext

STREAM = 0  # the legacy default stream: ordered with CuPy's and PyTorch's default streams


def kernel(name: str):
    """The bound launcher ``name`` from pykern._cuda (RuntimeError if the extension is missing)."""
    fn = getattr(ext(), name, None)
    if fn is None:
        raise RuntimeError(f"pykern._cuda has no kernel {name!r}: the extension is older than the "
                           "Python package; reinstall pykern")
    return fn
