"""Array boundary: what kind of array a caller passed, validation, and same-kind allocation.

Kinds: ``numpy`` (host), and GPU kinds ``cupy``, ``torch``, ``numba`` (Numba device arrays,
the simulator's included), ``pykern`` (pykern's own DeviceArray), ``dlpack`` (any other CUDA
array exporting ``__dlpack__``) and ``cai`` (any other object exposing
``__cuda_array_interface__``).

A GPU array is read through DLPack when it exports it, else through __cuda_array_interface__.
DLPack comes first because the consumer names its stream: pykern passes the stream it will
launch on, and the producer orders its pending work on the array before it (PyTorch's
interface is version 2, with no stream at all, and has no bfloat16).
"""
from __future__ import annotations

import ctypes
import math
from typing import Any, Optional

import numpy as np

HOST_KINDS = ("numpy",)


class ArrayInfo:
    """What the boundary knows about one array argument.

    A plain class with slots, not a dataclass: the dispatch builds one per argument on every
    call, and a host op's whole overhead budget is a few microseconds.
    """

    __slots__ = ("name", "obj", "kind", "shape", "dtype", "_ptr", "strides", "stream", "readonly", "keep")

    def __init__(self, name: str, obj: Any, kind: str, shape: tuple, dtype: np.dtype, ptr: Optional[int],
                 strides: Optional[tuple], stream: int = 0, readonly: bool = False, keep: Any = None):
        self.name = name  # the argument's name, for error messages
        self.obj = obj
        self.kind = kind
        self.shape = shape
        self.dtype = dtype
        # Device pointer for GPU kinds, host address for numpy (None: read from obj when first
        # asked, as only overlap checks need it), 0 when unknown.
        self._ptr = ptr
        self.strides = strides  # in bytes; None means C-contiguous
        # The CUDA stream kernels launch on (1: legacy default, 2: per-thread default, else a
        # cudaStream_t; 0: none named, the legacy default). Through DLPack: the stream pykern gave
        # the producer, which ordered its work on the array before it. Through
        # __cuda_array_interface__ v3: the producer's own stream.
        self.stream = stream
        self.readonly = readonly  # a NumPy array without WRITEABLE, or a DLPack export flagged read-only
        self.keep = keep  # the DLPack capsule, alive as long as this record

    @property
    def ptr(self) -> int:
        if self._ptr is None:
            self._ptr = self.obj.__array_interface__["data"][0]
        return self._ptr

    @property
    def on_gpu(self) -> bool:
        return self.kind != "numpy"  # HOST_KINDS

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # exact: np.prod in int64 would wrap for huge shapes

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"ArrayInfo({self.name!r}, {self.kind}, shape={self.shape}, dtype={self.dtype.name})"


_DTYPE_NAMES: dict = {}


def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, cached: NumPy computes that property in Python, at a microsecond a call,
    and the dispatch asks for it on every call."""
    try:
        return _DTYPE_NAMES[dtype]
    except KeyError:
        name = _DTYPE_NAMES[dtype] = dtype.name
        return name


# The most bytes one array may span: NumPy's limit (the largest intp), which is also more than any
# 64-bit machine can address, so a larger array cannot be allocated anywhere.
MAX_ARRAY_BYTES = int(np.iinfo(np.intp).max)


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, one decimal below ten: '512 B', '3.5 KiB', '64 MiB', '16 EiB'."""
    for unit, scale in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20),
                        ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 10 * scale else f"{n / scale:.0f} {unit}"
    return f"{n:.0f} B"


def checked_nbytes(shape, dtype, what: str, cause) -> int:
    """The bytes of an array of ``shape`` and ``dtype``, computed exactly (Python ints never wrap);
    ValueError naming ``what`` and the arguments that made it so big (``cause``: a string, or a
    function giving one, called only for the message) when no machine could hold it."""
    elements = math.prod(shape)
    nbytes = elements * np.dtype(dtype).itemsize
    if nbytes > MAX_ARRAY_BYTES:
        cause = cause() if callable(cause) else cause
        raise ValueError(f"{what} would be {tuple(shape)} {np.dtype(dtype).name}: {elements:,} elements, "
                         f"{format_bytes(nbytes)}, more than any machine can address (2^63 bytes); "
                         f"its size comes from {cause}")
    return nbytes


def _kind_of(x) -> Optional[str]:
    mod = type(x).__module__.split(".")[0]
    if isinstance(x, np.ndarray):
        return "numpy"
    if type(x).__module__.startswith("numba.cuda.simulator"):
        return "numba"
    if mod == "torch" and getattr(x, "is_cuda", None) is False:
        return "torch_cpu"
    if (hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__")) or hasattr(x, "__cuda_array_interface__"):
        return {"cupy": "cupy", "torch": "torch", "numba": "numba", "numba_cuda": "numba",
                "pykern": "pykern"}.get(mod, "dlpack" if hasattr(x, "__dlpack__") else "cai")
    return None


def describe(x, name: str, stream: Optional[int] = None) -> ArrayInfo:
    """Describe argument ``name``; TypeError for anything that is not a supported array.

    ``stream``: the stream the call launches on, decided by its first GPU argument; None to
    decide it here (the array library's current stream, see consumer_stream)."""
    if type(x) is np.ndarray:  # the common case first: no subclass, so no mask to refuse
        dtype = x.dtype
        if not dtype.isnative:
            require_native(name, dtype)
        flags = x.flags
        return ArrayInfo(name, x, "numpy", x.shape, dtype, None, None if flags.c_contiguous else x.strides,
                         0, not flags.writeable)
    kind = _kind_of(x)
    if kind is None:
        if isinstance(x, np.generic):
            raise TypeError(f"{name}: expected an array, got a NumPy scalar ({type(x).__name__}); pass "
                            f"np.asarray({name}) (a 0-d array) or np.atleast_1d({name})")
        raise TypeError(f"{name}: expected a NumPy array or a GPU array exporting __dlpack__ or "
                        f"__cuda_array_interface__ (CuPy, Numba, PyTorch), got {type(x).__name__}")
    if kind == "torch_cpu":
        # .numpy() fails on a tensor that requires grad, and drops autograd anyway.
        raise TypeError(f"{name}: a PyTorch CPU tensor is not accepted by pk.<op>; use pykern.torch "
                        f"(pkt.relu, pkt.conv2d, pkt.nn.Conv2d, ...: tensors in and out, with autograd), "
                        f"or pass {name}.detach().numpy() (shares its memory)")
    if kind == "numpy":
        # Only subclasses reach here, and only they can be masked. np.ma is imported on first use:
        # an import on every call would also hang a child forked while another thread held
        # numpy.ma's import lock.
        if isinstance(x, np.ma.MaskedArray):
            raise TypeError(f"{name}: a masked array is not accepted: the kernels would read the "
                            f"masked values and ignore the mask; pass {name}.filled(value) or, if the "
                            f"mask does not matter, {name}.data")
        require_native(name, x.dtype)
        return ArrayInfo(name, x, kind, tuple(x.shape), x.dtype, None,
                         None if x.flags.c_contiguous else tuple(x.strides), 0, not x.flags.writeable)
    if type(x).__module__.startswith("numba.cuda.simulator"):
        # The simulator's arrays have no real device pointer.
        strides = None if x.is_c_contiguous() else tuple(x.strides)
        return ArrayInfo(name, x, kind, tuple(x.shape), np.dtype(x.dtype), 0, strides)
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        return _describe_dlpack(x, name, kind, stream)
    return _describe_cai(x, name, kind)


def _describe_cai(x, name: str, kind: str) -> ArrayInfo:
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


# --- DLPack (dlpack.h, v0.8 and v1.x): the structs a __dlpack__ capsule points to -------------------
DL_CPU, DL_CUDA, DL_CUDA_MANAGED = 1, 2, 13  # DLDeviceType values pykern tells apart
_DL_FLAG_READ_ONLY = 1  # DLManagedTensorVersioned.flags bit
_DL_KINDS = {0: "int", 1: "uint", 2: "float", 5: "complex"}  # DLDataTypeCode -> NumPy's name + bits


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):  # capsule "dltensor"
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class _DLManagedTensorVersioned(ctypes.Structure):  # capsule "dltensor_versioned" (DLPack >= 1.0)
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p), ("flags", ctypes.c_uint64), ("dl_tensor", _DLTensor)]


_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype, _capsule_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype, _capsule_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]


def consumer_stream(x, kind: str) -> int:
    """The stream a call on GPU array ``x`` launches on: its library's current stream (PyTorch's
    or CuPy's, so the kernels are ordered with the caller's other work on it), else 1, the
    legacy default stream. Never 0: DLPack reserves it."""
    stream = 0
    if kind == "torch":
        import torch
        stream = torch.cuda.current_stream(x.device).cuda_stream
    elif kind == "cupy":
        import cupy
        stream = cupy.cuda.get_current_stream().ptr
    return int(stream) or 1


def _dlpack_dtype(code: int, bits: int, lanes: int, name: str) -> np.dtype:
    """The NumPy dtype of a DLDataType (bfloat16 through ml_dtypes); TypeError if it has none."""
    if lanes == 1 and (code, bits) == (4, 16):  # kDLBfloat
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError(f"{name}: bfloat16 needs the ml_dtypes package (pip install ml_dtypes)") from None
        return np.dtype(ml_dtypes.bfloat16)
    if lanes == 1 and (code, bits) == (6, 8):  # kDLBool
        return np.dtype(np.bool_)
    try:
        if lanes != 1 or code not in _DL_KINDS:
            raise TypeError
        return np.dtype(f"{_DL_KINDS[code]}{bits}")
    except TypeError:
        raise TypeError(f"{name}: DLPack element type (code {code}, {bits} bits, {lanes} lanes) "
                        "is not supported") from None


def _describe_dlpack(x, name: str, kind: str, stream: Optional[int]) -> ArrayInfo:
    device_type, _ = x.__dlpack_device__()
    if device_type == DL_CPU:
        raise TypeError(f"{name}: a host array of type {type(x).__name__} is not accepted through DLPack; "
                        f"pass np.from_dlpack({name}), which shares its memory")
    if device_type not in (DL_CUDA, DL_CUDA_MANAGED):
        raise TypeError(f"{name}: DLPack device type {int(device_type)} is not a CUDA device")
    stream = consumer_stream(x, kind) if stream is None else (stream or 1)
    try:
        try:
            capsule = x.__dlpack__(stream=stream, max_version=(1, 0))
        except TypeError:  # a producer older than DLPack 1.0 takes no max_version
            capsule = x.__dlpack__(stream=stream)
    except (BufferError, RuntimeError, ValueError) as e:  # e.g. a tensor that requires grad
        raise TypeError(f"{name}: {type(x).__name__}.__dlpack__ refused the export: {e}") from e
    cname = _capsule_name(capsule)
    address = _capsule_pointer(capsule, cname)
    managed = (_DLManagedTensorVersioned if cname == b"dltensor_versioned" else _DLManagedTensor).from_address(address)
    t = managed.dl_tensor
    readonly = cname == b"dltensor_versioned" and bool(managed.flags & _DL_FLAG_READ_ONLY)
    dtype = _dlpack_dtype(t.dtype.code, t.dtype.bits, t.dtype.lanes, name)
    shape = tuple(int(t.shape[i]) for i in range(t.ndim))
    strides = None
    if t.strides:  # in elements; NULL means C-contiguous
        strides = tuple(int(t.strides[i]) * dtype.itemsize for i in range(t.ndim))
        if strides == c_strides(shape, dtype.itemsize):
            strides = None
    ptr = (t.data or 0) + t.byte_offset
    return ArrayInfo(name, x, kind, shape, dtype, ptr, strides, stream, readonly, capsule)


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
    if a.kind == "numpy" and b.kind == "numpy":
        return np.may_share_memory(a.obj, b.obj)  # exact for contiguous arrays: their bounds
    if not a.ptr or not b.ptr or a.on_gpu != b.on_gpu:
        return False  # the simulator's arrays have no address; host and device never overlap
    return a.ptr < b.ptr + b.nbytes and b.ptr < a.ptr + a.nbytes


def same_buffer(a: ArrayInfo, b: ArrayInfo) -> bool:
    return a.obj is b.obj or (bool(a.ptr) and a.ptr == b.ptr and a.nbytes == b.nbytes and a.on_gpu == b.on_gpu)


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
        tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
               "float64": torch.float64}[dtype.name]
        return torch.empty(shape, dtype=tdt, device=like.obj.device)
    if kind == "numba":
        from numba import cuda
        return cuda.device_array(shape, dtype)
    from ._device import DeviceArray
    return DeviceArray.empty(shape, dtype)
