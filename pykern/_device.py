"""pykern's own device memory, over pykern._cuda: lets the CUDA C++ backend run on NumPy
arrays with no GPU array library installed.

With PYKERN_CUDA_SIM=1 in the environment (set before pykern is imported, like
NUMBA_ENABLE_CUDASIM) the extension is pykern._cuda_sim instead: the same kernels and bindings
built for the CPU simulator in csrc/sim/, where "device memory" is host memory."""
from __future__ import annotations

import math
import os

import numpy as np

from ._arrays import checked_nbytes

_EXT = None
_EXT_ERROR = None


def cuda_sim_requested() -> bool:
    """Whether PYKERN_CUDA_SIM asks for the CUDA C++ simulator (read once, at first use)."""
    return os.environ.get("PYKERN_CUDA_SIM", "0") not in ("", "0")


_USE_SIM = cuda_sim_requested()


def using_cuda_sim() -> bool:
    """Whether the "cuda" backend runs pykern._cuda_sim (decided when pykern was imported)."""
    return _USE_SIM


def ext():
    """The compiled pykern._cuda module (pykern._cuda_sim under PYKERN_CUDA_SIM=1);
    RuntimeError saying why when it is missing."""
    global _EXT, _EXT_ERROR
    if _EXT is None and _EXT_ERROR is None:
        try:
            if _USE_SIM:
                from . import _cuda_sim as mod
            else:
                from . import _cuda as mod
            _EXT = mod
        except ImportError as e:
            if _USE_SIM:
                _EXT_ERROR = ("PYKERN_CUDA_SIM=1 but pykern._cuda_sim was not built (no C++ compiler at "
                              f"install time, or PYKERN_NO_CUDA_SIM=1): reinstall with one [{e}]")
            else:
                _EXT_ERROR = ("pykern._cuda was not built (no CUDA compiler at install time, or "
                              f"PYKERN_NO_CUDA=1): reinstall with nvcc on PATH [{e}]")
    if _EXT is None:
        raise RuntimeError(_EXT_ERROR)
    return _EXT


class DeviceArray:
    """A C-contiguous device buffer with a shape and dtype, exposing __cuda_array_interface__."""

    __slots__ = ("ptr", "shape", "dtype", "_owner", "__weakref__")

    def __init__(self, ptr: int, shape, dtype, owner=None):
        self.ptr = int(ptr)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self._owner = owner  # the _Allocation keeping the memory alive

    @classmethod
    def empty(cls, shape, dtype) -> "DeviceArray":
        # Exact: np.prod in int64 would wrap a huge shape into a small buffer.
        nbytes = checked_nbytes(shape, dtype, "a device array", f"its shape {tuple(shape)}")
        alloc = _Allocation(nbytes)
        return cls(alloc.ptr, shape, dtype, alloc)

    @classmethod
    def from_host(cls, a: np.ndarray) -> "DeviceArray":
        shape = np.shape(a)  # before ascontiguousarray, which turns a 0-d array into shape (1,)
        a = np.ascontiguousarray(a)
        d = cls.empty(shape, a.dtype)
        ext().memcpy_htod(d.ptr, a.reshape(-1).view(np.uint8))
        return d

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def copy_to_host(self, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty(self.shape, self.dtype)
        ext().memcpy_dtoh(out.reshape(-1).view(np.uint8), self.ptr)
        return out

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False),
                "strides": None, "version": 3, "stream": None}

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype.name})"


class _Allocation:
    __slots__ = ("ptr", "nbytes")

    def __init__(self, nbytes: int):
        self.ptr, self.nbytes = 0, nbytes  # __del__ runs even when malloc raises
        self.ptr = ext().malloc(nbytes)

    def __del__(self):
        if _EXT is not None and self.ptr:
            try:
                _EXT.free(self.ptr)
            except Exception:  # freeing during interpreter shutdown or after a sticky CUDA error
                pass
            self.ptr = 0
