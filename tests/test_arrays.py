"""The array boundary's DLPack path, on the CPU: producers that say they live on a CUDA device
but export a host array's capsule (NumPy's or PyTorch's own DLPack export, so the struct layout
is checked against real producers). pykern's CUDA C++ simulator keeps "device memory" in host
memory, so such an array really runs through the cuda backend here."""
import numpy as np
import pytest
from conftest import require_backend, seed_for

import pykern as pk
from pykern._arrays import describe
from pykern._check import compare, tolerance_key
from pykern._device import DeviceArray
from pykern._dispatch import prepare
from pykern.ops import SPECS

DL_CUDA = 2


class CudaProducer:
    """Claims DLDeviceType ``device`` (CUDA) and records the stream each __dlpack__ call names;
    the capsule is ``host``'s own export (NumPy array or PyTorch CPU tensor)."""

    def __init__(self, host, device=DL_CUDA):
        self.host, self.device, self.streams = host, device, []

    def __dlpack_device__(self):
        return (self.device, 0)

    def __dlpack__(self, *, stream=None, max_version=None):
        self.streams.append(stream)
        return self.host.__dlpack__(max_version=max_version)

    @property
    def __cuda_array_interface__(self):
        raise AssertionError("DLPack must be read before __cuda_array_interface__")


class OldCudaProducer(CudaProducer):
    """A producer from before DLPack 1.0: __dlpack__ takes no max_version."""

    def __dlpack__(self, *, stream=None):
        self.streams.append(stream)
        return self.host.__dlpack__()


class CaiArray:
    """A bare __cuda_array_interface__ v3 producer over host memory, naming ``stream``."""

    def __init__(self, host, stream):
        self.host = host
        self.__cuda_array_interface__ = {"shape": host.shape, "typestr": host.dtype.str,
                                         "data": (host.ctypes.data, False), "strides": None,
                                         "version": 3, "stream": stream}


def f32(*shape, salt=""):
    return np.random.default_rng(seed_for("arrays", shape, salt)).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("producer", [CudaProducer, OldCudaProducer])
def test_dlpack_is_read_first_and_given_the_launch_stream(producer):
    x = f32(5, 7)
    p = producer(x)
    info = describe(p, "x")
    assert (info.kind, info.on_gpu, info.shape, info.dtype) == ("dlpack", True, (5, 7), x.dtype)
    assert info.ptr == x.ctypes.data
    assert info.strides is None and not info.readonly
    # No library stream to follow: the legacy default stream, as 1 (DLPack reserves 0).
    assert p.streams == [1] and info.stream == 1
    p2 = producer(x)
    assert describe(p2, "x", stream=12345).stream == 12345 and p2.streams == [12345]


def test_dlpack_layout_of_views():
    x = f32(6, 8)
    view = x[2:, 1:5]  # a byte offset and a row stride that is not the contiguous one
    info = describe(CudaProducer(view), "x")
    assert info.ptr == x.ctypes.data + (2 * 8 + 1) * 4
    assert info.shape == (4, 4) and info.strides == (32, 4)
    with pytest.raises(ValueError, match=r"x is not C-contiguous \(strides \(32, 4\)\)"):
        pk.relu(CudaProducer(view), backend="cuda")


def test_every_argument_is_handed_the_first_gpu_arguments_stream():
    require_backend("cuda")
    a, b = f32(3, 4), f32(4, 2)
    pb = CudaProducer(b)
    prepare("matmul", {"a": CaiArray(a, 777), "b": pb}, {}, backend="cuda")
    assert pb.streams == [777]
    pa, pb, pout = CudaProducer(a), CudaProducer(b), CudaProducer(np.empty((3, 2), np.float32))
    prepare("matmul", {"a": pa, "b": pb}, {}, backend="cuda", out=pout)
    assert pa.streams == pb.streams == pout.streams == [1]
    pb = CudaProducer(b)
    prepare("matmul", {"a": CaiArray(a, None), "b": pb}, {}, backend="cuda")
    assert pb.streams == [1]  # the CAI producer named no stream: legacy default, never 0


@pytest.mark.parametrize("op", ["relu", "matmul", "conv2d"])
def test_dlpack_arrays_run_on_the_cuda_backend(op):
    """In pykern's simulator the capsule's host memory is device memory: a full call runs."""
    require_backend("cuda")
    if not pk.backends()["cuda"].reason.startswith("CUDA C++ simulator"):
        pytest.skip("a real GPU cannot read these host-memory capsules")
    spec = SPECS[op]
    case = {"relu": {"shape": (3, 11)}, "matmul": {"M": 9, "N": 13, "K": 17},
            "conv2d": dict(N=1, C=3, H=6, W=5, K=4, R=3, S=3, padding=1, bias=True)}[op]
    arrays, params = spec.make_inputs(case, "float32", np.random.default_rng(seed_for("dlpack-run", op)))
    fn = {"relu": pk.relu, "matmul": pk.matmul, "conv2d": pk.conv2d}[op]
    got = fn(*[CudaProducer(a) if a is not None else None for a in arrays.values()], **params)
    assert isinstance(got, DeviceArray)  # a producer pykern cannot allocate: its own arrays
    a64 = {k: None if v is None else v.astype(np.float64) for k, v in arrays.items()}
    p = spec.normalize(params) if op == "conv2d" else params
    cmp = compare(got.copy_to_host(), spec.reference(a64, p), spec.magnitude(a64, p), "float32")
    assert cmp.ok, cmp.message()


def test_bfloat16_torch_tensors_through_dlpack():
    """__cuda_array_interface__ has no bfloat16 (PyTorch refuses to export one): DLPack does."""
    require_backend("cuda")
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    pytest.importorskip("ml_dtypes", reason="ml_dtypes provides NumPy's bfloat16")
    if not pk.backends()["cuda"].reason.startswith("CUDA C++ simulator"):
        pytest.skip("a real GPU cannot read these host-memory capsules")
    g = torch.Generator().manual_seed(seed_for("bf16-dlpack"))
    a = torch.randn(17, 20, generator=g).to(torch.bfloat16)
    b = torch.randn(20, 9, generator=g).to(torch.bfloat16)
    info = describe(CudaProducer(a), "a")
    assert info.dtype.name == "bfloat16" and info.ptr == a.data_ptr()
    c = pk.matmul(CudaProducer(a), CudaProducer(b), backend="cuda", variant="wmma_bf16").copy_to_host()
    a64, b64 = a.double().numpy(), b.double().numpy()
    cmp = compare(c, a64 @ b64, np.abs(a64) @ np.abs(b64), tolerance_key("bfloat16", c.dtype))
    assert c.dtype == np.float32 and cmp.ok, cmp.message()


def test_read_only_dlpack_export_refused_as_out():
    require_backend("cuda")
    x, ro = f32(4), np.empty(4, np.float32)
    ro.flags.writeable = False  # NumPy flags its DLPack 1.0 export read-only
    assert describe(CudaProducer(ro), "out").readonly
    with pytest.raises(ValueError, match=r"^out: the array is read-only \(its DLPack export says so\)"):
        pk.relu(CudaProducer(x), out=CudaProducer(ro), backend="cuda")


@pytest.mark.parametrize("device,match", [
    (1, r"x: a host array of type CudaProducer is not accepted through DLPack; pass np.from_dlpack\(x\)"),
    (10, r"x: DLPack device type 10 is not a CUDA device"),
])
def test_dlpack_devices_that_are_not_cuda_are_refused(device, match):
    with pytest.raises(TypeError, match=match):
        pk.relu(CudaProducer(f32(4), device=device))


def test_dlpack_element_types_without_a_kernel_are_refused():
    ints = CudaProducer(np.arange(6, dtype=np.int16))
    assert describe(ints, "x").dtype == np.int16
    with pytest.raises(TypeError, match=r"x: dtype int16 is not supported"):
        pk.relu(ints, backend="cuda")


def test_torch_cpu_tensors_are_refused_bfloat16_included():
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    for dtype in (torch.float32, torch.bfloat16):
        with pytest.raises(TypeError, match=r"x: a PyTorch CPU tensor is not accepted by pk.<op>; "
                                            r"use pykern.torch .* x.detach\(\).numpy\(\)"):
            pk.relu(torch.ones(3, dtype=dtype))


def test_a_producer_refusing_the_export_is_named():
    class Refuses(CudaProducer):
        def __dlpack__(self, *, stream=None, max_version=None):
            raise BufferError("cannot export a tensor that requires grad")

    with pytest.raises(TypeError, match=r"^b: Refuses.__dlpack__ refused the export: cannot export"):
        pk.matmul(CudaProducer(f32(2, 2)), Refuses(f32(2, 2)))
