"""Benchmark cases (data, kept apart from the test cases in the op specs), the --sizes forms
that name them, and what an op's rate counts (FLOPs or bytes) for a case."""
from __future__ import annotations

import re
from typing import Optional

import numpy as np

from ..ops import SPECS


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
        raise ValueError(f"sizes: expected a comma-separated list of {op} sizes, got {text!r}")
    return cases


def parse_ops(text: str) -> list:
    """One ``--op`` value: comma-separated op names, each checked."""
    ops = [o.strip() for o in text.split(",") if o.strip()]
    if not ops:
        raise ValueError(f"op: expected comma-separated ops, got {text!r}")
    for op in ops:
        if op not in SPECS:
            raise ValueError(f"op: unknown op {op!r}; expected one of {list(SPECS)}")
    return ops


# --- which ops at which sizes: --op and --sizes together ------------------------------------------

SELECTION_HELP = (
    "--sizes is OP=SIZES[;OP=SIZES...] (each list for the op it names: --sizes \"conv2d=14,28;relu=2^20\"), "
    "or a plain comma-separated SIZES for the ops of the --op just before it (before any --op: the "
    "first --op after it), so --op conv2d --sizes 14,28 --op relu --sizes 2^20 is the same. A plain "
    "SIZES given to several ops must mean the same for each (relu with relu_backward, conv2d with "
    "its gradients); across ops that read sizes differently it is refused. Ops without sizes run "
    "their default cases; without --op, the ops named in OP=SIZES are the ones run.")


def select(items) -> tuple[list, Optional[dict]]:
    """The ops to run and their cases from ``--op`` and ``--sizes`` in the order given (see
    SELECTION_HELP): items are ("op", text) and ("sizes", text) pairs. Returns (ops, {op: [case,
    ...]} or None for the default cases of every op). ValueError naming the op and the size for
    a size that is no size of its op, or that would be read as a size of ops it was not meant for."""
    items = list(items or [])
    op_at = {i: parse_ops(text) for i, (flag, text) in enumerate(items) if flag == "op"}
    ops = list(dict.fromkeys(op for i in sorted(op_at) for op in op_at[i]))
    sizes: dict = {}
    named = []
    for i, (flag, text) in enumerate(items):
        if flag != "sizes":
            continue
        if "=" in text:
            for group in filter(str.strip, text.split(";")):
                op, eq, toks = (part.strip() for part in group.partition("="))
                if not eq:
                    raise ValueError(f"sizes: {group.strip()!r} in {text!r} names no op; once one group is "
                                     "OP=SIZES, every group must be (groups are separated by ';')")
                if op not in SPECS:
                    raise ValueError(f"sizes: {op}={toks} names an unknown op {op!r}; expected one of {list(SPECS)}")
                if op_at and op not in ops:
                    raise ValueError(f"sizes: {op}={toks} is for {op}, which --op does not select "
                                     f"(--op selects {','.join(ops)})")
                named.append(op)
                sizes.setdefault(op, []).extend(parse_sizes(op, toks))
            continue
        if ";" in text:
            raise ValueError(f"sizes: {text!r}: ';' separates OP=SIZES groups; name the op of each group "
                             "(--sizes \"conv2d=14,28;relu=2^20\") or give one --sizes after each --op")
        before, after = [j for j in op_at if j < i], [j for j in op_at if j > i]
        owners = op_at[before[-1]] if before else op_at[after[0]] if after else list(SPECS)
        if len({size_form(op) for op in owners}) > 1:
            per_op = ";".join(f"{op}={text}" for op in owners)
            raise ValueError(f"sizes: {text!r} would be read as a size of {', '.join(owners)}"
                             + ("" if op_at else " (no --op: every op)") + ", which read sizes differently "
                             f"(see --help); give each op its own: --sizes \"{per_op}\", or one --sizes after "
                             "each --op")
        for op in owners:
            sizes.setdefault(op, []).extend(parse_sizes(op, text))
    if not op_at:
        ops = list(dict.fromkeys(named)) or list(SPECS)
    return ops, (sizes or None)


def work(op: str, case: dict, dtype: str = "float32") -> float:
    """What the op's rate counts for this case: FLOPs, or bytes for memory-bound ops."""
    spec = SPECS[op]
    return spec.bytes_moved(case, itemsize(dtype)) if spec.rate_unit == "GB/s" else spec.flops(case)


def itemsize(dtype: str) -> int:
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
