"""Benchmarks that answer "which kernel, and CPU or GPU?": the sweep and the CPU-vs-GPU comparison.

Everything is generated from the registry (``pykern.variants()``) and the op specs
(``pykern.ops.SPECS``): a newly registered variant is benchmarked without touching this file.

Sections: benchmark cases (data, kept apart from the test cases in the op specs), size parsing,
targets (registered variants plus library baselines), the environment record, ceilings measured
in the same run, running one entry (check first, then time), the sweep, the comparison, text
tables, plots, and the one-screen summary that bench/device_run.sh prints.

Vocabulary: a *target* is something that can be timed (a registered variant, or a baseline such
as cuBLAS through CuPy); an *entry* is a target on one case in one dtype; a *case* is the op
spec's dict of sizes and parameters.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Optional

import numpy as np

from . import __version__
from ._arrays import describe
from ._backends import (SIM_TIMING_NOTE, availability, backends, cuda_simulator_enabled, on_simulator,
                        simulator_enabled)
from ._check import compare, tolerance_key
from ._dispatch import Unsupported, prepare
from ._registry import BACKENDS, Variant, variants
from ._timing import EventClock, gpu_flusher, host_clock, measure
from .ops import SPECS

SCHEMA = "pykern-bench/1"

# --- benchmark cases --------------------------------------------------------------------------


def _mm(m: int, n: int, k: int) -> dict:
    return {"M": m, "N": n, "K": k}


def _conv(n: int, hw: int, c: int, k: int, rs: int, pad: int, stride: int) -> dict:
    return dict(N=n, C=c, H=hw, W=hw, K=k, R=rs, S=rs, padding=pad, stride=stride)


# DeepBench ResNet conv layers as (H=W, C, K, R=S, pad, stride): the four 3x3 stages, the 1x1
# expansion and the 7x7/2 first layer.
RESNET_LAYERS = [(56, 64, 64, 3, 1, 1), (28, 128, 128, 3, 1, 1), (14, 256, 256, 3, 1, 1),
                 (7, 512, 512, 3, 1, 1), (56, 64, 256, 1, 0, 1), (224, 3, 64, 7, 3, 2)]

# The default sweep per device. CPU sizes are small enough for the whole CPU sweep to finish in a
# minute or two on a 2-core machine; GPU sizes reach the shapes where kernels differ.
BENCH_CASES = {
    "matmul": {
        "cpu": [_mm(n, n, n) for n in (128, 256, 512, 1024)],
        "gpu": [_mm(n, n, n) for n in (128, 256, 512, 1024, 2048, 4096)]
        + [_mm(1760, 128, 1760), _mm(4096, 7000, 4096)],  # DeepBench GEMM (M, N, K)
    },
    "relu": {
        "cpu": [{"shape": (1 << e,)} for e in (20, 22, 24)],
        "gpu": [{"shape": (1 << e,)} for e in (20, 22, 24, 26)],
    },
    "conv2d": {
        "cpu": [_conv(1, *layer) for layer in RESNET_LAYERS],
        "gpu": [_conv(8, *layer) for layer in RESNET_LAYERS],
    },
}

# Cases a default sweep runs after every other entry, while its time budget lasts: checking a
# 2^28-element (1 GiB) relu output against the float64 reference on the host takes seconds per
# target, which a budgeted run (bench/device_run.sh) may not have.
BENCH_LATE_CASES = {
    "relu": {"gpu": [{"shape": (1 << 28,)}]},
}

# CPU vs GPU: a range wide enough to contain the size where the GPU starts to win, in both
# the data-on-device and the copies-counted settings.
COMPARE_CASES = {
    "matmul": [_mm(n, n, n) for n in (16, 32, 64, 128, 256, 512, 1024, 2048)],
    "relu": [{"shape": (1 << e,)} for e in range(10, 27, 2)],
    "conv2d": [_conv(1, hw, 64, 64, 3, 1, 1) for hw in (7, 14, 28, 56, 112)],
}

# An op whose spec names a forward op (the backward ops: the gradients of those same layers) takes
# that op's cases and --sizes forms.
for _op, _spec in SPECS.items():
    _fwd = getattr(_spec, "forward", None)
    if _fwd:
        BENCH_CASES.setdefault(_op, BENCH_CASES[_fwd])
        COMPARE_CASES.setdefault(_op, COMPARE_CASES[_fwd])

# An entry whose timing cannot be trusted is re-timed once (with a longer budget) and, if it is
# still suspect, printed with a flag saying why, never plainly: a spread (IQR) above this share of
# the median; a rate above the ceiling measured in the same run; other processes taking more
# than BUSY_SHARE of the CPUs while a CPU entry ran.
NOISY_IQR_REL = 0.10
BUSY_SHARE = 0.25
RETIME_BUDGET_FACTOR = 3
DEFAULT_ENTRY_BUDGET_S = 0.3  # timed wall time per entry once the minimum repetitions are done
SLOW_RUN_S = 1.0  # a target whose median run is slower than this skips its larger cases in a sweep

# --- size parsing -----------------------------------------------------------------------------

_CONV_ID = re.compile(r"^N(\d+)C(\d+)H(\d+)W(\d+)K(\d+)R(\d+)S(\d+)((?:_[a-z]+[0-9x]*)*)$")
_CONV_SUFFIX = {"s": "stride", "p": "padding", "d": "dilation"}


# What --sizes takes, per op, in plain words (error messages and --help print these).
SIZE_FORMS = {
    "matmul": "1024 (a square), 2^10, or MxNxK such as 1760x128x1760",
    "relu": "1048576, 2^20, or a shape AxB such as 1024x1024",
    "conv2d": "56 or 2^6 (a 3x3, 64->64, pad-1 layer on a 1x64x56x56 input), or a case id as the "
              "tables print it, such as N8C64H56W56K64R3S3_p1x1 (suffixes _sHxW, _pHxW, _dHxW, _gG, "
              "_relu, _bias)",
}
SIZE_FORMS["matmul"] += " (suffix _tA, _tB: transpose_a, transpose_b)"
SIZE_FORMS.update({op: SIZE_FORMS[spec.forward] for op, spec in SPECS.items() if getattr(spec, "forward", None)})


def size_form(op: str) -> str:
    """The op whose cases, sizes and plot axes ``op`` shares: a backward op's forward op, else itself."""
    return getattr(SPECS[op], "forward", None) or op


def parse_size(op: str, token: str) -> dict:
    """One ``--sizes`` token -> a case of ``op``; the forms are in SIZE_FORMS. Any number may
    be written as a power of two, 2^N, for every op."""
    tok = token.strip()
    if op not in SPECS:
        raise ValueError(f"op: unknown op {op!r}; expected one of {list(SPECS)}")
    bad = ValueError(f"sizes: {tok!r} is not a size for {op}; expected {SIZE_FORMS[op]}")
    # 2^N -> its value before parsing (an exponent too large for any array leaves a "!" that no
    # form accepts).
    tok = re.sub(r"2\^(\d+)", lambda m: str(1 << int(m.group(1))) if int(m.group(1)) < 63 else "!", tok)
    form = size_form(op)
    if form == "matmul":
        if re.fullmatch(r"\d+", tok):
            n = int(tok)
            return _positive(_mm(n, n, n), tok)
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)(_tA)?(_tB)?", tok)
        if m:
            flags = {"transpose_a": True} if m.group(4) else {}
            flags.update({"transpose_b": True} if m.group(5) else {})
            return _positive({**_mm(*map(int, m.groups()[:3])), **flags}, tok)
        raise bad
    if form == "relu":
        if re.fullmatch(r"\d+(x\d+)*", tok):
            return _positive({"shape": tuple(int(p) for p in tok.split("x"))}, tok)
        raise bad
    if form == "conv2d":
        if re.fullmatch(r"\d+", tok):
            return _positive(_conv(1, int(tok), 64, 64, 3, 1, 1), tok)
        m = _CONV_ID.fullmatch(tok)
        if not m:
            raise bad
        n, c, h, w, k, r, s = map(int, m.groups()[:7])
        case = dict(N=n, C=c, H=h, W=w, K=k, R=r, S=s)
        for part in filter(None, m.group(8).split("_")):
            if part == "relu":
                case["activation"] = "relu"
            elif part == "bias":
                case["bias"] = True
            elif part[0] == "g" and part[1:].isdigit():
                case["groups"] = int(part[1:])
            elif part[0] in _CONV_SUFFIX and re.fullmatch(r"\d+x\d+", part[1:]):
                case[_CONV_SUFFIX[part[0]]] = tuple(int(v) for v in part[1:].split("x"))
            else:
                raise bad
        return _positive(case, tok)
    raise bad


def _positive(case: dict, tok: str) -> dict:
    dims = [v for k, v in case.items() if k in ("M", "N", "K", "C", "H", "W", "R", "S")] + list(case.get("shape", ()))
    if any(int(v) < 1 for v in dims):
        raise ValueError(f"sizes: every dimension in {tok!r} must be >= 1")
    return case


def parse_sizes(op: str, text: str) -> list:
    cases = [parse_size(op, t) for t in text.split(",") if t.strip()]
    if not cases:
        raise ValueError("sizes: expected a comma-separated list, got nothing")
    return cases


def work(op: str, case: dict, dtype: str = "float32") -> float:
    """What the op's rate counts for this case: FLOPs, or bytes for memory-bound ops."""
    spec = SPECS[op]
    return spec.bytes_moved(case, itemsize(dtype)) if spec.rate_unit == "GB/s" else spec.flops(case)


def itemsize(dtype: str) -> int:
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


# --- targets ----------------------------------------------------------------------------------


def device_of(backend: str) -> str:
    return "cpu" if backend == "numpy" else "gpu"


@dataclass(frozen=True)
class Baseline:
    """A library implementation timed in the same run, as the yardstick for the variants."""

    op: str
    device: str  # "cpu" or "gpu"
    name: str  # the library (and where it runs): numpy, torch-cpu, cupy, torch-cuda
    technique: str
    lib: str  # which availability check and CUDA events apply: numpy, torch_cpu, cupy, torch
    dtypes: tuple
    build: Callable = field(repr=False, compare=False)  # (arrays, params) -> (run, sync, result)


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


# Settings that change what the baselines compute; every result file states them.
BASELINE_SETTINGS = [
    "torch: torch.backends.cudnn.allow_tf32 = False and torch.backends.cuda.matmul.allow_tf32 = "
    "False (fp32 baselines compute in fp32, not TF32); torch.backends.cudnn.benchmark = True "
    "(cuDNN picks its fastest algorithm during the untimed check run)",
    "cupy: CUPY_TF32 is left unset (cuBLAS computes fp32 in fp32)",
]


def _noop() -> None:
    return None


@lru_cache(maxsize=None)
def _lib_reason(lib: str) -> Optional[str]:
    """None when the baseline library can run here, else why not."""
    if lib == "numpy":
        return None
    if lib in ("torch", "torch_cpu"):
        try:
            import torch
        except Exception as e:
            return f"torch is not installed or does not import ({type(e).__name__}: {e})"
        if lib == "torch":
            if not torch.cuda.is_available():
                return "torch sees no CUDA GPU (torch.cuda.is_available() is False)"
            _torch_settings(torch)
        return None
    if lib == "cupy":
        try:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "cupy sees no CUDA GPU"
        except Exception as e:
            return f"cupy is not installed or finds no GPU ({type(e).__name__}: {e})"
        return None
    return f"unknown baseline library {lib!r}"


def _torch_settings(torch) -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


def _to_torch(x: Optional[np.ndarray], device: str):
    import torch
    if x is None:
        return None
    if x.dtype.name == "bfloat16":  # ml_dtypes' bfloat16 has no torch equivalent: reinterpret bits
        t = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device) if device != "cpu" else t.clone()


def _from_torch(t) -> np.ndarray:
    import torch
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _torch_sync(device: str) -> Callable[[], None]:
    if device == "cpu":
        return _noop
    import torch
    return torch.cuda.synchronize


def _cupy_sync() -> None:
    import cupy
    cupy.cuda.Device().synchronize()


def _operands(arrays, params):
    """matmul's op(a), op(b): the stored arrays, transposed (as views) where the case says so."""
    a, b = arrays["a"], arrays["b"]
    return (a.T if params.get("transpose_a") else a), (b.T if params.get("transpose_b") else b)


def _np_matmul(arrays, params):
    a, b = _operands(arrays, params)
    c = np.empty((a.shape[0], b.shape[1]), a.dtype)
    return (lambda: np.matmul(a, b, out=c)), _noop, (lambda: c)


def _np_relu(arrays, params):
    x = arrays["x"]
    y = np.empty_like(x)
    zero = np.zeros((), x.dtype)
    return (lambda: np.maximum(x, zero, out=y)), _noop, (lambda: y)


def _torch_builder(op: str, device: str):
    def build(arrays, params):
        import torch
        ts = {k: _to_torch(v, device) for k, v in arrays.items()}
        out = {}
        if op == "matmul":
            a, b = _operands(ts, params)
            out["y"] = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)

            def run():
                torch.matmul(a, b, out=out["y"])
        elif op == "relu":
            def run():
                out["y"] = torch.relu(ts["x"])
        elif op == "conv2d":
            fn = torch.nn.functional.conv2d

            def run():
                y = fn(ts["x"], ts["w"], ts.get("bias"), stride=params["stride"], padding=params["padding"],
                       dilation=params["dilation"], groups=params["groups"])
                out["y"] = torch.relu_(y) if params["activation"] == "relu" else y
        elif op == "relu_backward":
            def run():
                out["y"] = torch.ops.aten.threshold_backward(ts["dy"], ts["x"], 0)
        elif op in ("conv2d_backward_input", "conv2d_backward_weight"):
            conv = {k: params[k] for k in ("stride", "padding", "dilation", "groups")}

            def run():
                if op == "conv2d_backward_input":
                    out["y"] = torch.nn.grad.conv2d_input(params["x_shape"], ts["w"], ts["dy"], **conv)
                else:
                    out["y"] = torch.nn.grad.conv2d_weight(ts["x"], params["w_shape"], ts["dy"], **conv)
        else:
            raise ValueError(op)
        return run, _torch_sync(device), (lambda: _from_torch(out["y"]))
    return build


def _cupy_builder(op: str):
    def build(arrays, params):
        import cupy
        ds = {k: (None if v is None else cupy.asarray(v)) for k, v in arrays.items()}
        if op == "matmul":
            a, b = _operands(ds, params)
            y = cupy.empty((a.shape[0], b.shape[1]), a.dtype)

            def run():
                cupy.matmul(a, b, out=y)
        elif op == "relu":
            x = ds["x"]
            y = cupy.empty_like(x)
            zero = x.dtype.type(0)

            def run():
                cupy.maximum(x, zero, out=y)
        else:
            raise ValueError(op)
        return run, _cupy_sync, (lambda: cupy.asnumpy(y))
    return build


_NP = ("float16", "float32", "float64")
_TORCH = ("float16", "bfloat16", "float32", "float64")

# Per (op, device), the first baseline that runs is the one the ratio refers to; the others are
# timed alongside for context.
BASELINES = [
    Baseline("matmul", "cpu", "numpy", "np.matmul: the machine's BLAS (sgemm/dgemm)", "numpy",
             ("float32", "float64"), _np_matmul),
    Baseline("matmul", "cpu", "torch-cpu", "torch.matmul on the CPU", "torch_cpu", _TORCH,
             _torch_builder("matmul", "cpu")),
    Baseline("matmul", "gpu", "cupy", "cupy.matmul: cuBLAS GEMM (no TF32)", "cupy", _NP, _cupy_builder("matmul")),
    Baseline("matmul", "gpu", "torch-cuda", "torch.matmul: cuBLAS GEMM, TF32 off", "torch", _TORCH,
             _torch_builder("matmul", "cuda")),
    Baseline("conv2d", "cpu", "torch-cpu", "torch F.conv2d on the CPU (oneDNN)", "torch_cpu", _TORCH,
             _torch_builder("conv2d", "cpu")),
    Baseline("conv2d", "gpu", "torch-cuda", "torch F.conv2d: cuDNN, TF32 off, autotuned", "torch", _TORCH,
             _torch_builder("conv2d", "cuda")),
    Baseline("relu", "cpu", "numpy", "np.maximum(x, 0, out=y)", "numpy", _NP, _np_relu),
    Baseline("relu", "cpu", "torch-cpu", "torch.relu on the CPU", "torch_cpu", _TORCH, _torch_builder("relu", "cpu")),
    Baseline("relu", "gpu", "torch-cuda", "torch.relu", "torch", _TORCH, _torch_builder("relu", "cuda")),
    Baseline("relu", "gpu", "cupy", "cupy.maximum(x, 0, out=y)", "cupy", _NP, _cupy_builder("relu")),
    Baseline("relu_backward", "cpu", "torch-cpu", "torch's threshold_backward on the CPU", "torch_cpu", _TORCH,
             _torch_builder("relu_backward", "cpu")),
    Baseline("relu_backward", "gpu", "torch-cuda", "torch's threshold_backward", "torch", _TORCH,
             _torch_builder("relu_backward", "cuda")),
] + [Baseline(op, dev, f"torch-{dev.replace('gpu', 'cuda')}",
              f"torch.nn.grad.{op.replace('_backward', '')} (aten.convolution_backward" +
              (": oneDNN)" if dev == "cpu" else ": cuDNN, TF32 off)"), "torch_cpu" if dev == "cpu" else "torch",
              _TORCH, _torch_builder(op, "cpu" if dev == "cpu" else "cuda"))
     for op in ("conv2d_backward_input", "conv2d_backward_weight") for dev in ("cpu", "gpu")]


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


def gpu_present() -> tuple[bool, str]:
    """(whether a real GPU can run pykern's kernels here, the reason from pykern.backends())."""
    bk = backends()
    if bk["cuda"].available and not cuda_simulator_enabled():
        return True, bk["cuda"].reason
    if bk["numba"].available and not simulator_enabled():
        return True, bk["numba"].reason
    why = [f"cuda: {bk['cuda'].reason}", f"numba: {bk['numba'].reason}"]
    if simulator_enabled():
        why[1] = "numba: CUDA simulator only (timings meaningless)"
    return False, "; ".join(why)


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
    sizes: {op: [case, ...]} replacing the default cases of BENCH_CASES for every device.
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
    selected = [v for op in ops for v in variants(op) if v.backend in backends_ and (names is None or v.name in names)]
    if names is not None:
        missing = set(names) - {v.name for v in selected}
        if missing:
            known = sorted({v.name for op in ops for v in variants(op) if v.backend in backends_})
            raise ValueError(f"variant: no variant named {', '.join(sorted(missing))} for op {', '.join(ops)} "
                             f"on backend {', '.join(backends_)}; known: {', '.join(known)}")
    has_gpu, gpu_reason = gpu_present()
    # A sweep with a time budget runs the entries in this order and skips what is left when the
    # budget is used up: the GPU ladder first (the reason a GPU machine is used), then the GPU's
    # late cases, then the CPU (whose default variants the comparison also times).
    buckets = {(d, late): [] for d in ("gpu", "cpu") for late in (False, True)}
    skipped = []
    for op in ops:
        ts = [Target.of_variant(v) for v in selected if v.op == op]
        devices = sorted({t.device for t in ts})
        if with_baselines:
            ts += [Target.of_baseline(b) for b in BASELINES if b.op == op and b.device in devices]
        for device in ("cpu", "gpu"):
            dev_targets = []
            for t in (t for t in ts if t.device == device):
                reason = unavailable_reason(t)
                if reason is None and device == "gpu" and not has_gpu:
                    reason = f"no GPU here ({gpu_reason})"
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
                cases, late_cases = BENCH_CASES[op][device], BENCH_LATE_CASES.get(op, {}).get(device, [])
            for dest, cs in ((buckets[device, False], cases), (buckets[device, True], late_cases)):
                for case in cs:
                    for dt in sorted({d for ds in chosen.values() for d in ds}, key=lambda d: (d != "float32", d)):
                        for t in dev_targets:  # registry order: the ladder, then the baselines
                            if dt in chosen.get(t, ()):
                                dest.append(Entry(t, case, dt))
    return [e for k in (("gpu", False), ("gpu", True), ("cpu", False), ("cpu", True)) for e in buckets[k]], skipped


# --- environment ------------------------------------------------------------------------------


def _version_str(v: int) -> str:
    """CUDA encodes versions as 1000*major + 10*minor."""
    return f"{v // 1000}.{(v % 1000) // 10}" if v else "unknown"


def gpu_info() -> tuple[Optional[dict], Optional[str]]:
    """(device properties, None) from pykern._cuda (else CuPy), or (None, why not)."""
    why = []
    if availability("cuda").available:
        try:
            from ._device import ext
            p = dict(ext().device_properties())
            p["compute_capability"] = list(p["compute_capability"])
            p["driver_version"] = _version_str(p["driver_version"])
            p["cuda_runtime_version"] = _version_str(p.pop("runtime_version"))
            p["source"] = "pykern._cuda.device_properties()"
            return p, None
        except Exception as e:
            why.append(f"pykern._cuda: {e}")
    else:
        why.append(f"pykern._cuda: {availability('cuda').reason}")
    if _lib_reason("cupy") is None:
        import cupy
        rt = cupy.cuda.runtime
        p = rt.getDeviceProperties(cupy.cuda.Device().id)
        name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
        return {"name": name, "compute_capability": [p["major"], p["minor"]],
                "multiprocessors": p["multiProcessorCount"], "total_memory": p["totalGlobalMem"],
                "l2_cache_bytes": p["l2CacheSize"], "driver_version": _version_str(rt.driverGetVersion()),
                "cuda_runtime_version": _version_str(rt.runtimeGetVersion()),
                "source": "cupy.cuda.runtime.getDeviceProperties()"}, None
    has_gpu, reason = gpu_present()
    if has_gpu:  # numba only
        from numba import cuda
        d = cuda.get_current_device()
        name = getattr(d, "name", "unknown GPU")
        info = {"name": name.decode() if isinstance(name, bytes) else name,
                "compute_capability": list(getattr(d, "compute_capability", ())),
                "source": "numba.cuda.get_current_device()"}
        for key, attr in (("multiprocessors", "MULTIPROCESSOR_COUNT"), ("l2_cache_bytes", "L2_CACHE_SIZE")):
            try:
                info[key] = getattr(d, attr)
            except Exception:  # an attribute this numba-cuda does not expose: leave it out
                pass
        return info, None
    return None, reason


def cpu_info() -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"model": model, "cores": os.cpu_count(), "usable_cores": usable}


def git_commit() -> Optional[str]:
    """The checkout's commit: $PYKERN_GIT_COMMIT (set by bench/device_run.sh for an installed
    package), else git in the source tree, else git in the working directory."""
    if os.environ.get("PYKERN_GIT_COMMIT"):
        return os.environ["PYKERN_GIT_COMMIT"]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for d in (here, os.getcwd()):
        try:
            out = subprocess.run(["git", "-C", d, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode == 0:
            return out.stdout.strip()
    return None


def _lib_version(name: str) -> Optional[str]:
    mod = sys.modules.get(name)
    if mod is None:
        return None  # not imported in this run: not used
    return getattr(mod, "__version__", "unknown")


# What identifies the machine, not the run: pytest-benchmark compares machine_info between saved
# runs and warns when it differs, so nothing here may change from one run to the next (no date,
# commit, library list or current clock frequency).
_GPU_IDENTITY = ("name", "compute_capability", "multiprocessors", "total_memory", "l2_cache_bytes",
                 "driver_version", "cuda_runtime_version")


def machine_identity() -> dict:
    gpu, _ = gpu_info()
    return {"cpu": cpu_info(), "gpu": None if gpu is None else {k: gpu[k] for k in _GPU_IDENTITY if k in gpu},
            "python": platform.python_version(), "platform": platform.platform()}


def environment() -> dict:
    gpu, gpu_reason = gpu_info()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "gpu": gpu,
        "gpu_reason": gpu_reason,
        "backends": {n: {"available": a.available, "reason": a.reason} for n, a in backends().items()},
        "libraries": {n: _lib_version(n) for n in ("numpy", "numba", "cupy", "torch")},
        "settings": BASELINE_SETTINGS,
    }


# --- ceilings ---------------------------------------------------------------------------------


def ceiling_key(op: str, device: str, dtype: str) -> str:
    return f"{device}:memory" if SPECS[op].rate_unit == "GB/s" else f"{device}:compute:{dtype}"


def _ceiling(run, clock, sync, work_amount, unit, how, budget_s=0.5) -> dict:
    """A ceiling is the best rate this machine reached: the fastest of the runs, not the median."""
    timing, samples = measure(run, clock, sync=sync, warmup=1, min_reps=3, max_reps=20, budget_s=budget_s)
    best = min(samples)
    return {"rate": work_amount / best / 1e9, "unit": unit, "how": how + "; fastest of the runs",
            "best_s": best, "median_s": timing.median}


def cpu_memory_ceiling(quick: bool = False) -> dict:
    n = (1 << 22) if quick else (1 << 25)
    src = np.random.default_rng(0).random(n, dtype=np.float32)
    dst = np.empty_like(src)
    return dict(_ceiling(lambda: np.copyto(dst, src), host_clock, _noop, 2.0 * src.nbytes, "GB/s",
                         f"np.copyto of {src.nbytes >> 20} MiB (read + write bytes)"), bytes=2.0 * src.nbytes)


def cpu_compute_ceiling(dtype: str, quick: bool = False) -> dict:
    if dtype not in ("float32", "float64"):
        return {"rate": None, "unit": "GFLOP/s", "reason": f"the CPU ceiling is a NumPy BLAS GEMM rate; "
                                                             f"BLAS has no {dtype} GEMM"}
    n = 256 if quick else 2048
    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n)).astype(dtype) for _ in range(2))
    c = np.empty((n, n), dtype)
    return _ceiling(lambda: np.matmul(a, b, out=c), host_clock, _noop, 2.0 * n ** 3, "GFLOP/s",
                    f"np.matmul {n}^3 {dtype} (BLAS {'s' if dtype == 'float32' else 'd'}gemm)")


def gpu_memory_ceiling() -> dict:
    nbytes = 1 << 30
    errors = []
    try:
        from ._device import DeviceArray, ext
        src, dst = DeviceArray.empty((nbytes,), np.uint8), DeviceArray.empty((nbytes,), np.uint8)
        mod = ext()
        mod.memset(src.ptr, 1, nbytes)
        return _ceiling(lambda: mod.memcpy_dtod(dst.ptr, src.ptr, nbytes), EventClock("pykern"), mod.synchronize,
                        2.0 * nbytes, "GB/s", "device-to-device cudaMemcpyAsync of 1 GiB (read + write bytes)")
    except Exception as e:
        errors.append(f"pykern._cuda: {e}")
    if _lib_reason("cupy") is None:
        import cupy
        src, dst = cupy.ones(nbytes, cupy.uint8), cupy.empty(nbytes, cupy.uint8)
        return _ceiling(lambda: cupy.copyto(dst, src), EventClock("cupy"), _cupy_sync, 2.0 * nbytes, "GB/s",
                        "cupy.copyto of 1 GiB on the device (read + write bytes)")
    errors.append(f"cupy: {_lib_reason('cupy')}")
    if _lib_reason("torch") is None:
        import torch
        src = torch.ones(nbytes, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        return _ceiling(lambda: dst.copy_(src), EventClock("torch"), torch.cuda.synchronize, 2.0 * nbytes, "GB/s",
                        "torch copy_ of 1 GiB on the device (read + write bytes)")
    errors.append(f"torch: {_lib_reason('torch')}")
    return {"rate": None, "unit": "GB/s", "reason": "no device-copy ceiling: " + "; ".join(errors)}


def gpu_compute_ceiling(dtype: str, quick: bool = False) -> dict:
    n = 2048 if quick else 8192
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    host = {k: rng.random((n, n), dtype=np.float32) for k in "ab"}  # GEMM speed does not depend on the values
    if dtype in _NP and _lib_reason("cupy") is None:
        import cupy
        a, b = (cupy.asarray(host[k]).astype(dtype) for k in "ab")
        c = cupy.empty((n, n), dtype)
        return _ceiling(lambda: cupy.matmul(a, b, out=c), EventClock("cupy"), _cupy_sync, flops, "GFLOP/s",
                        f"cuBLAS GEMM {n}^3 {dtype} through cupy.matmul")
    if _lib_reason("torch") is None:
        import torch
        tdt = getattr(torch, dtype)
        a, b = (torch.from_numpy(host[k]).to("cuda").to(tdt) for k in "ab")
        c = torch.empty((n, n), dtype=tdt, device="cuda")
        return _ceiling(lambda: torch.matmul(a, b, out=c), EventClock("torch"), torch.cuda.synchronize, flops,
                        "GFLOP/s", f"cuBLAS GEMM {n}^3 {dtype} through torch.matmul (TF32 off)")
    return {"rate": None, "unit": "GFLOP/s",
            "reason": f"no cuBLAS to measure the {dtype} GEMM ceiling (cupy: {_lib_reason('cupy')}; "
                      f"torch: {_lib_reason('torch')})"}


def measure_ceilings(needed: set, quick: bool = False) -> dict:
    """Ceilings for every key in ``needed`` (see ceiling_key), measured now on this machine."""
    out = {}
    for key in sorted(needed):
        parts = key.split(":")
        try:
            if parts[0] == "cpu":
                out[key] = cpu_memory_ceiling(quick) if parts[1] == "memory" else cpu_compute_ceiling(parts[2], quick)
            else:
                out[key] = gpu_memory_ceiling() if parts[1] == "memory" else gpu_compute_ceiling(parts[2], quick)
        except Exception as e:  # a ceiling that cannot be measured leaves "% of ceiling" empty
            out[key] = {"rate": None, "reason": f"{type(e).__name__}: {e}"}
    return out


# --- load from other processes ---------------------------------------------------------------


def _cpu_jiffies() -> Optional[tuple]:
    """(busy, total) jiffies of the whole machine from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            v = [int(a) for a in f.readline().split()[1:9]]  # guest times are inside user/nice already
    except (OSError, ValueError):
        return None
    return sum(v) - v[3] - v[4], sum(v)  # idle and iowait are not busy


class OtherLoad:
    """Share of the machine's CPU time that other processes used while the block ran (None
    where /proc/stat is missing). Our own threads (BLAS workers included) are subtracted."""

    share: Optional[float] = None

    def __enter__(self):
        self._j0, self._t0 = _cpu_jiffies(), os.times()
        return self

    def __exit__(self, *exc):
        j1, t1 = _cpu_jiffies(), os.times()
        if self._j0 is None or j1 is None:
            return
        mine = (t1.user + t1.system - self._t0.user - self._t0.system) * os.sysconf("SC_CLK_TCK")
        self.share = min(1.0, max(0.0, (j1[0] - self._j0[0] - mine) / max(1, j1[1] - self._j0[1])))


# --- one entry: check, then time -------------------------------------------------------------


class CaseData:
    """Seeded host inputs for one (op, case, dtype), and the float64 reference, computed once
    and shared by every target run on that case."""

    def __init__(self, op: str, case: dict, dtype: str, seed: int = 0):
        self.op, self.case, self.dtype = op, case, dtype
        spec = SPECS[op]
        self.arrays, self.raw_params = spec.make_inputs(case, dtype, np.random.default_rng(seed))
        infos = {k: (None if v is None else describe(v, k)) for k, v in self.arrays.items()}
        _, _, self.params = spec.validate(infos, self.raw_params)
        self._ref = None

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ref is None:
            spec = SPECS[self.op]
            a64 = {k: (None if v is None else v.astype(np.float64)) for k, v in self.arrays.items()}
            self._ref = (spec.reference(a64, self.params), spec.magnitude(a64, self.params))
        return self._ref

    def shapes(self) -> dict:
        return {k: list(v.shape) for k, v in self.arrays.items() if v is not None}


class CaseCache:
    """Keeps the CaseData of the most recent cases (sweeps visit one case at a time)."""

    def __init__(self, size: int = 1, seed: int = 0):
        self.size, self.seed, self._items = size, seed, {}

    def get(self, op: str, case: dict, dtype: str) -> CaseData:
        key = (op, SPECS[op].case_id(case), dtype)
        if key not in self._items:
            while len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = CaseData(op, case, dtype, self.seed)
        return self._items[key]


@dataclass
class Runner:
    run: Callable[[], None]  # the timed launch, on data already in place
    sync: Callable[[], None]
    result: Callable[[], object]  # the output as a host array (after the last run)
    clock: Callable  # host_clock or a GPU EventClock


def clock_for(t: Target):
    if t.device == "cpu":
        return host_clock
    if t.kind == "variant":
        return EventClock("pykern" if t.backend == "cuda" else "numba")
    return EventClock(t.baseline.lib)


def make_runner(t: Target, data: CaseData) -> Runner:
    """Set ``t`` up on ``data`` (inputs uploaded outside any timing). Raises Unsupported."""
    if t.kind == "variant":
        p = prepare(t.op, data.arrays, data.raw_params, backend=t.backend, variant=t.name, poison=True)
        return Runner(p.run, p.sync, p.finish, clock_for(t))
    run, sync, result = t.baseline.build(data.arrays, data.params)
    return Runner(run, sync, result, clock_for(t))


def check_runner(runner: Runner, data: CaseData):
    """Run once and compare with the float64 reference: (Comparison, seconds for that run)."""
    t0 = time.perf_counter()
    runner.run()
    runner.sync()
    once = time.perf_counter() - t0
    got = np.asarray(runner.result())
    ref, mag = data.reference()
    return compare(got, ref, mag, tolerance_key(data.dtype, got.dtype)), once


_FLUSHERS: dict = {}


def flusher(device: str) -> tuple[Optional[Callable[[], None]], str]:
    """(flush or None, how) for ``device``, created once per process (see pykern._timing)."""
    if device not in _FLUSHERS:
        if device == "cpu":
            _FLUSHERS[device] = (None, "none: CPU runs go back to back (see pykern/_timing.py)")
        else:
            info, _ = gpu_info()
            _FLUSHERS[device] = gpu_flusher((info or {}).get("l2_cache_bytes"))
    return _FLUSHERS[device]


def new_record(e: Entry) -> dict:
    t = e.target
    return {"op": t.op, "backend": t.backend, "variant": t.name, "key": t.key, "kind": t.kind,
            "device": t.device, "technique": t.technique, "dtype": e.dtype, "case": e.case,
            "case_id": e.case_id, "shapes": None, "status": "skipped", "reason": e.skip,
            "median_s": None, "q25_s": None, "q75_s": None, "iqr_s": None, "iqr_rel": None, "runs": 0,
            "rate": None, "unit": SPECS[t.op].rate_unit, "ceiling": None, "pct_of_ceiling": None,
            "baseline": None, "ratio_to_baseline": None, "check": None}


def run_entry(e: Entry, cache: CaseCache, *, ceilings: Optional[dict] = None, budget_s: float = DEFAULT_ENTRY_BUDGET_S,
              max_reps: int = 30, min_reps: int = 3, flush: bool = True) -> dict:
    """Check ``e`` against the reference, then (when correct) time it. Returns its JSON record.

    Status: ok; wrong (a variant that fails the check is reported, not timed); inexact (a
    baseline that fails the check: still timed, as the yardstick it is); skipped; error."""
    rec = new_record(e)
    if e.skip:
        return rec
    t = e.target
    try:
        data = cache.get(t.op, e.case, e.dtype)
        rec["shapes"] = data.shapes()
        runner = make_runner(t, data)
        cmp, once = check_runner(runner, data)
    except Unsupported as ex:
        rec["reason"] = str(ex)
        return rec
    except ImportError as ex:  # e.g. ml_dtypes for bfloat16 inputs: an optional dependency
        rec["reason"] = f"needs a module that is not installed: {ex}"
        return rec
    except Exception as ex:  # a crash in one target must not stop the sweep
        rec.update(status="error", reason=f"{type(ex).__name__}: {ex}")
        return rec
    rec["once_s"] = once
    rec["check"] = {"ok": cmp.ok, "max_rel_err": cmp.max_rel_err, "n_bad": cmp.n_bad, "n_total": cmp.n_total,
                    "tolerance": cmp.dtype, "message": cmp.message()}
    if not cmp.ok and t.kind == "variant":
        rec.update(status="wrong", reason="does not match the float64 reference: not timed")
        return rec
    try:
        fl = flusher(t.device)[0] if flush else None
        timing, _ = measure(runner.run, runner.clock, sync=runner.sync, flush=fl, warmup=1 if once < 0.25 else 0,
                            min_reps=min_reps, max_reps=max_reps, budget_s=budget_s)
    except Exception as ex:
        rec.update(status="error", reason=f"while timing: {type(ex).__name__}: {ex}")
        return rec
    rate = work(t.op, e.case, e.dtype) / timing.median / 1e9
    rec.update(status="ok" if cmp.ok else "inexact", reason=None if cmp.ok else "baseline outside the "
               "float64 tolerance: timed anyway", median_s=timing.median, q25_s=timing.q25, q75_s=timing.q75,
               iqr_s=timing.iqr, iqr_rel=timing.spread, runs=timing.runs, rate=rate)
    ceil = (ceilings or {}).get(ceiling_key(t.op, t.device, e.dtype))
    if ceil and ceil.get("rate"):
        rec["ceiling"] = ceiling_key(t.op, t.device, e.dtype)
        rec["pct_of_ceiling"] = 100.0 * rate / ceil["rate"]
    return rec


def entry_flags(rec: dict, ceilings: Optional[dict] = None) -> list:
    """Why ``rec``'s timing is suspect, in words (empty: trust it)."""
    flags = []
    if rec.get("median_s") is None:
        return flags
    if rec.get("iqr_rel") is not None and rec["iqr_rel"] > NOISY_IQR_REL:
        flags.append(f"noisy: IQR is {100 * rec['iqr_rel']:.0f}% of the median (limit {100 * NOISY_IQR_REL:.0f}%)")
    pct = rec.get("pct_of_ceiling")
    if pct is not None and pct > 100:
        why = "the ceiling run or this timing was disturbed"
        ceil = (ceilings or {}).get(rec.get("ceiling") or "", {})
        moved = work(rec["op"], rec["case"], rec["dtype"])
        if rec["unit"] == "GB/s" and ceil.get("bytes") and moved < ceil["bytes"] / 4:
            why = (f"its {_fmt_bytes(moved)} stay in the caches, while "
                   f"the ceiling streams {_fmt_bytes(ceil['bytes'])} through memory")
        flags.append(f"impossible: {pct:.0f}% of the measured ceiling ({why})")
    if rec.get("device") == "cpu" and (rec.get("others_cpu_share") or 0) > BUSY_SHARE:
        flags.append(f"busy: other processes took {100 * rec['others_cpu_share']:.0f}% of the CPUs while it ran")
    return flags


def _fmt_bytes(n: float) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def run_entry_checked(e: Entry, cache: CaseCache, *, ceilings: Optional[dict] = None,
                      budget_s: float = DEFAULT_ENTRY_BUDGET_S, max_reps: int = 30, retime: bool = True) -> dict:
    """run_entry, with the load from other processes recorded; a suspect timing (entry_flags)
    is re-timed once with a longer budget, the steadier of the two kept, and the flags that
    remain are stored in the record's ``flags``."""
    def once(budget):
        with OtherLoad() as load:
            rec = run_entry(e, cache, ceilings=ceilings, budget_s=budget, max_reps=max_reps)
        rec["others_cpu_share"] = load.share
        rec["flags"] = entry_flags(rec, ceilings)
        return rec

    rec = once(budget_s)
    if retime and rec["flags"] and rec["status"] in ("ok", "inexact"):
        again = once(budget_s * RETIME_BUDGET_FACTOR)
        steadier = (len(again["flags"]), again["iqr_rel"]) <= (len(rec["flags"]), rec["iqr_rel"])
        if again["status"] in ("ok", "inexact") and steadier:
            rec = again
        rec["retimed"] = True
    return rec


def add_baseline_ratios(records: list) -> None:
    """ratio_to_baseline = baseline median time / entry median time (> 1: faster than the
    baseline), against the first baseline of BASELINES timed on the same op, device, case and dtype."""
    order = {(b.op, b.device, b.name): i for i, b in enumerate(BASELINES)}
    best = {}
    for r in records:
        if r["kind"] == "baseline" and r["median_s"]:
            k = (r["op"], r["device"], r["case_id"], r["dtype"])
            rank = order[(r["op"], r["device"], r["variant"])]
            if k not in best or rank < best[k][0]:
                best[k] = (rank, r)
    for r in records:
        b = best.get((r["op"], r["device"], r["case_id"], r["dtype"]))
        if b and r["median_s"]:
            r["baseline"] = b[1]["key"]
            r["ratio_to_baseline"] = b[1]["median_s"] / r["median_s"]


# --- progress ---------------------------------------------------------------------------------


class Progress:
    """tqdm on stderr when installed and stderr is a terminal, else a plain counter on stderr."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self.total, self.n, self.enabled, self._bar = total, 0, enabled, None
        if enabled and sys.stderr.isatty():  # a log file gets one plain line per entry instead
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, desc=desc, unit="entry", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def step(self, label: str) -> None:
        self.n += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(label[:60], refresh=False)
            self._bar.update(1)
        else:
            print(f"[{self.n}/{self.total}] {label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --- the sweep --------------------------------------------------------------------------------


def sweep(ops=None, backends_=None, variant_names=None, sizes: Optional[dict] = None, dtype: str = "auto",
          with_baselines: bool = True, max_reps: int = 30, time_budget: Optional[float] = None,
          quick: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """Check and time every planned entry; the result document written as JSON by the CLI."""
    t_start = time.perf_counter()
    load = OtherLoad().__enter__()
    entries, skipped = plan(ops, backends_, variant_names, sizes, dtype, with_baselines)
    needed = {ceiling_key(e.target.op, e.target.device, e.dtype) for e in entries}
    ceilings = measure_ceilings(needed, quick=quick)
    deadline = None if time_budget is None else t_start + time_budget
    entry_budget = 0.05 if quick else DEFAULT_ENTRY_BUDGET_S
    cache = CaseCache(seed=seed)
    slow: dict = {}  # target -> (work, case_id, seconds) of the run that was too slow
    records = []
    bar = Progress(len(entries), "bench", progress)
    for i, e in enumerate(entries):
        t = e.target
        now = time.perf_counter()
        w = work(t.op, e.case, e.dtype)
        if deadline is not None and now >= deadline:
            e.skip = f"time budget of {time_budget:.0f} s used up"
        elif t in slow and w > slow[t][0]:
            e.skip = f"too slow: {slow[t][2]:.2f} s per run at {slow[t][1]}; larger sizes skipped"
        budget = entry_budget
        if deadline is not None:
            budget = max(0.0, min(budget, 0.6 * (deadline - now) / (len(entries) - i)))
        rec = run_entry_checked(e, cache, ceilings=ceilings, budget_s=budget, max_reps=max_reps,
                                retime=deadline is None or time.perf_counter() < deadline)
        if (rec["median_s"] or 0) > SLOW_RUN_S * (0.1 if quick else 1):
            slow.setdefault(t, (w, e.case_id, rec["median_s"]))
        records.append(rec)
        bar.step(f"{t.op} {t.key} {e.case_id} {e.dtype}: {rec['status']}")
    bar.close()
    load.__exit__(None, None, None)
    add_baseline_ratios(records)
    flush_how = {d: flusher(d)[1] for d in sorted({r["device"] for r in records if r["runs"]})}
    return {
        "schema": SCHEMA, "command": "bench", "env": environment(),
        "settings": {"dtype": dtype, "max_reps": max_reps, "entry_budget_s": entry_budget, "seed": seed,
                     "time_budget_s": time_budget, "quick": quick, "cache_flush": flush_how,
                     "timing": "median of repeated runs after a warm-up; GPU: CUDA events on the default "
                               "stream, L2 flushed before every timed run; CPU: perf_counter, runs "
                               "back to back",
                     "ratio_to_baseline": "baseline median time / entry median time (> 1: faster)"},
        "ceilings": ceilings,
        "skipped_targets": [{"op": t.op, "key": t.key, "device": t.device, "reason": r} for t, r in skipped],
        "entries": records,
        "load": load_summary(load.share),
        "elapsed_s": time.perf_counter() - t_start,
    }


def load_summary(share: Optional[float]) -> dict:
    """The run's load from other processes, and the one-line warning when it was busy."""
    out = {"others_cpu_share": share, "busy_share_limit": BUSY_SHARE, "warning": None}
    if share is not None and share > BUSY_SHARE:
        out["warning"] = (f"warning: the machine was busy: other processes took {100 * share:.0f}% of its "
                          f"{os.cpu_count()} CPUs during this run, so CPU timings are low and vary; "
                          "rerun when it is idle")
    return out


# --- the CPU vs GPU comparison ---------------------------------------------------------------


def _full_call(op: str, data: CaseData, backend: str, name: str) -> Callable[[], None]:
    """What a user's call costs: validate, copy in (GPU), launch, wait, copy out."""
    def call():
        p = prepare(op, data.arrays, data.raw_params, backend=backend, variant=name)
        p.run()
        p.finish()
    return call


def crossover(case_ids: list, cpu: list, gpu: list) -> Optional[str]:
    """The first case from which the GPU is faster at that size and every larger one."""
    first = None
    for cid, c, g in zip(case_ids, cpu, gpu):
        if c is None or g is None:
            continue
        if g < c:
            first = first or cid
        else:
            first = None
    return first


def compare_gpu_target(op: str) -> tuple[Optional[Target], str]:
    """The GPU side of the comparison: the cuda default variant, else numba's; or (None, why)."""
    has_gpu, reason = gpu_present()
    if not has_gpu:
        return None, reason
    for backend in ("cuda", "numba"):
        if not availability(backend).available:
            continue
        v = next((v for v in variants(op, backend) if v.default), None)
        if v is not None:
            return Target.of_variant(v), availability(backend).reason
    return None, f"no default {op} variant registered on cuda or numba"


def compare_sweep(ops=None, sizes: Optional[dict] = None, dtype: str = "float32", quick: bool = False,
                  seed: int = 0, progress: bool = True, time_budget: Optional[float] = None) -> dict:
    """For each op and size: CPU (NumPy default variant) vs GPU (cuda default, else numba),
    with data already in place (kernel only) and with a whole call (host<->device copies counted)."""
    t_start = time.perf_counter()
    load = OtherLoad().__enter__()
    ops = split_list(ops) or list(SPECS)
    budget = 0.05 if quick else 0.3
    cache = CaseCache(seed=seed)
    ops_out = []
    total = sum(len(sizes[op] if sizes and op in sizes else COMPARE_CASES[op]) for op in ops)
    bar = Progress(total, "compare", progress)
    for op in ops:
        if op not in SPECS:
            raise ValueError(f"op: unknown op {op!r}; expected one of {list(SPECS)}")
        cpu_v = next(v for v in variants(op, "numpy") if v.default)
        cpu_t = Target.of_variant(cpu_v)
        gpu_t, gpu_reason = compare_gpu_target(op)
        rows = []
        for case in (sizes[op] if sizes and op in sizes else COMPARE_CASES[op]):
            row = {"case": case, "case_id": SPECS[op].case_id(case)}
            over = time_budget is not None and time.perf_counter() - t_start > time_budget
            for side, t in (("cpu", cpu_t), ("gpu", gpu_t)):
                if t is None:
                    continue
                if over:
                    row[f"{side}_reason"] = f"time budget of {time_budget:.0f} s used up"
                    continue
                row.update(_compare_side(side, t, cache, case, dtype, budget))
            rows.append(row)
            bar.step(f"{op} {row['case_id']}")
        ids = [r["case_id"] for r in rows]
        res = {"op": op, "cpu": cpu_t.key, "gpu": gpu_t.key if gpu_t else None, "gpu_reason": gpu_reason,
               "rows": rows}
        if gpu_t:
            res["crossover_on_device"] = crossover(ids, [r.get("cpu_kernel_s") for r in rows],
                                                   [r.get("gpu_kernel_s") for r in rows])
            res["crossover_with_copies"] = crossover(ids, [r.get("cpu_call_s") for r in rows],
                                                     [r.get("gpu_call_s") for r in rows])
        ops_out.append(res)
    bar.close()
    load.__exit__(None, None, None)
    return {"schema": SCHEMA, "command": "compare", "env": environment(), "dtype": dtype,
            "load": load_summary(load.share),
            "settings": {"kernel": "run() alone on data already in place (GPU: CUDA events)",
                         "call": "prepare + run + finish on the host clock: validation, host->device copy, "
                                 "launch, device->host copy",
                         "crossover": "the first size from which the GPU is faster at that size and every "
                                      "larger one tried"},
            "ops": ops_out, "elapsed_s": time.perf_counter() - t_start}


def _compare_side(side: str, t: Target, cache: CaseCache, case: dict, dtype: str, budget: float) -> dict:
    out = {}
    try:
        data = cache.get(t.op, case, dtype)
        runner = make_runner(t, data)
        cmp, _ = check_runner(runner, data)
        out[f"{side}_ok"] = cmp.ok
        out[f"{side}_max_rel_err"] = cmp.max_rel_err
        if not cmp.ok:
            out[f"{side}_reason"] = "wrong: " + cmp.message().splitlines()[0]
            return out
        fl = flusher(t.device)[0]
        kt, _ = measure(runner.run, runner.clock, sync=runner.sync, flush=fl, warmup=1, budget_s=budget)
        ct, _ = measure(_full_call(t.op, data, t.backend, t.name), host_clock, sync=runner.sync, flush=fl,
                        warmup=1, budget_s=budget)
        out.update({f"{side}_kernel_s": kt.median, f"{side}_kernel_iqr_rel": kt.spread,
                    f"{side}_kernel_q25_s": kt.q25, f"{side}_kernel_q75_s": kt.q75,
                    f"{side}_call_s": ct.median, f"{side}_call_iqr_rel": ct.spread,
                    f"{side}_call_q25_s": ct.q25, f"{side}_call_q75_s": ct.q75})
    except Unsupported as ex:
        out[f"{side}_reason"] = str(ex)
    except Exception as ex:
        out[f"{side}_reason"] = f"error: {type(ex).__name__}: {ex}"
    return out


# --- text tables ------------------------------------------------------------------------------


def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f}us"
    if s < 1:
        return f"{s * 1e3:.3f}ms"
    return f"{s:.3f}s"


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def bench_table(doc: dict) -> str:
    env = doc["env"]
    lines = [f"pykern {env['package_version']} bench  {env['date']}  commit {(env['git_commit'] or 'unknown')[:12]}",
             f"CPU: {env['cpu']['model']} ({env['cpu']['usable_cores']} cores)",
             "GPU: " + (f"{env['gpu']['name']} (driver {env['gpu'].get('driver_version', '?')}, CUDA runtime "
                        f"{env['gpu'].get('cuda_runtime_version', '?')})" if env["gpu"] else
                        f"none ({env['gpu_reason']})")]
    lines.append("ceilings (measured now):")
    for k, c in doc["ceilings"].items():
        lines.append(f"  {k:22s} " + (f"{c['rate']:10.1f} {c['unit']:8s} {c['how']}" if c.get("rate")
                                      else f"unavailable: {c.get('reason')}"))
    for note in env["settings"]:
        lines.append(f"note: {note}")
    lines.append("x base = baseline time / variant time (> 1: faster than the baseline); ! = a timing "
                 "not to trust (noisy, above the ceiling, or timed while the machine was busy), re-timed once")
    groups: dict = {}
    for r in doc["entries"]:
        groups.setdefault((r["op"], r["device"], r["case_id"], r["dtype"]), []).append(r)
    for (op, device, cid, dtype), rows in groups.items():
        unit = rows[0]["unit"]
        lines.append(f"\n{op} {cid} {dtype} on the {device.upper()}")
        lines.append(f"  {'target':28s} {'median':>10s} {'IQR':>7s} {unit:>10s} {'%ceil':>6s} {'x base':>7s}  check")
        for r in rows:
            chk = r["check"]
            check = "-" if chk is None else ("ok" if chk["ok"] else "FAIL") + f" {chk['max_rel_err']:.1e}"
            if r["status"] in ("ok", "inexact"):
                mark = "!" if r.get("flags") else " "
                lines.append(f"{mark} {r['key']:28s} {fmt_time(r['median_s']):>10s} {100 * r['iqr_rel']:6.1f}% "
                             f"{r['rate']:10.1f} {_f(r['pct_of_ceiling'], '6.1f'):>6s} "
                             f"{_f(r['ratio_to_baseline'], '7.2f'):>7s}  {check}")
                for flag in r.get("flags") or []:
                    lines.append(f"      ! {flag}" + (" (after re-timing)" if r.get("retimed") else ""))
            else:
                lines.append(f"  {r['key']:28s} {r['status'].upper():>10s}  {r['reason'] or ''}"
                             + (f"  [{check}]" if chk else ""))
                if r["status"] == "wrong":
                    lines.append("      " + chk["message"].replace("\n", "\n      "))
    if doc["skipped_targets"]:
        lines.append("\nnot run here:")
        by_reason: dict = {}
        for s in doc["skipped_targets"]:
            by_reason.setdefault(s["reason"], {}).setdefault(s["op"], []).append(s["key"])
        for reason, per_op in by_reason.items():
            lines.append(f"  {reason}:")
            for op, keys in per_op.items():
                lines.append(f"      {op}: {', '.join(keys)}")
    counts = {}
    for r in doc["entries"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    flagged = sum(1 for r in doc["entries"] if r.get("flags"))
    lines.append("\n" + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no entries")
                 + (f" ({flagged} flagged ! : do not trust their numbers)" if flagged else "")
                 + f" in {doc['elapsed_s']:.0f} s")
    if (doc.get("load") or {}).get("warning"):
        lines.append(doc["load"]["warning"])
    return "\n".join(lines)


def compare_table(doc: dict) -> str:
    lines = [f"CPU vs GPU ({doc['dtype']}): kernel = data already in place; call = prepare+run+finish, "
             "host<->device copies counted",
             "speedup = CPU time / GPU time (> 1: the GPU wins)"]
    reasons = {res["gpu_reason"] for res in doc["ops"] if not res["gpu"]}
    if len(reasons) == 1 and all(not res["gpu"] for res in doc["ops"]):
        lines.append(f"No GPU is available, so only the CPU columns are shown. Why (pykern.backends()): "
                     f"{reasons.pop()}")
    for res in doc["ops"]:
        lines.append(f"\n{res['op']}: CPU {res['cpu']}" + (f" vs GPU {res['gpu']}" if res["gpu"] else ""))
        hdr = f"  {'size':26s} {'CPU kernel':>11s} {'CPU call':>11s}"
        if res["gpu"]:
            hdr += f" {'GPU kernel':>11s} {'GPU call':>11s} {'speedup kernel':>15s} {'speedup call':>13s}"
        lines.append(hdr)
        for r in res["rows"]:
            row = f"  {r['case_id']:26s} {_ct(r, 'cpu_kernel'):>11s} {_ct(r, 'cpu_call'):>11s}"
            if res["gpu"]:
                sk = _ratio(r.get("cpu_kernel_s"), r.get("gpu_kernel_s"))
                sc = _ratio(r.get("cpu_call_s"), r.get("gpu_call_s"))
                row += (f" {_ct(r, 'gpu_kernel'):>11s} {_ct(r, 'gpu_call'):>11s}"
                        f" {_f(sk, '15.2f'):>15s} {_f(sc, '13.2f'):>13s}")
            for side in ("cpu", "gpu"):
                if r.get(f"{side}_reason"):
                    row += f"  [{side}: {r[f'{side}_reason']}]"
            lines.append(row)
        if res["gpu"]:
            lines.append("  GPU wins " + _crossover_words(res["crossover_on_device"], res["rows"]) +
                         " with the data already on the device; " +
                         _crossover_words(res["crossover_with_copies"], res["rows"]) + " with the copies counted.")
        elif not lines[2].startswith("No GPU"):
            lines.append(f"  no GPU column: {res['gpu_reason']}")
    if any(_noisy(r, k) for res in doc["ops"] for r in res["rows"] for k in _COMPARE_TIMES):
        lines.append(f"\n! = noisy: IQR above {100 * NOISY_IQR_REL:.0f}% of the median; do not trust that time")
    if (doc.get("load") or {}).get("warning"):
        lines.append(doc["load"]["warning"])
    return "\n".join(lines)


_COMPARE_TIMES = ("cpu_kernel", "cpu_call", "gpu_kernel", "gpu_call")


def _noisy(r: dict, k: str) -> bool:
    return (r.get(f"{k}_iqr_rel") or 0) > NOISY_IQR_REL


def _ct(r: dict, k: str) -> str:
    """A compare time, with '!' when its spread is too wide to trust."""
    return fmt_time(r.get(f"{k}_s")) + ("!" if _noisy(r, k) else "")


def _ratio(a, b):
    return None if a is None or b is None else a / b


def _crossover_words(cid: Optional[str], rows: list) -> str:
    if cid is None:
        return "at no size tried"
    if rows and cid == rows[0]["case_id"]:
        return f"from the smallest size tried ({cid})"
    return f"from {cid}"


# --- plots ------------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError as e:
        raise RuntimeError(f"--plot needs matplotlib ({e}); pip install matplotlib") from None


# Datasheet peaks (dense, no sparsity) drawn on GPU plots as a dotted line above the measured
# ceiling; never used for "% of ceiling", which is always against a rate measured in the same run.
# Matched by substring of the device name, most specific first. Sources: NVIDIA product pages.
GPU_PEAKS = [
    ("H200", {"GB/s": 4800.0, "float32": 67e3, "float16": 989e3, "bfloat16": 989e3, "float64": 34e3}),
    ("H100 PCIe", {"GB/s": 2000.0, "float32": 51e3, "float16": 756e3, "bfloat16": 756e3, "float64": 26e3}),
    ("H100", {"GB/s": 3350.0, "float32": 67e3, "float16": 989e3, "bfloat16": 989e3, "float64": 34e3}),
    ("A100-SXM4-80GB", {"GB/s": 2039.0, "float32": 19.5e3, "float16": 312e3, "bfloat16": 312e3, "float64": 9.7e3}),
    ("A100", {"GB/s": 1555.0, "float32": 19.5e3, "float16": 312e3, "bfloat16": 312e3, "float64": 9.7e3}),
]


def gpu_peak(name: Optional[str], unit: str, dtype: str) -> Optional[float]:
    """The datasheet peak for a GPU name (GB/s, or GFLOP/s for ``dtype``), or None if unknown."""
    for key, peaks in GPU_PEAKS:
        if name and key in name:
            return peaks.get("GB/s" if unit == "GB/s" else dtype)
    return None


def case_label(op: str, case: dict) -> str:
    """A short x tick label: the size for matmul and relu, the layer's shape for conv2d."""
    if size_form(op) != "conv2d":
        return SPECS[op].case_id(case)
    st = case.get("stride", 1)
    st = st if isinstance(st, int) else st[0]
    return (f"{case['H']}x{case['W']} C{case['C']}>K{case['K']}\n{case['R']}x{case['S']}"
            + (f" /{st}" if st != 1 else "") + (f" N{case['N']}" if case["N"] != 1 else ""))


X_LABELS = {"matmul": "matrix size M x N x K", "relu": "elements (shape)",
            "conv2d": "ResNet layer: input HxW, C in > K out channels, filter RxS, /stride"}


def _plain_number(v: float, _pos=None) -> str:
    """Tick text without powers of ten: 20, 500, 0.05, 2,000."""
    if v <= 0:
        return ""
    if v >= 1:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _time_tick(v: float, _pos=None) -> str:
    if v <= 0:
        return ""
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if v >= scale * 0.999:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.1e} s"


def _readable_log_axis(axis, fmt) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(fmt))
    axis.set_minor_formatter(NullFormatter())


def _wrap(text: str, width: int) -> str:
    import textwrap
    return "\n".join(textwrap.fill(part, width) for part in text.split("\n"))


def _device_words(doc: dict, device: str) -> str:
    env = doc["env"]
    if device == "gpu" and env.get("gpu"):
        g = env["gpu"]
        return f"GPU {g['name']}" + (f" ({g['multiprocessors']} SMs)" if g.get("multiprocessors") else "")
    cpu = env["cpu"]
    return f"CPU {cpu['model']} ({cpu.get('usable_cores') or cpu.get('cores')} cores)"


def _caption(doc: dict, extra: str = "") -> str:
    env = doc["env"]
    date = (env.get("date") or "")[:16].replace("T", " ")
    text = (f"pykern {env.get('package_version')}, commit {(env.get('git_commit') or 'unknown')[:10]}, {date} UTC. "
            + extra)
    warning = (doc.get("load") or {}).get("warning")
    if warning:
        text += " " + warning[0].upper() + warning[1:] + "."
    return text


SKIPPED_STATUSES = ("skipped", "wrong", "error")


def _add_caption(fig, text: str) -> None:
    """Wrapped text under the axes, inside the saved image (savefig uses bbox_inches='tight')."""
    width = int(fig.get_figwidth() * 13)  # characters of 7-pt text per line
    fig.text(0.01, 0.0, _wrap(text, width), fontsize=7, va="top", ha="left", gid="caption")


def bench_figure(doc: dict):
    """The variant ladder as a matplotlib Figure: rate per variant per size, one panel per op
    and device, IQR error bars, the measured ceiling (and a GPU's datasheet peak) as lines."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    panels = list(dict.fromkeys((r["op"], r["device"]) for r in doc["entries"]))
    if not panels:
        raise RuntimeError("nothing to plot: the sweep has no entries")
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 5.2 * len(panels)), squeeze=False)
    for ax, (op, device) in zip(axes[:, 0], panels):
        rows = [r for r in doc["entries"] if r["op"] == op and r["device"] == device]
        dtypes = sorted({r["dtype"] for r in rows}, key=lambda d: (d != "float32", d))
        unit = rows[0]["unit"]
        xs = list(dict.fromkeys((r["case_id"], r["dtype"]) for r in
                                sorted(rows, key=lambda r: (work(op, r["case"], r["dtype"]), r["dtype"]))))
        labels = {}
        for r in rows:
            labels[(r["case_id"], r["dtype"])] = (case_label(op, r["case"])
                                                  + ("" if len(dtypes) == 1 else f"\n{r['dtype']}"))
        targets = list(dict.fromkeys((r["kind"], r["key"]) for r in rows))
        categorical = size_form(op) == "conv2d"  # unrelated layers: markers only, never a line between them
        width = 0.7 / max(1, len(targets)) if categorical else 0.0
        not_run = False
        for ti, (kind, key) in enumerate(targets):
            pts = sorted(((xs.index((r["case_id"], r["dtype"])), r) for r in rows if r["key"] == key),
                         key=lambda p: p[0])
            dx = (ti - (len(targets) - 1) / 2) * width
            ok = [(x, r) for x, r in pts if r.get("rate")]
            color = f"C{ti % 10}"
            if ok:
                x = [x + dx for x, _ in ok]
                y = [r["rate"] for _, r in ok]
                w = [work(op, r["case"], r["dtype"]) / 1e9 for _, r in ok]
                lo = [yy - (ww / r["q75_s"] if r.get("q75_s") else yy) for yy, ww, (_, r) in zip(y, w, ok)]
                hi = [(ww / r["q25_s"] if r.get("q25_s") else yy) - yy for yy, ww, (_, r) in zip(y, w, ok)]
                if categorical:
                    style = {"linestyle": "none"}
                elif kind == "baseline":
                    style = {"linestyle": "--", "linewidth": 2.0}
                else:
                    style = {"linestyle": "-", "linewidth": 1.2}
                ax.errorbar(x, y, yerr=[lo, hi], color=color, marker="s" if kind == "baseline" else "o",
                            markersize=6, capsize=3, label=key + (" (baseline)" if kind == "baseline" else ""), **style)
                flagged = [(xx, yy) for xx, yy, (_, r) in zip(x, y, ok) if r.get("flags")]
                if flagged:
                    ax.plot([f[0] for f in flagged], [f[1] for f in flagged], linestyle="none", marker="o",
                            markersize=13, markerfacecolor="none", markeredgecolor="red", zorder=5)
            missing = [(x + dx, r) for x, r in pts if not r.get("rate") and r["status"] in SKIPPED_STATUSES]
            if missing:  # at the bottom of the panel, in the target's colour, never a silent gap
                not_run = True
                ax.plot([x for x, _ in missing], [0.03] * len(missing), linestyle="none", marker="x",
                        markersize=8, markeredgewidth=2, color=color, transform=ax.get_xaxis_transform())
        for dt in dtypes:
            ckey = ceiling_key(op, device, dt)
            c = doc.get("ceilings", {}).get(ckey) or {}
            if c.get("rate"):
                ax.axhline(c["rate"], color="black", linestyle="-.", linewidth=1.2,
                           label=_wrap(f"measured ceiling {c['rate']:,.0f} {unit}"
                                       + ("" if unit == "GB/s" else f" {dt}")
                                       + f": {c.get('how', '').split(';')[0]}", 45))
            peak = gpu_peak((doc["env"].get("gpu") or {}).get("name"), unit, dt) if device == "gpu" else None
            if peak:
                ax.axhline(peak, color="gray", linestyle=":", linewidth=1.5,
                           label=f"datasheet peak {peak:,.0f} {unit}" + ("" if unit == "GB/s" else f" {dt}"))
        handles, _ = ax.get_legend_handles_labels()
        if not_run:
            handles.append(Line2D([], [], linestyle="none", marker="x", color="gray",
                                  label="not run (skipped, wrong or failed: see the table)"))
        if any(r.get("flags") for r in rows):
            handles.append(Line2D([], [], linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                                  markeredgecolor="red", label="suspect timing (noisy, above ceiling or busy)"))
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([labels[x] for x in xs], rotation=0 if categorical else 20,
                           ha="center" if categorical else "right", fontsize=8)
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.set_yscale("log")
        _readable_log_axis(ax.yaxis, _plain_number)
        ax.set_ylabel(f"rate ({unit}, higher is better)")
        ax.set_xlabel(X_LABELS[size_form(op)])
        ax.set_title(_wrap(f"{op} on the {_device_words(doc, device)}, {', '.join(dtypes)}: median rate, "
                           "error bars = IQR", 90), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(handles=handles, fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0)
    fig.tight_layout()
    _add_caption(fig, _caption(doc, "Median of repeated runs after a check against the float64 reference; "
                                    "% of ceiling and ratios are in the table."))
    return fig


def plot_bench(doc: dict, path: str) -> None:
    plt = _pyplot()
    fig = bench_figure(doc)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def crossover_words(res: dict, key: str) -> Optional[str]:
    """'GPU wins at 1024 and above (copies counted)', or None without a GPU column."""
    if not res.get("gpu"):
        return None
    setting = "copies counted" if key == "crossover_with_copies" else "data already on the GPU"
    cid = res.get(key)
    if cid is None:
        return f"GPU wins at no size tried ({setting})"
    return f"GPU wins at {cid} and above ({setting})"


def compare_figure(doc: dict):
    """Time per size, CPU vs GPU, kernel only and whole call (IQR error bars); each crossover
    drawn as a vertical line and said in words."""
    plt = _pyplot()
    n = len(doc["ops"])
    fig, axes = plt.subplots(n, 1, figsize=(11, 4.8 * n), squeeze=False)
    for ax, res in zip(axes[:, 0], doc["ops"]):
        op = res["op"]
        rows = res["rows"]
        ids = [r["case_id"] for r in rows]
        any_noisy = False
        for key, label, color, style in (("cpu_kernel", f"CPU {res['cpu']}, kernel only", "C0", "-"),
                                         ("cpu_call", f"CPU {res['cpu']}, whole call", "C0", ":"),
                                         ("gpu_kernel", f"GPU {res['gpu']}, data on the GPU", "C3", "-"),
                                         ("gpu_call", f"GPU {res['gpu']}, copies counted", "C3", ":")):
            pts = [(i, r) for i, r in enumerate(rows) if r.get(f"{key}_s")]
            if not pts:
                continue
            y = [r[f"{key}_s"] for _, r in pts]
            lo = [yy - r.get(f"{key}_q25_s", yy) for yy, (_, r) in zip(y, pts)]
            hi = [r.get(f"{key}_q75_s", yy) - yy for yy, (_, r) in zip(y, pts)]
            ax.errorbar([i for i, _ in pts], y, yerr=[lo, hi], color=color, linestyle=style,
                        marker="o" if key.endswith("kernel") else "s", capsize=3, label=label)
            noisy = [(i, r[f"{key}_s"]) for i, r in pts if _noisy(r, key)]
            if noisy:
                any_noisy = True
                ax.plot([p[0] for p in noisy], [p[1] for p in noisy], linestyle="none", marker="o", markersize=13,
                        markerfacecolor="none", markeredgecolor="red", zorder=5)
        words = []
        handles_extra = []
        for key, style in (("crossover_on_device", "-"), ("crossover_with_copies", ":")):
            text = crossover_words(res, key)
            if text is None:
                continue
            words.append(text)
            if res.get(key) in ids:
                x = ids.index(res[key])
                ax.axvline(x, color="green", linestyle=style, linewidth=1.5, label=text)
                r = rows[x]
                t = r.get("gpu_call_s" if key.endswith("copies") else "gpu_kernel_s")
                if t:
                    ax.plot([x], [t], marker="*", markersize=16, color="green", linestyle="none", zorder=6)
                    ax.annotate(text, (x, t), xytext=(8, 10 if key.endswith("copies") else -16),
                                textcoords="offset points", fontsize=8, color="green")
        ax.set_xticks(range(len(ids)))
        ax.set_xticklabels([case_label(op, r["case"]) for r in rows], rotation=20, ha="right", fontsize=8)
        if any_noisy:
            from matplotlib.lines import Line2D
            handles_extra.append(Line2D([], [], linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                                        markeredgecolor="red",
                                        label=f"noisy: IQR above {100 * NOISY_IQR_REL:.0f}% of the median"))
        ax.set_yscale("log")
        _readable_log_axis(ax.yaxis, _time_tick)
        ax.set_ylabel("median time per call (lower is better)")
        ax.set_xlabel(X_LABELS[size_form(op)])
        gpu = f" vs the {_device_words(doc, 'gpu')}" if res["gpu"] else ""
        title = f"{op}, {doc['dtype']}: the {_device_words(doc, 'cpu')}{gpu}, error bars = IQR"
        if res["gpu"]:
            title += "".join("\n" + w for w in words)
        else:
            title += "\nno GPU column (why: below the plot)"
        ax.set_title(_wrap(title, 110), fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(handles=ax.get_legend_handles_labels()[0] + handles_extra, fontsize=7, loc="upper left")
    fig.tight_layout()
    no_gpu = list(dict.fromkeys(res["gpu_reason"] for res in doc["ops"] if not res["gpu"]))
    _add_caption(fig, _caption(doc, "kernel only = run() on data already in place; whole call = validation + "
                                    "copies + launch + copy back, on the host clock."
                               + "".join(f" No GPU column because: {why}" for why in no_gpu)))
    return fig


def plot_compare(doc: dict, path: str) -> None:
    plt = _pyplot()
    fig = compare_figure(doc)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# --- summary (bench/device_run.sh prints this last) -------------------------------------------


def best_per_op(doc: dict) -> list:
    """Per op: on the GPU if any GPU variant was timed (else the CPU), at the largest case timed,
    the variant with the highest rate, with its % of ceiling and ratio to the baseline."""
    out = []
    for op in dict.fromkeys(r["op"] for r in doc["entries"]):
        timed = [r for r in doc["entries"] if r["op"] == op and r["kind"] == "variant" and r["status"] == "ok"]
        if not timed:
            out.append({"op": op, "reason": "no variant timed"})
            continue
        device = "gpu" if any(r["device"] == "gpu" for r in timed) else "cpu"
        timed = [r for r in timed if r["device"] == device]
        biggest = max(work(op, r["case"], r["dtype"]) for r in timed)
        at = [r for r in timed if work(op, r["case"], r["dtype"]) == biggest]
        b = max(at, key=lambda r: r["rate"])
        out.append({"op": op, "device": device, "case_id": b["case_id"], "dtype": b["dtype"], "key": b["key"],
                    "rate": b["rate"], "unit": b["unit"], "pct_of_ceiling": b["pct_of_ceiling"],
                    "ratio_to_baseline": b["ratio_to_baseline"], "baseline": b["baseline"],
                    "flags": b.get("flags") or []})
    return out


def summary_lines(doc: dict) -> list:
    lines = []
    counts = {}
    for r in doc["entries"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines.append("bench entries: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"))
    if (doc.get("load") or {}).get("warning"):
        lines.append("  " + doc["load"]["warning"])
    wrong = [f"{r['op']} {r['key']} {r['case_id']}" for r in doc["entries"] if r["status"] in ("wrong", "error")]
    for w in wrong[:10]:
        lines.append(f"  wrong/error: {w}")
    lines.append("best variant per op (largest size timed):")
    for b in best_per_op(doc):
        if "reason" in b:
            lines.append(f"  {b['op']:7s} {b['reason']}")
            continue
        pct = "-" if b["pct_of_ceiling"] is None else f"{b['pct_of_ceiling']:.1f}% of ceiling"
        ratio = "no baseline" if b["ratio_to_baseline"] is None else f"{b['ratio_to_baseline']:.2f}x {b['baseline']}"
        lines.append(f"  {b['op']:7s} {b['device'].upper()} {b['case_id']} {b['dtype']}: {b['key']} "
                     f"{b['rate']:.1f} {b['unit']}, {pct}, {ratio}"
                     + "".join(f"; ! {flag}" for flag in b["flags"]))
    return lines


def write_json(doc: dict, path: str) -> None:
    tmp = path + ".tmp"  # the folder is never created: the CLI checks it exists before a sweep
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


def _tail_counts(text: str) -> Optional[dict]:
    """pytest's closing counts ({"passed": 812, "failed": 3, ...}), or None if it never closed."""
    for line in reversed(text.splitlines()):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)", line)
        if found and re.search(r" in [\d.]+s", line):
            return {k.rstrip("s") if k.startswith("error") else k: int(n) for n, k in found}
    return None


def device_summary(results_dir: str) -> str:
    """The closing table of bench/device_run.sh, from the files it wrote to ``results_dir``:
    steps.tsv (name, status, seconds, exit code), the step logs, bench.json and compare.json."""
    def read(name):
        try:
            with open(os.path.join(results_dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def load(name):
        text = read(name)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    bdoc, cdoc = load("bench.json"), load("compare.json")
    env = (bdoc or cdoc or {}).get("env") or {}
    gpu = (env.get("gpu") or {}).get("name") or "no GPU"
    commit = env.get("git_commit") or "unknown"
    lines = [f"pykern device run summary: {gpu}; {env.get('date', '?')}; commit "
             f"{commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}; results in {results_dir}",
             f"{'step':18s} {'status':14s} {'seconds':>7s}  notes"]
    for row in (read("steps.tsv") or "").splitlines():
        name, status, secs, *rest = row.split("\t") + ["", "", ""]
        note = rest[1] if len(rest) > 1 else ""
        log = read(f"{name}.log") or ""
        if name == "tests":
            counts = _tail_counts(log)
            note = (", ".join(f"{v} {k}" for k, v in counts.items()) if counts
                    else "no pytest summary line (crashed or timed out)") + (f"; {note}" if note else "")
        elif name.startswith("sanitize-") and status != "skipped":
            errs = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) error", log)]
            run = re.findall(r"sanitize: \d+ ok, \d+ failed, \d+ skipped", log)
            note = (f"{sum(errs)} sanitizer errors" if errs else "no sanitizer summary line") + \
                   (f"; {run[-1][len('sanitize: '):]}" if run else "") + (f"; {note}" if note else "")
        lines.append(f"{name:18s} {status:14s} {secs:>7s}  {note}")
    if bdoc:
        lines += summary_lines(bdoc)
    else:
        lines.append("bench: no bench.json (see bench.log)")
    if cdoc:
        lines.append("CPU vs GPU, where the GPU starts to win (data on device / copies counted):")
        for res in cdoc["ops"]:
            if res["gpu"]:
                lines.append(f"  {res['op']:7s} {res['cpu']} vs {res['gpu']}: "
                             f"{_crossover_words(res.get('crossover_on_device'), res['rows'])} / "
                             f"{_crossover_words(res.get('crossover_with_copies'), res['rows'])}")
        no_gpu = {res["gpu_reason"] for res in cdoc["ops"] if not res["gpu"]}
        for why in no_gpu:
            lines.append(f"  no GPU column for {', '.join(r['op'] for r in cdoc['ops'] if r['gpu_reason'] == why)}: {why}")
    else:
        lines.append("compare: no compare.json (see compare.log)")
    return "\n".join(lines)
