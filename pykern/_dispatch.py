"""One dispatch for every op: validate once at the boundary, pick backend and variant, run."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ._arrays import MAX_ARRAY_BYTES, checked_nbytes, describe, dtype_name, overlaps, require_layout, same_buffer
from ._backends import EXECUTORS, NumpyExecutor, Prepared, availability, host_threads, require
from ._problem import Problem
from ._registry import BACKENDS, dtype_hint, fallback_default, get_variant, routed, variants
from ._registry import generation as registry_generation
from .ops import SPECS


class Unsupported(ValueError):
    """A valid input that this particular variant cannot run (e.g. an alignment need)."""


def resolve_backend(backend: str, on_gpu: bool, sim_arrays: bool = False) -> str:
    """'auto' -> cuda (else numba) for GPU arrays, numpy for host arrays. ``sim_arrays``: the
    GPU arrays are Numba simulator arrays, which have no memory the cuda backend can address."""
    if backend == "auto":
        if not on_gpu:
            return "numpy"
        return "cuda" if availability("cuda").available and not sim_arrays else "numba"
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown backend {backend!r}; expected 'auto' or one of {list(BACKENDS)}")
    return backend


# spec.validate's results by call signature. validate is a pure function of the arrays' kinds,
# shapes, dtypes and strides and of the parameters (OpSpec.validate's contract), and on a small
# call it was most of the dispatch's Python (a conv2d gradient: ~10 of ~22 us): a training step
# makes the same few calls again and again. Only parameters of plain types make a key (a bool is
# told from an int, so True never stands in for 1); anything else is validated every time.
_VALIDATED: dict = {}
_PLAIN = (int, float, str, bool, type(None))
_CACHE_MOST = 1024  # entries before a cache (_VALIDATED, _PLANS) starts afresh


def _keep(table: dict, key, value) -> None:
    """table[key] = value, the table emptied first where it holds _CACHE_MOST entries already."""
    if len(table) >= _CACHE_MOST:
        table.clear()
    table[key] = value


def _params_key(params: dict):
    """The parameters as part of a cache key, or None where one is of no plain type."""
    items = []
    for k, v in params.items():
        t = type(v)
        if t is tuple:
            if not all(type(e) is int for e in v):
                return None
        elif t not in _PLAIN:
            return None
        items.append((k, t, v))
    return tuple(items)


def _signature(spec, infos: dict, params: dict):
    """The key of one call's validation, or None where it has none."""
    items = _params_key(params)
    if items is None:
        return None
    arrays = tuple(None if i is None else (name, i.kind, i.shape, i.dtype, i.strides) for name, i in infos.items())
    return spec, arrays, items


# Plans: what the dispatch decided for a call on host NumPy arrays (its validation, variant,
# output shape and dtype, and the op's dims), kept by the call's signature so that a repeat of it
# runs at once: the op, backend and variant asked for, each array's shape, dtype and strides
# (exact type np.ndarray: a subclass is described every time), the parameters (plain types only),
# and pykern's CPU thread count (a measured route may depend on it). Every input to those
# decisions is in the key or fixed for the process; the registry's changes (register,
# make_default, set_route, unregister) drop every plan. A plan holds no array. Only calls
# without ``out=`` are planned: an out array is checked for its overlap with the inputs each time.
# A training step repeats the same few calls: a small layer's (pk.relu at 32 x 64, 2,048
# elements) took ~7.0 us through resolve and 3.3 us planned, and more inside a step, where
# the dispatch's code is cold.
_PLANS: dict = {}


def _plan_key(op: str, arrays: dict, params: dict, backend: str, variant: Optional[str]):
    """The plan key of a call, or None where it has none (another backend asked for, a GPU array
    or subclass, a parameter of no plain type)."""
    if backend != "auto" and backend != "numpy":
        return None  # host arrays for a GPU backend: uploaded, never planned
    shapes = []
    for a in arrays.values():
        if a is None:
            shapes.append(None)
        elif type(a) is np.ndarray:
            shapes.append((a.shape, a.dtype, a.strides))
        else:
            return None
    items = _params_key(params)
    if items is None:
        return None
    return op, backend, variant, tuple(shapes), items, host_threads(), registry_generation()


def _validate(spec, infos: dict, params: dict) -> tuple:
    """spec.validate(infos, params) -> (output shape as a tuple, dtype, normalized params), from
    _VALIDATED where this signature has passed before (a refusal is never kept: it raises again)."""
    key = _signature(spec, infos, params)
    hit = _VALIDATED.get(key) if key is not None else None
    if hit is None:
        out_shape, out_dtype, normalized = spec.validate(infos, params)
        hit = (tuple(out_shape), out_dtype, normalized)
        if key is not None:
            _keep(_VALIDATED, key, hit)
    return hit[0], hit[1], dict(hit[2])  # a copy: a Problem's params are its own


def resolve(op: str, arrays: dict, params: dict, *, backend: str = "auto", variant: Optional[str] = None,
            out=None) -> Problem:
    """Validate one call, once: ``arrays`` (name -> array or None), ``params`` and ``out``; pick its
    backend and variant. Every check of the call is here; what follows (supports, the executor,
    the launcher) reads the Problem and checks nothing again."""
    spec = SPECS[op]
    infos, stream, present = {}, None, []
    for name, a in arrays.items():
        if a is None:
            infos[name] = None
            continue
        info = infos[name] = describe(a, name, stream)
        present.append(info)
        if stream is None and info.kind != "numpy":
            stream = info.stream  # the first GPU argument's: every other one is handed it
    if len(present) != len(infos):
        for name, info in infos.items():
            if info is None and name not in spec.optional:
                raise TypeError(f"{name}: an array is required, got None")
    first = present[0]
    on_gpu = first.kind != "numpy"
    for info in present:
        if (info.kind != "numpy") != on_gpu:
            raise TypeError("inputs mix host and GPU arrays (" +
                            ", ".join(f"{i.name}: {'GPU' if i.on_gpu else 'host'}" for i in present) +
                            "); pass all of them on one side")
        if info.strides is not None or 0 in info.shape:  # else contiguous and non-empty already
            require_layout(info)
    out_shape, out_dtype, params = _validate(spec, infos, params)
    # Exact (Python ints), before any allocation on any backend: a byte count past 2^63 is a
    # ValueError naming the arguments, never a wrapped size handed to an allocator.
    if math.prod(out_shape) * out_dtype.itemsize > MAX_ARRAY_BYTES:
        checked_nbytes(out_shape, out_dtype, f"{op}: the output", lambda: spec.output_from(infos, params))

    out_info = None
    if out is not None:
        out_info = describe(out, "out", stream)
        require_layout(out_info)
        if out_info.readonly:
            raise ValueError("out: the array is read-only (" + ("its WRITEABLE flag is off" if out_info.kind == "numpy"
                             else "its DLPack export says so") + "); pass a writable array")
        if out_info.on_gpu != on_gpu:
            raise TypeError("out: must be on the same side (host or GPU) as the inputs")
        if out_info.kind != first.kind:
            raise TypeError(f"out: expected a {first.kind} array like the inputs, got {out_info.kind}")
        if out_info.shape != out_shape or out_info.dtype != out_dtype:
            raise ValueError(f"out: expected shape {out_shape} and dtype {out_dtype.name}, "
                             f"got {out_info.shape} {out_info.dtype.name}")
        for info in present:
            if overlaps(info, out_info):
                if not spec.in_place_ok:
                    raise ValueError(f"out overlaps {info.name}: {op} cannot write its output over an input")
                if not same_buffer(info, out_info):
                    raise ValueError(f"out overlaps {info.name} partially; it must be either the same "
                                     "array (in place) or disjoint")

    if backend == "auto" and not on_gpu:
        be = "numpy"
    else:
        be = resolve_backend(backend, on_gpu, any(i.kind == "numba" and not i.ptr for i in present))
    require(be)  # before the variant: an unavailable backend may have no variants to name
    var = get_variant(op, be, variant)
    if variant is None:
        var = routed(op, be, infos, params) or var  # a shape the measured rule gives to another
    if spec.opt_in:
        refused = [k for k in spec.opt_in if k in params and k not in var.takes]
        if refused:
            able = [v.key for b in BACKENDS for v in variants(op, b) if set(refused) <= set(v.takes)]
            raise Unsupported(f"variant {var.key} does not take {', '.join(refused)}; variants that do: "
                              f"{', '.join(able) or 'none'}")
    dt = dtype_name(first.dtype)
    if dt not in var.dtypes and variant is None:
        var = fallback_default(op, be) or var  # a compiled default's dtypes: NumPy's default for the rest
    if dt not in var.dtypes:
        raise TypeError(f"{first.name}: variant {var.key} takes {', '.join(var.dtypes)}; got {dt}"
                        + dtype_hint(op, be, dt, first.name))
    problem = Problem(spec, infos, params, out_shape, out_dtype, out_info, be, var)
    if var.supports is not None:
        reason = var.supports(problem)
        if reason:
            raise Unsupported(f"variant {var.key} cannot run this input: {reason}")
    return problem


def _out_of_memory(problem: Problem, e: MemoryError) -> MemoryError:
    """The MemoryError of an output that could not be allocated, naming what set its size."""
    from ._arrays import format_bytes
    nbytes = math.prod(problem.out_shape) * problem.out_dtype.itemsize
    return MemoryError(f"{problem.op}: cannot allocate the output {problem.out_shape} {problem.out_dtype.name} "
                       f"({format_bytes(nbytes)}) on backend {problem.backend!r}; its size comes from "
                       f"{problem.spec.output_from(problem.infos, problem.params)} [{e}]")


def prepare(op: str, arrays: dict, params: dict, *, backend: str = "auto",
            variant: Optional[str] = None, out=None, poison: bool = False) -> Prepared:
    """Validate ``arrays`` (name -> array or None) and set up one kernel launch."""
    problem = resolve(op, arrays, params, backend=backend, variant=variant, out=out)
    try:
        return EXECUTORS[problem.backend].prepare(problem, poison)
    except MemoryError as e:
        raise _out_of_memory(problem, e) from e


def call(op: str, arrays: dict, params: dict, *, backend="auto", variant=None, out=None):
    """Run ``op`` once and return the caller's kind of array."""
    key = _plan_key(op, arrays, params, backend, variant) if out is None else None
    if key is not None:
        plan = _PLANS.get(key)
        if plan is not None:
            try:
                return NumpyExecutor.repeat(plan, arrays)
            except MemoryError:
                pass  # the full path below says what could not be allocated
    problem = resolve(op, arrays, params, backend=backend, variant=variant, out=out)
    if key is not None and problem.backend == "numpy":
        _keep(_PLANS, key, NumpyExecutor.plan(problem))
    executor = EXECUTORS[problem.backend]
    try:
        y = executor.output(problem)
    except MemoryError as e:
        raise _out_of_memory(problem, e) from e
    try:
        return executor.call(problem, y)
    except MemoryError as e:
        args = ", ".join(f"{k}={v!r}" for k, v in problem.params.items())
        raise MemoryError(f"{op}: cannot allocate the workspace of {problem.variant.key} for these inputs "
                          f"({args}) [{e}]") from e
