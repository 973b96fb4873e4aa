"""What a sweep times: targets (registered variants and library baselines), entries (a target on
one case in one dtype), and the plan that orders them and says why the rest are skipped."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .._backends import SIM_TIMING_NOTE, availability, on_simulator
from .._registry import BACKENDS, Variant, variants
from ..ops import SPECS
from ..ops._baselines import Baseline
from .baselines import _lib_reason
from .environment import gpu_present


def device_of(backend: str) -> str:
    return "cpu" if backend == "numpy" else "gpu"


@dataclass(frozen=True)
class Target:
    op: str
    backend: str  # numpy | numba | cuda for registered variants; "baseline" for libraries
    name: str
    device: str
    technique: str
    dtypes: tuple
    variant: Optional[Variant] = field(default=None, compare=False)
    baseline: Optional[Baseline] = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.name}"

    @property
    def kind(self) -> str:
        return "baseline" if self.baseline is not None else "variant"

    @classmethod
    def of_variant(cls, v: Variant) -> "Target":
        return cls(v.op, v.backend, v.name, device_of(v.backend), v.technique, v.dtypes, variant=v)

    @classmethod
    def of_baseline(cls, b: Baseline) -> "Target":
        return cls(b.op, "baseline", b.name, b.device, b.technique, b.dtypes, baseline=b)


def unavailable_reason(t: Target) -> Optional[str]:
    """Why ``t`` cannot be timed on this machine, or None."""
    if t.baseline is not None:
        return _lib_reason(t.baseline.lib)
    a = availability(t.backend)
    if not a.available:
        return a.reason
    if on_simulator(t.backend):
        return SIM_TIMING_NOTE
    return None


def choose_dtype(t: Target, dtype: str) -> tuple[Optional[str], Optional[str]]:
    """(dtype, None) or (None, why not). ``auto``: float32 where taken, else the first listed."""
    if dtype == "auto":
        return ("float32" if "float32" in t.dtypes else t.dtypes[0]), None
    if dtype in t.dtypes:
        return dtype, None
    return None, f"takes {', '.join(t.dtypes)}, not {dtype}"


@dataclass
class Entry:
    target: Target
    case: dict
    dtype: str
    skip: Optional[str] = None

    @property
    def case_id(self) -> str:
        return SPECS[self.target.op].case_id(self.case)


def split_list(value) -> Optional[list]:
    if value is None or isinstance(value, (list, tuple)):
        return value
    return [v.strip() for v in str(value).split(",") if v.strip()]


def plan(ops=None, backends_=None, variant_names=None, sizes: Optional[dict] = None, dtype: str = "auto",
         with_baselines: bool = True) -> tuple[list, list]:
    """The entries of a sweep, and the targets skipped as a whole: (entries, [(Target, reason)]).

    ops, backends_, variant_names: lists (or comma-separated strings) filtering the registry.
    sizes: {op: [case, ...]} replacing, on every device, the default cases of the op's spec
    (``bench_cases``, then ``bench_late_cases``).
    """
    ops = split_list(ops) or list(SPECS)
    backends_ = split_list(backends_) or list(BACKENDS)
    names = split_list(variant_names)
    for op in ops:
        if op not in SPECS:
            raise ValueError(f"op: unknown op {op!r}; expected one of {list(SPECS)}")
    for b in backends_:
        if b not in BACKENDS:
            raise ValueError(f"backend: unknown backend {b!r}; expected one of {list(BACKENDS)}")
    if dtype != "auto" and dtype not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(f"dtype: expected auto, float16, bfloat16, float32 or float64, got {dtype!r}")
    # Per backend: a numpy-only plan never imports numba.cuda (a second or two).
    chosen_backends = [b for b in BACKENDS if b in backends_]
    selected = [v for op in ops for b in chosen_backends for v in variants(op, b) if names is None or v.name in names]
    if names is not None:
        missing = set(names) - {v.name for v in selected}
        if missing:
            known = sorted({v.name for op in ops for b in chosen_backends for v in variants(op, b)})
            raise ValueError(f"variant: no variant named {', '.join(sorted(missing))} for op {', '.join(ops)} "
                             f"on backend {', '.join(backends_)}; known: {', '.join(known)}")
    gpu = []  # [gpu_present()], asked when a GPU target first needs it (it imports every backend)
    # A sweep with a time budget runs the entries in this order and skips what is left when the
    # budget is used up: the GPU ladder first (the reason a GPU machine is used), then the GPU's
    # late cases, then the CPU (whose default variants the comparison also times).
    buckets = {(d, late): [] for d in ("gpu", "cpu") for late in (False, True)}
    skipped = []
    for op in ops:
        ts = [Target.of_variant(v) for v in selected if v.op == op]
        devices = sorted({t.device for t in ts})
        if with_baselines:
            ts += [Target.of_baseline(b) for b in SPECS[op].baselines() if b.device in devices]
        for device in ("cpu", "gpu"):
            dev_targets = []
            for t in (t for t in ts if t.device == device):
                reason = unavailable_reason(t)
                if reason is None and device == "gpu":
                    gpu = gpu or [gpu_present()]
                    if not gpu[0][0]:
                        reason = f"no GPU here ({gpu[0][1]})"
                if reason:
                    skipped.append((t, reason))
                else:
                    dev_targets.append(t)
            if not dev_targets:
                continue
            # Baselines run in every dtype the variants on this device run in (fp16 tensor-core
            # variants get an fp16 baseline).
            chosen = {}
            for t in dev_targets:
                if t.kind == "variant":
                    dt, why = choose_dtype(t, dtype)
                    if why:
                        skipped.append((t, why))
                    else:
                        chosen[t] = [dt]
            var_dtypes = sorted({d for ds in chosen.values() for d in ds})
            for t in dev_targets:
                if t.kind == "baseline":
                    ds = [d for d in var_dtypes if d in t.dtypes]
                    if ds:
                        chosen[t] = ds
                    elif var_dtypes:
                        skipped.append((t, f"takes {', '.join(t.dtypes)}, not {', '.join(var_dtypes)}"))
            if sizes and op in sizes:
                cases, late_cases = sizes[op], []
            else:
                cases, late_cases = SPECS[op].bench_cases(device), SPECS[op].bench_late_cases(device)
            for dest, cs in ((buckets[device, False], cases), (buckets[device, True], late_cases)):
                for case in cs:
                    for dt in sorted({d for ds in chosen.values() for d in ds}, key=lambda d: (d != "float32", d)):
                        for t in dev_targets:  # registry order: the ladder, then the baselines
                            if dt in chosen.get(t, ()):
                                dest.append(Entry(t, case, dt))
    return [e for k in (("gpu", False), ("gpu", True), ("cpu", False), ("cpu", True)) for e in buckets[k]], skipped
