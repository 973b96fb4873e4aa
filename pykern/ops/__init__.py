"""Op specifications: validation, output shape, cost model, test/benchmark cases, and each op's
float64 NumPy reference, the spec every variant is checked against.

Each op's spec lives in ``pykern/ops/<file>.py``: a file defines ``SPEC`` (one op), or ``SPECS``
(ops that share their code, as conv2d's two gradients do). Adding an op is adding its file: the
files are found by being here, and the registry, the dispatch, the checker, the tests and the
benchmarks all take the list of ops from ``OPS``. Listings show the ops by their spec's ``rank``,
then by name.
"""
import pkgutil
from importlib import import_module


def _specs_of(file: str) -> tuple:
    mod = import_module(f"{__name__}.{file}")
    return tuple(getattr(mod, "SPECS", None) or (mod.SPEC,))


def _discover() -> dict:
    specs = [s for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") for s in _specs_of(m.name)]
    return {s.name: s for s in sorted(specs, key=lambda s: (s.rank, s.name))}


SPECS = _discover()
OPS = tuple(SPECS)

__all__ = ["OPS", "SPECS"]
