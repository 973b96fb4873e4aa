"""Backends: whether each can run here (and why not), and how each moves data to its kernels.

Every backend's ``prepare`` takes validated arrays and returns a :class:`Prepared` whose
``run()`` launches only the kernel on data already where the kernel needs it, and whose
``finish()`` hands back the caller's kind of array. A plain op call is prepare+run+finish;
benchmarks time ``run()`` alone or the whole sequence (host<->device copies counted).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import numpy as np

from ._arrays import ArrayInfo, describe, empty_like_kind, same_buffer
from ._fork import FORK_GATE


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str

    def __bool__(self) -> bool:
        return self.available


def simulator_enabled() -> bool:
    """Whether the Numba kernels run in Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_simulator_enabled() -> bool:
    """Whether the CUDA C++ kernels run in pykern's simulator (PYKERN_CUDA_SIM, csrc/sim/)."""
    from ._device import using_cuda_sim
    return using_cuda_sim()


def on_simulator(backend: str) -> bool:
    """Whether ``backend`` runs its kernels in a simulator on the CPU here: results are real,
    timings are not, and tests and demos use small sizes."""
    return (backend == "numba" and simulator_enabled()) or (backend == "cuda" and cuda_simulator_enabled())


SIM_TIMING_NOTE = "simulator: timings meaningless"


@lru_cache(maxsize=None)
def availability(name: str) -> Availability:
    if name not in EXECUTORS:
        raise ValueError(f"backend: unknown backend {name!r}; expected one of {list(EXECUTORS)}")
    from ._registry import load  # the registry reads EXECUTORS at import: import it late
    why = load(name)
    if why:
        return Availability(False, why)
    return EXECUTORS[name].probe()


def _numpy_availability() -> Availability:
    from .cpu import _compiled
    if _compiled.ext is None:
        kernels = f"no compiled kernels ({_compiled.WHY_NOT})"
    else:
        kernels = f"compiled kernels pykern._cpu (this CPU runs their {_compiled.ext.detected_isa()} path)"
    return Availability(True, f"NumPy {np.__version__} on the CPU; {kernels}")


def _numba_availability() -> Availability:
    try:
        from numba import cuda
    except Exception as e:  # numba or numba-cuda missing or broken
        return Availability(False, f"numba.cuda cannot be imported: {e}")
    if simulator_enabled():
        return Availability(True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): results are real, "
                                  "timings are not (one Python thread per CUDA thread)")
    try:
        if cuda.is_available():
            name = cuda.get_current_device().name
            return Availability(True, f"GPU: {name.decode() if isinstance(name, bytes) else name}")
    except Exception as e:
        return Availability(False, f"numba.cuda found no usable GPU: {e}")
    return Availability(False, "numba.cuda found no usable GPU/driver (set NUMBA_ENABLE_CUDASIM=1 "
                               "before importing pykern to run the Numba kernels in the simulator)")


# What to do without a GPU (or without pykern._cuda), as the numba backend's reason says for Numba's.
CUDA_SIM_HINT = ("set PYKERN_CUDA_SIM=1 before importing pykern to run the CUDA C++ kernels in "
                 "pykern's simulator on the CPU")


def _cuda_availability() -> Availability:
    from ._device import ext
    try:
        mod = ext()
    except RuntimeError as e:
        from ._install import explain_missing_extension
        hint = "" if cuda_simulator_enabled() else CUDA_SIM_HINT  # else the error is the simulator's own
        return Availability(False, explain_missing_extension(str(e), hint))
    if getattr(mod, "SIMULATOR", False):
        return Availability(True, "CUDA C++ simulator (PYKERN_CUDA_SIM=1): the kernels run on the CPU, "
                                  "one block at a time, threads as fibers; results are real, timings are not")
    count, err = mod.device_count()
    if count == 0:
        return Availability(False, f"no CUDA GPU usable: {err or 'no device found'} ({CUDA_SIM_HINT})")
    return Availability(True, f"GPU: {mod.device_properties()['name']}")


def require(name: str) -> None:
    a = availability(name)
    if not a.available:
        raise RuntimeError(f"backend {name!r} is not available: {a.reason}")


@dataclass
class Prepared:
    """A kernel ready to launch on data already in place."""

    run: Callable[[], None]  # launches the kernel (asynchronously on GPU backends)
    finish: Callable[[], object]  # waits, copies back if the caller gave host arrays
    sync: Callable[[], None]
    variant: object = None  # the Variant record
    params: dict = None  # normalized op parameters
    problem: object = None  # the call as the dispatch resolved it (pykern/_problem.py)


def _alias_map(ins: list[ArrayInfo], out: Optional[ArrayInfo]):
    """Index of the input that ``out`` is (in place), or None. The dispatch has already refused
    every other kind of overlap."""
    if out is None:
        return None
    for i, a in enumerate(ins):
        if a is not None and same_buffer(a, out):
            return i
    return None


# Every executor takes a Problem (pykern/_problem.py) the dispatch validated, and has:
#   prepare(problem, poison) -> Prepared   for benchmarks and checks: run() alone is the kernel
#   output(problem) -> handle               allocates (a MemoryError here is the output's)
#   call(problem, handle) -> result         runs and returns the caller's kind of array
# A plain op call is output + call: on the host no closures are made, as a small call's cost is
# mostly this Python.
_compiled = None  # pykern.cpu._compiled, once imported (by the registry's loading of the numpy backend)


def host_threads() -> int:
    """pykern's CPU thread count now (pykern/cpu/_compiled.py: BLAS's limit, read per call)."""
    global _compiled
    if _compiled is None:
        from .cpu import _compiled
    return _compiled.threads()  # the module's attribute, read per call: tests replace it


class NumpyExecutor:
    name = "numpy"
    package = "cpu"  # pykern.cpu registers this backend's variants
    requires = ""  # what to install when the package cannot be imported ('' for nothing but pykern)
    probe = staticmethod(_numpy_availability)

    @staticmethod
    def output(problem) -> np.ndarray:
        first = problem.inputs[0]
        if first.on_gpu:
            raise TypeError(f"{first.name}: backend 'numpy' takes host (NumPy) arrays, got a GPU array "
                            f"({type(first.obj).__module__}.{type(first.obj).__name__}); use backend='cuda' "
                            "or 'numba', or copy it to the host first")
        return problem.out.obj if problem.out is not None else np.empty(problem.out_shape, problem.out_dtype)

    @staticmethod
    def call(problem, y: np.ndarray, args: Optional[list] = None) -> np.ndarray:
        """Run the problem's variant into ``y``. ``args``: the input arrays in the kernels' order
        (default: the problem's own; a plan passes a later call's)."""
        variant = problem.variant
        if args is None:
            args = [None if a is None else a.obj for a in problem.inputs]
        if variant.takes_problem:
            # A compiled kernel (pykern/cpu/_compiled.py): the spec's dims come from the Problem.
            # It raises no NumPy floating-point warning and calls no BLAS, and its thread pool
            # is rebuilt in a forked child, so neither the errstate nor the fork gate applies.
            variant.fn(problem, args, y)
            return y
        if variant.bare:
            variant.fn(*args, y, **problem.params)
            return y
        # A fork waits for host kernels to leave BLAS (pykern/_fork.py). NaN and Inf inputs
        # are valid and their results defined (0 * Inf is NaN): NumPy's floating-point
        # warnings about them would only be noise, which torch does not make either.
        with FORK_GATE, np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            variant.fn(*args, y, **problem.params)
        return y

    @staticmethod
    def plan(problem):
        """What repeats ``problem`` for a later call of its signature (pykern/_dispatch.py's
        plans): the problem without its arrays, and its inputs' names in the kernels' order."""
        return problem.detached(), problem.spec.inputs

    @staticmethod
    def repeat(plan, arrays: dict) -> np.ndarray:
        """Run a plan on a later call's arrays (name -> array or None), into a new output."""
        problem, names = plan
        args = [arrays.get(name) for name in names]
        return NumpyExecutor.call(problem, np.empty(problem.out_shape, problem.out_dtype), args)

    def prepare(self, problem, poison=False) -> Prepared:
        y = self.output(problem)
        if poison:
            y.fill(np.nan)
        return Prepared(lambda: self.call(problem, y), lambda: y, lambda: None, problem.variant, problem.params,
                        problem)


class _GpuExecutor:
    """Shared host/device plumbing; subclasses say how to wrap, upload, allocate and launch."""

    name = ""

    def launch(self, problem, dev_ins: list, dev_out) -> None:
        """Runs the variant on device arrays (the backend's own kind)."""
        problem.variant.fn(*dev_ins, dev_out, **problem.params)

    def prepare(self, problem, poison=False) -> Prepared:
        ins, out = problem.inputs, problem.out
        alias = _alias_map(ins, out)
        if ins[0].on_gpu:
            dev_ins = [self.wrap(a) if a is not None else None for a in ins]
            if out is None:
                out_obj = empty_like_kind(ins[0], problem.out_shape, problem.out_dtype)
                out = describe(out_obj, "out", ins[0].stream)
            dev_out = dev_ins[alias] if alias is not None else self.wrap(out)
            if poison and alias is None:
                self.poison(dev_out)
            finish = lambda: out.obj  # noqa: E731 (asynchronous, like the caller's own library)
        else:
            dev_ins = [self.upload(a.obj) if a is not None else None for a in ins]
            dev_out = dev_ins[alias] if alias is not None else self.alloc(problem.out_shape, problem.out_dtype)
            if poison and alias is None:
                self.poison(dev_out)
            host_out = out.obj if out is not None else None

            def finish():
                return self.download(dev_out, host_out)

        return Prepared(lambda: self.launch(problem, dev_ins, dev_out), finish, self.sync, problem.variant,
                        problem.params, problem)

    output = prepare

    @staticmethod
    def call(problem, prepared: Prepared):
        prepared.run()
        return prepared.finish()


class NumbaExecutor(_GpuExecutor):
    name = "numba"
    package = "numba_cuda"
    requires = "the Numba kernels need numba and numba-cuda (pip install numba-cuda)"
    probe = staticmethod(_numba_availability)

    @staticmethod
    def wrap(a: ArrayInfo):
        from numba import cuda
        return a.obj if a.kind == "numba" else cuda.as_cuda_array(a.obj)

    @staticmethod
    def upload(x):
        from numba import cuda
        return cuda.to_device(x)

    @staticmethod
    def alloc(shape, dtype):
        from numba import cuda
        return cuda.device_array(shape, dtype)

    @staticmethod
    def poison(d):
        from numba import cuda
        cuda.to_device(np.full(d.shape, np.nan, d.dtype), to=d)

    @staticmethod
    def download(d, host_out):
        if host_out is None:
            return d.copy_to_host()
        d.copy_to_host(host_out)
        return host_out

    @staticmethod
    def sync():
        from numba import cuda
        cuda.synchronize()


class CudaExecutor(_GpuExecutor):
    """CUDA C++ kernels see ArrayInfo records: (ptr, shape, dtype) of device memory."""

    name = "cuda"
    package = "cuda"
    requires = ""
    probe = staticmethod(_cuda_availability)

    def launch(self, problem, dev_ins: list, dev_out) -> None:
        """A table row (pykern/cuda/) takes the problem itself: its one generic launch reads the
        dims from the op's spec. A launcher registered by hand (the checker's tests) takes the
        arrays and parameters, as on the other backends."""
        variant = problem.variant
        if variant.takes_problem:
            variant.fn(problem, dev_ins, dev_out)
        else:
            variant.fn(*dev_ins, dev_out, **problem.params)

    @staticmethod
    def wrap(a: ArrayInfo):
        if a.kind == "numba" and not a.ptr:
            raise TypeError(f"{a.name}: a Numba simulator array has no device memory for the 'cuda' backend")
        return a

    @staticmethod
    def upload(x):
        from ._device import DeviceArray
        return describe(DeviceArray.from_host(x), "device copy")

    @staticmethod
    def alloc(shape, dtype):
        from ._device import DeviceArray
        return describe(DeviceArray.empty(shape, dtype), "device output")

    @staticmethod
    def poison(d: ArrayInfo):
        from ._device import ext
        ext().memset(d.ptr, 0xFF, d.nbytes)  # all-ones bytes are NaN in every float format

    @staticmethod
    def download(d: ArrayInfo, host_out):
        if host_out is None:
            return d.obj.copy_to_host()
        d.obj.copy_to_host(host_out)
        return host_out

    @staticmethod
    def sync():
        from ._device import ext
        ext().synchronize()


# The one list of backends, in the order pk.backends() and pk.variants() list them. A backend is
# an executor class: its name, the pykern package whose import registers its variants, what that
# package needs, how to probe it, and how it moves data. Adding one is its class plus one entry.
EXECUTORS = {e.name: e for e in (NumpyExecutor(), NumbaExecutor(), CudaExecutor())}


def backends() -> dict:
    """{backend name: Availability(available, reason)} for every backend in EXECUTORS."""
    return {name: availability(name) for name in EXECUTORS}
