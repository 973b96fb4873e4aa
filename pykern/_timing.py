"""Timing a prepared kernel: warm-up first, then repeated launches on the backend's own clock
(CUDA events on the GPU, perf_counter on the CPU), reported as median and spread."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from ._backends import EXECUTORS


@dataclass(frozen=True)
class Timing:
    median: float  # seconds
    q25: float
    q75: float
    runs: int

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q75 - self.q25) / self.median if self.median > 0 else 0.0


def summarize(samples: list) -> Timing:
    s = sorted(samples)
    if len(s) >= 4:
        q = statistics.quantiles(s, n=4)
        q25, q75 = q[0], q[2]
    else:
        q25, q75 = s[0], s[-1]
    return Timing(statistics.median(s), q25, q75, len(s))


def time_prepared(prepared, backend: str, *, warmup: int = 2, reps: int = 10) -> Timing:
    """Median time of ``prepared.run()`` alone (data already in place)."""
    clock = EXECUTORS[backend].timer()
    for _ in range(warmup):
        prepared.run()
    prepared.sync()
    return summarize([clock(prepared.run, prepared.sync) for _ in range(reps)])
