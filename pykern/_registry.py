"""The one registry of kernel variants: tests, benchmarks, the CLI and plots all read it.

A variant is registered where it is written, with ``@register(op, backend, dtypes=...)`` on
its launcher; the function name is the variant name and the first docstring line names the
technique. Adding a variant is one function plus its decorator. A backend's variants are
registered when its package is first imported, which ``load`` does, guarded, the first time
anyone asks about that backend.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from ._backends import EXECUTORS
from .ops import SPECS

# Names in listing order, each from its one place: the ops from pykern/ops/ (SPECS), the
# backends from _backends.EXECUTORS.
BACKENDS = tuple(EXECUTORS)


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
    # supports(problem) -> None, or a reason why this variant cannot run that case (e.g. an
    # alignment need); problem: the call as the dispatch resolved it (pykern/_problem.py). The
    # dispatch raises it; tests and benchmarks skip with it.
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
    # A host variant that is one NumPy ufunc pass: no BLAS, no threads, and no floating-point
    # warning on any input (compares and selects only). The NumPy executor calls it bare, without
    # the fork gate (_fork.py) and the errstate that every other host variant runs inside, which
    # would be a third of a small call's cost. tests/test_hostile.py holds each one to that.
    bare: bool = False
    # How the executor calls ``fn``: False, fn(*arrays, out, **params), as a variant written in
    # Python is called; True, fn(problem, arrays, out), as the rows of a compiled table are (one
    # generic launch per table, the sizes from the op's spec.dims(problem)).
    takes_problem: bool = False

    @property
    def key(self) -> str:
        return f"{self.op}/{self.backend}/{self.name}"

    def unsupported_reason(self, problem) -> Optional[str]:
        """None, or why this variant cannot run ``problem`` (a pykern._problem.Problem)."""
        return self.supports(problem) if self.supports else None

    def as_dict(self) -> dict:
        return {"op": self.op, "backend": self.backend, "name": self.name,
                "technique": self.technique, "dtypes": list(self.dtypes),
                "default": self.default, "error_model": self.error_model, "takes": list(self.takes)}


_VARIANTS: dict[tuple[str, str, str], Variant] = {}
_DEFAULTS: dict[tuple[str, str], Variant] = {}  # (op, backend) -> its default: the dispatch's one lookup
# (op, backend) -> the default that make_default replaced: it still serves the dtypes the new one
# does not take (relu's compiled simd takes float32/float64; float16 stays NumPy's).
_FALLBACK_DEFAULTS: dict[tuple[str, str], Variant] = {}
# (op, backend) -> rule(infos, params) -> None or the name of the variant a call without
# ``variant=`` runs instead of the default for these shapes (set_route; pykern/cpu/_compiled.py).
_ROUTES: dict[tuple[str, str], Callable] = {}


ERROR_MODELS = ("terms", "tile")

# Bumped by every change to the tables above (register, make_default, set_route, unregister): the
# dispatch's plans (pykern/_dispatch.py) hold what was decided under one generation only.
_generation = 0


def generation() -> int:
    """How many changes the registry has seen."""
    return _generation


def _changed() -> None:
    global _generation
    _generation += 1


def register(op: str, backend: str, *, dtypes, default: bool = False, supports=None, name=None,
             error_model: str = "terms", technique: Optional[str] = None, takes=(), bare: bool = False,
             takes_problem: bool = False):
    """Decorator: register ``fn`` as variant ``name or fn.__name__`` of ``op`` on ``backend``.

    ``technique``: the one line naming the technique, for variants registered from a table (the
    CUDA C++ kernels' own); by default the first line of ``fn``'s docstring. ``takes``: the optional
    parameters the variant handles (see Variant.takes). ``bare``: see Variant.bare (host only).
    ``takes_problem``: see Variant.takes_problem (the compiled tables' rows)."""
    if bare and backend != "numpy":
        raise ValueError("bare: only a host (numpy) variant runs outside the fork gate")
    if error_model not in ERROR_MODELS:
        raise ValueError(f"error_model: expected one of {ERROR_MODELS}, got {error_model!r}")
    if default and error_model != "terms":
        raise ValueError("a default variant must meet the tolerance on any input (error_model='terms')")
    if op not in SPECS:  # the dict itself, not a copy: an op added at run time counts
        raise ValueError(f"unknown op {op!r}; expected one of {tuple(SPECS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")

    def deco(fn):
        vname = name or fn.__name__
        doc = [technique] if technique else (fn.__doc__ or "").strip().splitlines()
        if not doc or not doc[0].strip():
            raise ValueError(f"variant {op}/{backend}/{vname} needs a one-line docstring naming its technique")
        key = (op, backend, vname)
        if key in _VARIANTS:
            raise ValueError(f"variant {'/'.join(key)} registered twice")
        if default and any(v.default for v in _VARIANTS.values() if (v.op, v.backend) == (op, backend)):
            raise ValueError(f"{op}/{backend} already has a default variant")
        names = tuple(np.dtype(d).name if d != "bfloat16" else d for d in dtypes)
        _VARIANTS[key] = Variant(op, backend, vname, doc[0], names, fn, default, supports, error_model,
                                 tuple(takes), bare, takes_problem)
        if default:
            _DEFAULTS[(op, backend)] = _VARIANTS[key]
        _changed()
        return fn

    return deco


def make_default(op: str, backend: str, name: str) -> None:
    """Make variant ``name`` the default of ``op`` on ``backend`` in place of the current one
    (pykern/cpu/_compiled.py moves a host default to a compiled row where measurements favour it).
    The same rule as ``register(default=True)``: only an error_model "terms" variant. The replaced
    default goes on serving the dtypes the new one does not take (fallback_default)."""
    key = (op, backend, name)
    if key not in _VARIANTS:
        raise ValueError(f"variant {'/'.join(key)} is not registered")
    new = _VARIANTS[key]
    if new.error_model != "terms":
        raise ValueError("a default variant must meet the tolerance on any input (error_model='terms')")
    old = _DEFAULTS.get((op, backend))
    if old is not None:
        _VARIANTS[(op, backend, old.name)] = _FALLBACK_DEFAULTS[(op, backend)] = replace(old, default=False)
    _VARIANTS[key] = _DEFAULTS[(op, backend)] = replace(new, default=True)
    _changed()


def set_route(op: str, backend: str, rule: Callable) -> None:
    """Let ``rule(infos, params)`` (the call's ArrayInfos and normalized parameters) name, for some
    shapes, the variant that a call without ``variant=`` runs in place of the default: None keeps
    the default. Each named variant must be an error_model "terms" one, like any default."""
    _ROUTES[(op, backend)] = rule
    _changed()


def routed(op: str, backend: str, infos, params) -> Optional[Variant]:
    """The variant ``set_route``'s rule picks for this call, or None (the default runs)."""
    rule = _ROUTES.get((op, backend))
    name = rule(infos, params) if rule is not None else None
    if name is None:
        return None
    v = _VARIANTS.get((op, backend, name))
    if v is None or v.error_model != "terms":
        raise RuntimeError(f"the default route of {op}/{backend} names {name!r}, which is not a registered "
                           "error_model 'terms' variant")
    return v


def fallback_default(op: str, backend: str) -> Optional[Variant]:
    """What a call without ``variant=`` runs for a dtype the default does not take: the default
    that make_default replaced (None where there is none). Its dtypes are the ones a refusal names."""
    return _FALLBACK_DEFAULTS.get((op, backend))


def unregister(op: str, backend: str, name: str) -> None:
    """Remove a variant (tests use this to clean up deliberately broken variants)."""
    v = _VARIANTS.pop((op, backend, name), None)
    if v is not None and v.default:
        del _DEFAULTS[(op, backend)]
    fb = _FALLBACK_DEFAULTS.get((op, backend))
    if fb is not None and fb.name == name:
        del _FALLBACK_DEFAULTS[(op, backend)]
    _changed()


def variants(op: Optional[str] = None, backend: Optional[str] = None) -> list[Variant]:
    """Registered variants, optionally filtered by op and backend: backends in BACKENDS order,
    each backend's in registration order (whichever backend was loaded first). A backend whose
    package cannot be imported has none; pk.backends() says why."""
    if op is not None and op not in SPECS:
        raise ValueError(f"op: unknown op {op!r}; expected one of {list(SPECS)}")
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend: unknown backend {backend!r}; expected one of {list(BACKENDS)}")
    for be in BACKENDS if backend is None else (backend,):
        load(be)
    rank = {be: i for i, be in enumerate(BACKENDS)}
    return sorted((v for v in _VARIANTS.values()
                   if (op is None or v.op == op) and (backend is None or v.backend == backend)),
                  key=lambda v: rank[v.backend])


def get_variant(op: str, backend: str, name: Optional[str]) -> Variant:
    """The named variant, or the backend's default when ``name`` is None: one dict lookup once
    ``backend`` is loaded; the listing below only builds the error."""
    if backend in _loaded:
        v = _DEFAULTS.get((op, backend)) if name is None else _VARIANTS.get((op, backend, name))
        if v is not None:
            return v
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
    """What to do with a dtype that ``backend`` refuses for ``op`` ('' when there is no hint): the
    CPU takes no bfloat16, and float16 only where a NumPy variant lists it (relu)."""
    if backend != "numpy" or dtype not in ("float16", "bfloat16"):
        return ""
    takes = [d for d in ("float16", "float32", "float64") if any(d in v.dtypes for v in variants(op, "numpy"))]
    hint = (f"; NumPy has no {dtype} arithmetic, and the CPU computes {op} in "
            f"{', '.join(takes[:-1])} or {takes[-1]}: pass {arg}.astype(np.float32)")
    gpu = [v.name for v in variants(op, "cuda") if dtype in v.dtypes]  # numba takes no 16-bit floats
    if gpu:
        hint += f", or use a GPU backend: backend='cuda', variant={gpu[0]!r}"
    return hint


# Each backend's variants are registered by importing its package (_backends.EXECUTORS names
# it), once, the first time someone asks about that backend: a NumPy-only program never imports
# numba.cuda (a second or two). An ImportError from outside pykern (numba or numba-cuda missing
# or broken) makes the backend unavailable, and pk.backends() gives the error as the reason.
_loaded: set = set()
_load_errors: dict = {}  # backend -> why its package cannot be imported


def load(backend: str) -> Optional[str]:
    """Import ``backend``'s package, registering its variants (once); None, or the reason it
    cannot be imported."""
    if backend in _loaded or backend in _load_errors:
        return _load_errors.get(backend)
    executor = EXECUTORS[backend]
    package = f"{__package__}.{executor.package}"
    try:
        importlib.import_module(package)
    except ImportError as e:
        if (e.name or "").split(".")[0] == __package__:
            raise  # one of pykern's own modules is missing: a bug to see, not a backend to hide
        for key in [k for k in _VARIANTS if k[1] == backend]:
            unregister(*key)  # registered before the failing import: they could not run
        _load_errors[backend] = (f"{package} cannot be imported ({type(e).__name__}: {e})"
                                 + (f"; {executor.requires}" if executor.requires else ""))
        return _load_errors[backend]
    _loaded.add(backend)
    return None


def import_op_modules(package: str, path) -> None:
    """Import every module of a backend package (``package``, its ``__path__``) whose name does
    not start with '_': one per op, each registering its variants. A new op's module is found by
    being there; no package keeps a list of its ops."""
    for module in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
