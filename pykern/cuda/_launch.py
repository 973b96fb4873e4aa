"""Registering every CUDA C++ variant table, and the one launch function all their rows share.

Each row is bound by the generic binder (csrc/module.cpp) as
``<op>_<variant>(ins, out, dims, dtype, stream=0, config=-1)``: ``ins`` the input pointers in the
op spec's ``inputs`` order (0 for an absent optional input), ``dims`` the spec's ``dims(problem)``
(the fields ``dims_fields`` names, which the C++ side exports as ``<op>_fields``). Device arrays
arrive as ArrayInfo records (ptr, shape, dtype, stream). Kernels launch on the first input's
``stream``: the stream its producer named in __cuda_array_interface__ (CuPy's or PyTorch's
current stream), else 0, the legacy default stream, which is ordered with every blocking stream
(pykern's own copies use it).
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from .._device import ext
from .._registry import register


def kernel(name: str):
    """The bound function ``name`` from pykern._cuda (RuntimeError if the extension is missing)."""
    fn = getattr(ext(), name, None)
    if fn is None:
        raise RuntimeError(f"pykern._cuda has no kernel {name!r}: the extension is older than the "
                           "Python package; reinstall pykern")
    return fn


@functools.lru_cache(maxsize=None)
def _copy() -> tuple:
    try:
        from ._variant_tables import INFO, TABLES
        return TABLES, INFO
    except ImportError:  # a source tree that was never built: read what the build would copy
        return source_copy(Path(__file__).resolve().parents[2])


def source_copy(root: Path) -> tuple:
    """({op: rows}, {op: info}) of root/kernels/**/*.cu, read by root/csrc/variant_tables.py
    (({}, {}) where that script is absent)."""
    script = Path(root) / "csrc" / "variant_tables.py"
    if not script.is_file():
        return {}, {}
    spec = importlib.util.spec_from_file_location("_pykern_variant_tables_reader", script)
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)
    return reader.read_all(sorted((Path(root) / "kernels").rglob("*.cu")))


def source_tables(root: Path) -> dict:
    """{op: rows} of root/kernels/**/*.cu, as the build would copy them ({} where absent)."""
    return source_copy(root)[0]


def ops() -> list:
    """The ops with a variant table, in name order."""
    return list(_copy()[0])


def table(op: str) -> list:
    """The rows of ``op``'s variant table (name, technique, dtypes, default, kernel, takes), as
    copied at build time: reading them needs no extension and no driver."""
    return _copy()[0].get(op, [])


def info(op: str) -> dict:
    """``op``'s registration line: its inputs in order, the optional ones, and whether the table
    has an ``unsupported`` rule."""
    return _copy()[1][op]


def configs(op: str, variant: str) -> list:
    """Names of the configurations the row ``variant`` of ``op`` can be forced to with
    ``config=i`` (conv2d implicit_gemm's tiles; [] for a row without any)."""
    return list(kernel(f"{op}_configs")(variant))


def _supports(op: str, variant: str):
    """supports(problem) for a row of a table with an ``unsupported`` rule: the C++ rule the
    binder also enforces, so ``supports`` and the launch always agree."""
    def supports(problem):
        return kernel(f"{op}_unsupported")(variant, problem.dims, problem.dtype.name) or None
    return supports


def register_table(op: str) -> None:
    """Registers every row of ``op``'s table, in order, as a cuda variant. The executor calls a
    row's function as ``fn(problem, ins, out)`` (Variant.takes_problem): one launch for every op."""
    rules = info(op)["unsupported"]
    for row in table(op):
        def run(problem, ins, out, _kernel=row["kernel"]):
            first = ins[0]
            kernel(_kernel)(tuple(0 if a is None else a.ptr for a in ins), out.ptr, problem.dims,
                            first.dtype.name, first.stream)
        run.__name__ = run.__qualname__ = row["name"]
        run.__doc__ = row["technique"]
        register(op, "cuda", dtypes=row["dtypes"], default=row["default"], name=row["name"],
                 supports=_supports(op, row["name"]) if rules else None, takes=row["takes"],
                 takes_problem=True)(run)
