"""Op specifications: validation, output shape, cost model, test/benchmark cases, and each op's
float64 NumPy reference, the spec every variant is checked against.

Each op is one file here, ``pykern/ops/<name>.py``, defining ``SPEC`` (an OpSpec). Adding an op
is its file plus its name in ``OPS``: the registry, the dispatch, the checker, the tests and the
benchmarks all take the list of ops from here.
"""
from importlib import import_module

# The ops, in the order every listing shows them.
OPS = ("relu", "matmul", "conv2d")

SPECS = {name: import_module(f"{__name__}.{name}").SPEC for name in OPS}

__all__ = ["OPS", "SPECS"]
