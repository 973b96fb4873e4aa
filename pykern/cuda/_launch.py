"""Calling a bound kernel: device arrays arrive as ArrayInfo records (ptr, shape, dtype, stream).

Kernels launch on the first input's ``stream``: the stream its producer named in
__cuda_array_interface__ (CuPy's or PyTorch's current stream), else 0, the legacy default
stream, which is ordered with every blocking stream (pykern's own copies use it).
"""
from __future__ import annotations

from .._device import ext



def kernel(name: str):
    """The bound launcher ``name`` from pykern._cuda (RuntimeError if the extension is missing)."""
    fn = getattr(ext(), name, None)
    if fn is None:
        raise RuntimeError(f"pykern._cuda has no kernel {name!r}: the extension is older than the "
                           "Python package; reinstall pykern")
    return fn
