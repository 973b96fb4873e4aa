"""One dispatch for every op: validate once at the boundary, pick backend and variant, run."""
from __future__ import annotations

from typing import Optional

from ._arrays import checked_nbytes, describe, format_bytes, overlaps, require_layout, same_buffer
from ._backends import EXECUTORS, Prepared, availability, require
from ._registry import BACKENDS, dtype_hint, get_variant, variants
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


def prepare(op: str, arrays: dict, params: dict, *, backend: str = "auto",
            variant: Optional[str] = None, out=None, poison: bool = False) -> Prepared:
    """Validate ``arrays`` (name -> array or None) and set up one kernel launch."""
    spec = SPECS[op]
    infos, stream = {}, None
    for name, a in arrays.items():
        infos[name] = None if a is None else describe(a, name, stream)
        if infos[name] is not None and infos[name].on_gpu and stream is None:
            stream = infos[name].stream  # the first GPU argument's: every other one is handed it
    for name, info in infos.items():
        if info is None and name not in spec.optional:
            raise TypeError(f"{name}: an array is required, got None")
    present = [i for i in infos.values() if i is not None]
    sides = {i.on_gpu for i in present}
    if len(sides) > 1:
        raise TypeError("inputs mix host and GPU arrays (" +
                        ", ".join(f"{i.name}: {'GPU' if i.on_gpu else 'host'}" for i in present) +
                        "); pass all of them on one side")
    for info in present:
        require_layout(info)
    out_shape, out_dtype, params = spec.validate(infos, params)
    # Exact (Python ints), before any allocation on any backend: a byte count past 2^63 is a
    # ValueError naming the arguments, never a wrapped size handed to an allocator.
    out_nbytes = checked_nbytes(out_shape, out_dtype, f"{op}: the output", spec.output_from(infos, params))

    out_info = None
    if out is not None:
        out_info = describe(out, "out", stream)
        require_layout(out_info)
        if out_info.readonly:
            raise ValueError("out: the array is read-only (" + ("its WRITEABLE flag is off" if out_info.kind == "numpy"
                             else "its DLPack export says so") + "); pass a writable array")
        if out_info.on_gpu != present[0].on_gpu:
            raise TypeError("out: must be on the same side (host or GPU) as the inputs")
        if out_info.kind != present[0].kind:
            raise TypeError(f"out: expected a {present[0].kind} array like the inputs, got {out_info.kind}")
        if out_info.shape != tuple(out_shape) or out_info.dtype != out_dtype:
            raise ValueError(f"out: expected shape {tuple(out_shape)} and dtype {out_dtype.name}, "
                             f"got {out_info.shape} {out_info.dtype.name}")
        for info in present:
            if overlaps(info, out_info):
                if not spec.in_place_ok:
                    raise ValueError(f"out overlaps {info.name}: {op} cannot write its output over an input")
                if not same_buffer(info, out_info):
                    raise ValueError(f"out overlaps {info.name} partially; it must be either the same "
                                     "array (in place) or disjoint")

    be = resolve_backend(backend, present[0].on_gpu, any(i.kind == "numba" and not i.ptr for i in present))
    require(be)  # before the variant: an unavailable backend may have no variants to name
    var = get_variant(op, be, variant)
    refused = [k for k in getattr(spec, "opt_in", ()) if k in params and k not in var.takes]
    if refused:
        able = [v.key for b in BACKENDS for v in variants(op, b) if set(refused) <= set(v.takes)]
        raise Unsupported(f"variant {var.key} does not take {', '.join(refused)}; variants that do: "
                          f"{', '.join(able) or 'none'}")
    dt = present[0].dtype.name
    if dt not in var.dtypes:
        raise TypeError(f"{present[0].name}: variant {var.key} takes {', '.join(var.dtypes)}; got {dt}"
                        + dtype_hint(op, be, dt, present[0].name))
    reason = var.unsupported_reason(infos, params)
    if reason:
        raise Unsupported(f"variant {var.key} cannot run this input: {reason}")

    ins = [infos[name] for name in spec.inputs]
    try:
        prepared = EXECUTORS[be].prepare(var, ins, params, tuple(out_shape), out_dtype, out_info, poison)
    except MemoryError as e:
        raise MemoryError(f"{op}: cannot allocate the output {tuple(out_shape)} {out_dtype.name} "
                          f"({format_bytes(out_nbytes)}) on "
                          f"backend {be!r}; its size comes from {spec.output_from(infos, params)} [{e}]") from e
    prepared.variant, prepared.params = var, params
    return prepared


def call(op: str, arrays: dict, params: dict, *, backend="auto", variant=None, out=None):
    """Run ``op`` once and return the caller's kind of array."""
    prepared = prepare(op, arrays, params, backend=backend, variant=variant, out=out)
    try:
        prepared.run()
    except MemoryError as e:
        args = ", ".join(f"{k}={v!r}" for k, v in prepared.params.items())
        raise MemoryError(f"{op}: cannot allocate the workspace of {prepared.variant.key} for these inputs "
                          f"({args}) [{e}]") from e
    return prepared.finish()
