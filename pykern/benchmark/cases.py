"""The benchmark cases and --sizes forms of every op, read from its spec (``OpSpec.bench_cases``,
``compare_cases``, ``size_forms``, ``parse_size``: kept apart from its test cases), --op and
--sizes parsing, and what an op's rate counts (FLOPs or bytes) for a case. Nothing here names
an op: an op added to pykern.ops.SPECS, even at run time, is in every table below."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Callable, Optional

import numpy as np

from ..ops import SPECS


# --- benchmark cases --------------------------------------------------------------------------


class PerOp(Mapping):
    """{op: what ``read`` returns for its spec}, for every op in pykern.ops.SPECS when it is read,
    so an op registered after this module was imported is in it too."""

    def __init__(self, read: Callable):
        self._read = read

    def __getitem__(self, op):
        if op not in SPECS:
            raise KeyError(op)
        return self._read(SPECS[op])

    def __iter__(self):
        return iter(list(SPECS))

    def __len__(self):
        return len(SPECS)


# The default sweep per device, the cases run after every other entry while a time budget
# lasts, the CPU-vs-GPU sizes, and what --sizes takes, per op.
BENCH_CASES = PerOp(lambda spec: {device: spec.bench_cases(device) for device in ("cpu", "gpu")})
BENCH_LATE_CASES = PerOp(lambda spec: {device: spec.bench_late_cases(device) for device in ("cpu", "gpu")})
COMPARE_CASES = PerOp(lambda spec: spec.compare_cases())
SIZE_FORMS = PerOp(lambda spec: spec.size_forms())


# --- size parsing -----------------------------------------------------------------------------


def parse_size(op: str, token: str) -> dict:
    """One ``--sizes`` token -> a case of ``op``, read by its spec (the forms are in SIZE_FORMS).
    Any number may be written as a power of two, 2^N, for every op."""
    tok = token.strip()
    if op not in SPECS:
        raise ValueError(f"op: unknown op {op!r}; expected one of {list(SPECS)}")
    # 2^N -> its value before parsing (an exponent too large for any array leaves a "!" that no
    # form accepts).
    written_out = re.sub(r"2\^(\d+)", lambda m: str(1 << int(m.group(1))) if int(m.group(1)) < 63 else "!", tok)
    case = SPECS[op].parse_size(written_out)
    if case is None:
        raise ValueError(f"sizes: {tok!r} is not a size for {op}; expected {SIZE_FORMS[op]}")
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
        if len({SPECS[op].size_grammar() for op in owners}) > 1:
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
    return SPECS[op].work(case, itemsize(dtype))


def itemsize(dtype: str) -> int:
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
