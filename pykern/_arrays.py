"""Array boundary: what kind of array a caller passed, validation, and same-kind allocation.

Kinds: ``numpy`` (host), and GPU kinds ``cupy``, ``torch``, ``numba`` (Numba device arrays,
the simulator's included), ``pykern`` (pykern's own DeviceArray) and ``cai`` (any other
object exposing ``__cuda_array_interface__``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

HOST_KINDS = ("numpy",)


@dataclass(frozen=True)
class ArrayInfo:
    """What the boundary knows about one array argument."""

    name: str  # the argument's name, for error messages
    obj: Any
    kind: str
    shape: tuple
    dtype: np.dtype
    ptr: int  # device pointer for GPU kinds, host address for numpy, 0 when unknown
    strides: Optional[tuple]  # in bytes; None means C-contiguous
    # The producer's CUDA stream from __cuda_array_interface__ v3 (1: legacy default, 2:
    # per-thread default, else a cudaStream_t); 0 when none was given. Kernels launch on it, so
    # they are ordered after the producer's work on its stream.
    stream: int = 0

    @property
    def on_gpu(self) -> bool:
        return self.kind not in HOST_KINDS

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


def _kind_of(x) -> Optional[str]:
    mod = type(x).__module__.split(".")[0]
    if isinstance(x, np.ndarray):
        return "numpy"
    if type(x).__module__.startswith("numba.cuda.simulator"):
        return "numba"
    if hasattr(x, "__cuda_array_interface__"):
        return {"cupy": "cupy", "torch": "torch", "numba": "numba", "numba_cuda": "numba",
                "pykern": "pykern"}.get(mod, "cai")
    if mod == "torch" and hasattr(x, "is_cuda"):
        return "torch_cpu"
    return None


def describe(x, name: str) -> ArrayInfo:
    """Describe argument ``name``; TypeError for anything that is not a supported array."""
    kind = _kind_of(x)
    if kind is None:
        raise TypeError(f"{name}: expected a NumPy array or a GPU array exposing "
                        f"__cuda_array_interface__ (CuPy, Numba, PyTorch), got {type(x).__name__}")
    if kind == "torch_cpu":
        raise TypeError(f"{name}: a PyTorch CPU tensor is not accepted; pass {name}.numpy() "
                        "(host) or a CUDA tensor")
    if kind == "numpy":
        if isinstance(x, np.ma.MaskedArray):
            raise TypeError(f"{name}: a masked array is not accepted: the kernels would read the "
                            f"masked values and ignore the mask; pass {name}.filled(value) or, if the "
                            f"mask does not matter, {name}.data")
        require_native(name, x.dtype)
        return ArrayInfo(name, x, kind, tuple(x.shape), x.dtype, x.ctypes.data,
                         None if x.flags.c_contiguous else tuple(x.strides))
    if type(x).__module__.startswith("numba.cuda.simulator"):
        # The simulator's arrays have no real device pointer.
        strides = None if x.is_c_contiguous() else tuple(x.strides)
        return ArrayInfo(name, x, kind, tuple(x.shape), np.dtype(x.dtype), 0, strides)
    cai = x.__cuda_array_interface__
    try:
        dtype = np.dtype(cai["typestr"])
    except TypeError:
        raise TypeError(f"{name}: element type {cai['typestr']!r} is not supported") from None
    require_native(name, dtype)
    if dtype.kind == "V" and dtype.itemsize == 2 and _dtype_name(getattr(x, "dtype", None)) == "bfloat16":
        # The interface has no bfloat16 typestr ('<V2', raw bytes); the array's own dtype
        # (ml_dtypes.bfloat16 on a pykern DeviceArray, for instance) says what the bytes are.
        dtype = np.dtype(x.dtype)
    shape = tuple(int(s) for s in cai["shape"])
    strides = cai.get("strides")
    if strides is not None:
        strides = tuple(int(s) for s in strides)
        if strides == c_strides(shape, dtype.itemsize):
            strides = None
    return ArrayInfo(name, x, kind, shape, dtype, int(cai["data"][0]), strides, int(cai.get("stream") or 0))


def require_native(name: str, dtype: np.dtype) -> None:
    """Kernels read numbers in this machine's byte order; pykern never byte-swaps (a copy)."""
    if not dtype.isnative:
        order = "big-endian" if dtype.byteorder == ">" else "little-endian"
        raise TypeError(f"{name}: {order} {dtype.name} (dtype {dtype.str!r}) is not supported: the kernels "
                        f"read this machine's byte order and pykern never copies implicitly; pass "
                        f"{name}.astype({name}.dtype.newbyteorder('='))")


def _dtype_name(dt) -> str:
    try:
        return np.dtype(dt).name
    except TypeError:
        return ""


def c_strides(shape, itemsize) -> tuple:
    out, acc = [], itemsize
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return tuple(reversed(out))


def require_layout(info: ArrayInfo) -> None:
    """C-contiguous, positive strides, non-empty: what every kernel assumes."""
    if info.size == 0:
        raise ValueError(f"{info.name}: empty array (shape {info.shape}); every dimension must be >= 1")
    if info.strides is not None:
        live = [st for st, n in zip(info.strides, info.shape) if n > 1]
        expected = [st for st, n in zip(c_strides(info.shape, info.dtype.itemsize), info.shape) if n > 1]
        if live == expected:
            return  # strides differ only on size-1 dimensions, which are never stepped
        what = "has negative strides" if any(s < 0 for s in info.strides) else "is not C-contiguous"
        raise ValueError(f"{info.name} {what} (strides {info.strides}); pykern never copies "
                         f"implicitly: pass a contiguous copy, e.g. np.ascontiguousarray({info.name})")


def overlaps(a: ArrayInfo, b: ArrayInfo) -> bool:
    """Whether two C-contiguous arrays share any byte (exact, since both are contiguous)."""
    if a.obj is b.obj:
        return True
    if not a.ptr or not b.ptr or a.on_gpu != b.on_gpu:
        return False  # the simulator's arrays have no address; host and device never overlap
    return a.ptr < b.ptr + b.nbytes and b.ptr < a.ptr + a.nbytes


def same_buffer(a: ArrayInfo, b: ArrayInfo) -> bool:
    return a.obj is b.obj or (bool(a.ptr) and a.ptr == b.ptr and a.nbytes == b.nbytes and a.on_gpu == b.on_gpu)


def require_rank(info: ArrayInfo, rank: int, layout: str) -> None:
    if len(info.shape) != rank:
        raise ValueError(f"{info.name}: expected a {rank}-D array {layout}, got shape {info.shape}")


def dtype_name(dt: np.dtype) -> str:
    return np.dtype(dt).name


def empty_like_kind(like: ArrayInfo, shape: tuple, dtype: np.dtype):
    """An uninitialized array of ``like``'s kind (and device), for a kernel's output."""
    dtype = np.dtype(dtype)
    kind = like.kind
    if kind == "numpy":
        return np.empty(shape, dtype)
    if kind == "cupy":
        import cupy
        with like.obj.device:
            return cupy.empty(shape, dtype)
    if kind == "torch":
        import torch
        tdt = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32,
               np.dtype(np.float64): torch.float64}[dtype]
        return torch.empty(shape, dtype=tdt, device=like.obj.device)
    if kind == "numba":
        from numba import cuda
        return cuda.device_array(shape, dtype)
    from ._device import DeviceArray
    return DeviceArray.empty(shape, dtype)
