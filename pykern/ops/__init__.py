"""Op specifications: validation, output shape, cost model, test/benchmark cases, and each op's
float64 NumPy reference, the spec every variant is checked against.

Each op's spec lives in ``pykern/ops/<file>.py``: a file defines ``SPEC`` (one op), or ``SPECS``
(ops that share their code, as conv2d's two gradients do). Adding an op is its file plus the
file's name in ``FILES``: the registry, the dispatch, the checker, the tests and the benchmarks
all take the list of ops from here.
"""
from importlib import import_module

# The op files, in the order every listing shows their ops.
FILES = ("relu", "matmul", "conv2d", "relu_backward", "conv2d_backward")


def _specs_of(file: str) -> tuple:
    mod = import_module(f"{__name__}.{file}")
    return tuple(getattr(mod, "SPECS", None) or (mod.SPEC,))


SPECS = {s.name: s for f in FILES for s in _specs_of(f)}
OPS = tuple(SPECS)

__all__ = ["OPS", "SPECS"]
