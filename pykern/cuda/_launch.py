"""Calling a bound kernel, and registering an op's CUDA C++ variants from its variant table.

Device arrays arrive as ArrayInfo records (ptr, shape, dtype, stream). Kernels launch on the
first input's ``stream``: the stream its producer named in __cuda_array_interface__ (CuPy's or
PyTorch's current stream), else 0, the legacy default stream, which is ordered with every
blocking stream (pykern's own copies use it).
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from .._device import ext
from .._registry import register


def kernel(name: str):
    """The bound launcher ``name`` from pykern._cuda (RuntimeError if the extension is missing)."""
    fn = getattr(ext(), name, None)
    if fn is None:
        raise RuntimeError(f"pykern._cuda has no kernel {name!r}: the extension is older than the "
                           "Python package; reinstall pykern")
    return fn


@functools.lru_cache(maxsize=None)
def _tables() -> dict:
    try:
        from ._variant_tables import TABLES
        return TABLES
    except ImportError:  # a source tree that was never built: read what the build would copy
        return source_tables(Path(__file__).resolve().parents[2])


def source_tables(root: Path) -> dict:
    """The tables of root/kernels/*.cu, read by root/csrc/variant_tables.py ({} where absent)."""
    script = Path(root) / "csrc" / "variant_tables.py"
    if not script.is_file():
        return {}
    spec = importlib.util.spec_from_file_location("_pykern_variant_tables_reader", script)
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)
    return reader.read_tables(sorted((Path(root) / "kernels").glob("*.cu")))


def table(op: str) -> list:
    """The rows of kernels/<op>.cu's variant table (name, technique, dtypes, default, kernel, takes),
    as copied at build time: reading them needs no extension and no driver."""
    return _tables().get(op, [])


def register_table(op: str, launch, supports=None) -> None:
    """Registers every row of ``op``'s table, in order, as a cuda variant that runs
    ``launch(bound_kernel, *arrays, **params)``; ``supports(name)`` gives a row's rule, if any."""
    for row in table(op):
        def run(*args, _kernel=row["kernel"], **kwargs):
            launch(kernel(_kernel), *args, **kwargs)
        run.__name__ = run.__qualname__ = row["name"]
        run.__doc__ = row["technique"]
        register(op, "cuda", dtypes=row["dtypes"], default=row["default"], name=row["name"],
                 supports=supports(row["name"]) if supports else None, takes=row.get("takes", ()))(run)
