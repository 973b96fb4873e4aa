"""The one registry of kernel variants: tests, benchmarks, the CLI and plots all read it.

A variant is registered where it is written, with ``@register(op, backend, dtypes=...)`` on
its launcher; the function name is the variant name and the first docstring line names the
technique. Adding a variant is one function plus its decorator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

OPS = ("relu", "matmul", "conv2d", "relu_backward", "conv2d_backward_input", "conv2d_backward_weight")
BACKENDS = ("numpy", "numba", "cuda")


@dataclass(frozen=True)
class Variant:
    """One registered implementation of an op on one backend."""

    op: str
    backend: str
    name: str
    technique: str
    dtypes: tuple  # NumPy dtype names of the inputs this variant takes
    fn: Callable = field(repr=False, compare=False)
    default: bool = False
    # supports(inputs, params) -> None, or a reason why this variant cannot run that case
    # (e.g. an alignment need). The dispatch raises it; tests and benchmarks skip with it.
    supports: Optional[Callable] = field(default=None, repr=False, compare=False)
    # What an output's rounding error scales with. "terms": the magnitudes of that output's own
    # terms, so the tolerance policy (_check.py) holds on any input. "tile": the largest
    # magnitudes in a whole tile of outputs (Winograd's transforms), so it holds on inputs of
    # one scale only; such a variant is never a default.
    error_model: str = "terms"
    # Optional parameters this variant handles (matmul's transpose_a/transpose_b). The op's spec
    # passes such a parameter only when it is set (``OpSpec.opt_in``), and the dispatch refuses a
    # variant that does not take it, naming those that do: never a silently wrong result.
    takes: tuple = ()

    @property
    def key(self) -> str:
        return f"{self.op}/{self.backend}/{self.name}"

    def unsupported_reason(self, inputs: dict, params: dict) -> Optional[str]:
        return self.supports(inputs, params) if self.supports else None

    def as_dict(self) -> dict:
        return {"op": self.op, "backend": self.backend, "name": self.name,
                "technique": self.technique, "dtypes": list(self.dtypes),
                "default": self.default, "error_model": self.error_model, "takes": list(self.takes)}


_VARIANTS: dict[tuple[str, str, str], Variant] = {}


ERROR_MODELS = ("terms", "tile")


def register(op: str, backend: str, *, dtypes, default: bool = False, supports=None, name=None,
             error_model: str = "terms", takes=()):
    """Decorator: register ``fn`` as variant ``name or fn.__name__`` of ``op`` on ``backend``."""
    if error_model not in ERROR_MODELS:
        raise ValueError(f"error_model: expected one of {ERROR_MODELS}, got {error_model!r}")
    if default and error_model != "terms":
        raise ValueError("a default variant must meet the tolerance on any input (error_model='terms')")
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {OPS}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")

    def deco(fn):
        vname = name or fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()
        if not doc:
            raise ValueError(f"variant {op}/{backend}/{vname} needs a one-line docstring naming its technique")
        key = (op, backend, vname)
        if key in _VARIANTS:
            raise ValueError(f"variant {'/'.join(key)} registered twice")
        if default and any(v.default for v in _VARIANTS.values() if (v.op, v.backend) == (op, backend)):
            raise ValueError(f"{op}/{backend} already has a default variant")
        _VARIANTS[key] = Variant(op, backend, vname, doc[0], tuple(np.dtype(d).name if d != "bfloat16" else d for d in dtypes),
                                 fn, default, supports, error_model, tuple(takes))
        return fn

    return deco


def unregister(op: str, backend: str, name: str) -> None:
    """Remove a variant (tests use this to clean up deliberately broken variants)."""
    _VARIANTS.pop((op, backend, name), None)


def variants(op: Optional[str] = None, backend: Optional[str] = None) -> list[Variant]:
    """Registered variants, optionally filtered by op and backend, in registration order."""
    if op is not None and op not in OPS:
        raise ValueError(f"op: unknown op {op!r}; expected one of {list(OPS)}")
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend: unknown backend {backend!r}; expected one of {list(BACKENDS)}")
    _load(backend)
    return [v for v in _VARIANTS.values()
            if (op is None or v.op == op) and (backend is None or v.backend == backend)]


def get_variant(op: str, backend: str, name: Optional[str]) -> Variant:
    """The named variant, or the backend's default when ``name`` is None."""
    candidates = variants(op, backend)
    if not candidates:
        others = [b for b in BACKENDS if b != backend and variants(op, b)]
        raise ValueError(f"backend: {op} has no variants on backend {backend!r}; backends that have: "
                         f"{', '.join(others) or 'none'}")
    if name is None:
        for v in candidates:
            if v.default:
                return v
        raise ValueError(f"{op}/{backend} has no default variant registered")
    for v in candidates:
        if v.name == name:
            return v
    known = ", ".join(v.name for v in candidates) or "none"
    raise ValueError(f"variant: {op} has no variant {name!r} on backend {backend!r}; known: {known}")


def dtype_hint(op: str, backend: str, dtype: str, arg: str) -> str:
    """What to do with a dtype that ``backend`` refuses for ``op`` ('' when there is no hint):
    the CPU has no float16/bfloat16 arithmetic for matmul and conv2d."""
    if backend != "numpy" or dtype not in ("float16", "bfloat16"):
        return ""
    hint = f"; the CPU computes {op} in float32 or float64: pass {arg}.astype(np.float32)"
    gpu = [v.name for v in variants(op, "cuda") if dtype in v.dtypes]  # numba takes no 16-bit floats
    if gpu:
        hint += f", or use a GPU backend: backend='cuda', variant={gpu[0]!r}"
    return hint


# Backend packages, in the order they register: variants() lists in this order. numpy and cuda
# are cheap to import (the CUDA C++ launchers touch pykern._cuda only when called); numba_cuda
# imports numba.cuda, which takes a second or two, so it is imported only when a caller asks
# about the numba backend or about every backend: a NumPy-only program never pays for it.
_PACKAGES = (("numpy", "cpu"), ("cuda", "cuda"), ("numba", "numba_cuda"))
_loaded: set = set()


def _load(backend: Optional[str]) -> None:
    """Import the backend packages needed to list ``backend``'s variants (None: all of them).

    Packages always load in _PACKAGES order, so the registration order, and so the order of
    variants(), does not depend on which backend was asked about first."""
    import importlib
    for be, pkg in _PACKAGES:
        if be not in _loaded:
            _loaded.add(be)
            try:
                importlib.import_module(f"{__package__}.{pkg}")
            except ImportError as e:
                # numba or numba-cuda missing: the backend has no variants, and backends() says
                # why it is unavailable. Any other ImportError is a bug in pykern: raise it.
                if not (e.name or "").startswith("numba"):
                    raise
        if be == backend:
            return


def _load_all() -> None:
    _load(None)
