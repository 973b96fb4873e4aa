"""Timing: warm-up first, then repeated runs on the right clock, reported as median and spread.

``measure`` is pykern's one timing loop: ``pykern demo``, ``pykern bench`` and ``compare`` (and
their ceilings) and bench/bench_conv2d_cpu.py time through it; the pytest-benchmark suite in
bench/ hands the same clocks and flush to pytest-benchmark's own rounds. ``backend_clock`` says
which clock times a backend's kernels.

Clocks. A clock is a zero-argument callable returning a *stamp*; ``end - start`` is the elapsed
time in seconds. On the CPU a stamp is ``time.perf_counter()``. On a GPU a stamp is a CUDA event
recorded on the legacy default stream (the stream pykern, Numba, CuPy and PyTorch launch on by
default), and the subtraction waits for the end event: the interval is the GPU's own measure of
the work enqueued between the two stamps, not the host's launch overhead plus a synchronize.
pytest-benchmark takes the same clocks as its ``timer`` (it only ever computes ``end - start``).

Caches. On a GPU, repeated runs on the same inputs would measure the L2, not the memory system:
a flusher writes a buffer larger than the L2 (50 MB on an H100) before each timed run, outside
the timed interval. CPU runs go back to back with no flush: the ~10 ms a flush takes lets BLAS and
OpenMP worker threads go to sleep, and waking them would then be timed with every small problem
(measured here: a 128^3 sgemm went from 0.65 ms to 25 ms on a loaded 2-core machine); CPU sizes
that matter exceed the caches anyway.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ._backends import on_simulator


@dataclass(frozen=True)
class Timing:
    median: float  # seconds
    q25: float
    q75: float
    runs: int

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return self.iqr / self.median if self.median > 0 else 0.0


def summarize(samples: list) -> Timing:
    s = sorted(samples)
    if len(s) >= 4:
        q = statistics.quantiles(s, n=4)
        q25, q75 = q[0], q[2]
    else:
        q25, q75 = s[0], s[-1]
    return Timing(statistics.median(s), q25, q75, len(s))


# --- clocks -------------------------------------------------------------------------------------

def host_clock() -> float:
    """CPU wall clock; the work timed must be synchronous (NumPy) or synchronize itself."""
    return time.perf_counter()


class _EventStamp:
    __slots__ = ("event", "elapsed_ms")

    def __init__(self, event, elapsed_ms):
        self.event, self.elapsed_ms = event, elapsed_ms

    def __sub__(self, start: "_EventStamp") -> float:
        self.event.synchronize()
        return self.elapsed_ms(start.event, self.event) / 1e3


def _event_api(lib: str):
    """(new_event, elapsed_ms(start, end)) for one library's CUDA events."""
    if lib == "pykern":
        from ._device import ext
        mod = ext()
        return mod.Event, lambda a, b: a.elapsed_ms(b)
    if lib == "numba":
        from numba import cuda
        return cuda.event, lambda a, b: a.elapsed_time(b)  # events time by default
    if lib == "cupy":
        import cupy
        return cupy.cuda.Event, cupy.cuda.get_elapsed_time
    if lib == "torch":
        import torch
        return (lambda: torch.cuda.Event(enable_timing=True)), lambda a, b: a.elapsed_time(b)
    raise ValueError(f"no CUDA events for library {lib!r}")


class EventClock:
    """A GPU clock on ``lib``'s CUDA events (pykern, numba, cupy or torch); events are created
    on first use, so a clock can be built where no GPU is present."""

    def __init__(self, lib: str):
        self.lib = lib
        self.__name__ = f"EventClock({lib})"  # how pytest-benchmark names the timer in its JSON
        self._api = None

    def __call__(self) -> _EventStamp:
        if self._api is None:
            self._api = _event_api(self.lib)
        new, elapsed = self._api
        ev = new()
        ev.record()
        return _EventStamp(ev, elapsed)


def backend_clock(backend: str) -> Callable:
    """The clock for ``backend``'s kernels: the CUDA events of the library that launches them on a
    GPU (pykern._cuda for cuda, Numba's for numba), the host clock on the CPU and in a simulator
    (where the time is the simulation's, not a GPU's)."""
    if backend == "numpy" or on_simulator(backend):
        return host_clock
    return EventClock("pykern" if backend == "cuda" else "numba")


# --- cache flushing ---------------------------------------------------------------------------

def gpu_flusher(l2_bytes: Optional[int]) -> tuple[Callable[[], None], str]:
    """(flush, how): memset a device buffer of twice the L2 size (at least 64 MB), enqueued on
    the legacy default stream before the start event, so it is never inside a timed interval."""
    nbytes = max(64 << 20, 2 * int(l2_bytes or 0))
    errors = []
    try:
        from ._device import DeviceArray, ext
        buf = DeviceArray.empty((nbytes,), np.uint8)
        mod = ext()
        return (lambda: mod.memset(buf.ptr, 0x5A, nbytes)), f"pykern memset of {nbytes >> 20} MiB"
    except Exception as e:  # extension missing: try the GPU libraries present
        errors.append(f"pykern: {e}")
    try:
        import cupy
        buf = cupy.empty(nbytes, cupy.uint8)
        return (lambda: buf.fill(0x5A)), f"cupy fill of {nbytes >> 20} MiB"
    except Exception as e:
        errors.append(f"cupy: {e}")
    try:
        import torch
        if not torch.cuda.is_available():
            raise RuntimeError("torch.cuda.is_available() is False")
        buf = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        return (lambda: buf.fill_(0x5A)), f"torch fill of {nbytes >> 20} MiB"
    except Exception as e:
        errors.append(f"torch: {e}")
    try:
        from numba import cuda
        from numba.cuda.cudadrv import driver
        buf = cuda.device_array(nbytes, np.uint8)
        return (lambda: driver.device_memset(buf, 0x5A, nbytes)), f"numba memset of {nbytes >> 20} MiB"
    except Exception as e:
        errors.append(f"numba: {e}")
    raise RuntimeError("no way to flush the GPU's L2: " + "; ".join(errors))


# --- the measuring loop -----------------------------------------------------------------------

def measure(run: Callable[[], None], clock: Callable, *, sync: Callable[[], None] = lambda: None,
            flush: Optional[Callable[[], None]] = None, warmup: int = 1, min_reps: int = 3,
            max_reps: int = 30, budget_s: float = 0.5) -> tuple[Timing, list]:
    """Time ``run`` (warm-up first), flushing caches before each timed run, until ``max_reps``
    runs or, once ``min_reps`` are done, until ``budget_s`` seconds of wall time have passed."""
    for _ in range(warmup):
        run()
    sync()
    samples = []
    t_begin = time.perf_counter()
    while len(samples) < max_reps:
        if flush is not None:
            flush()
            sync()  # a host clock would otherwise count the flush still running on the GPU
        start = clock()
        run()
        end = clock()
        samples.append(end - start)
        if len(samples) >= min_reps and time.perf_counter() - t_begin > budget_s:
            break
    sync()
    return summarize(samples), samples
