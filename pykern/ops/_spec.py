"""What every op specification provides (see relu.py, matmul.py, conv2d.py): each op file puts
its float64 reference at the top, then its OpSpec subclass, then ``SPEC``, its one instance."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._arrays import ArrayInfo

FLOAT_DTYPES = ("float16", "float32", "float64")


class OpSpec:
    """Base class: subclasses define the op's arguments, shape rules and cost model.

    A *case* is a dict of sizes and parameters (``{"M": 17, "N": 33, "K": 65}``); tests, checks,
    the demo and the benchmarks all build inputs from cases through ``make_inputs``.
    """

    name: str = ""
    # Where listings put the op (pk.variants(), the CLI, reports): by rank, then by name. Forward
    # ops rank before their gradients; a new op that sets none comes last.
    rank: int = 1000
    inputs: tuple = ()  # argument names in the order kernels receive them
    optional: tuple = ()  # inputs that may be None
    rate_unit: str = "GFLOP/s"  # what the demo and benchmarks report
    # Elementwise ops may write their output over their input (out=x); for the others every
    # output element depends on many inputs, so a kernel writing in place would read its own
    # results: out must not overlap any input.
    in_place_ok: bool = False
    # Optional parameters passed to a variant only when set, and only to variants that take them
    # (Variant.takes); the dispatch refuses the others, naming the variants that do.
    opt_in: tuple = ()

    # --- validation ------------------------------------------------------------------------
    def validate(self, infos: dict, params: dict) -> tuple[tuple, np.dtype, dict]:
        """Check shapes/dtypes/params; return (output shape, output dtype, normalized params)."""
        raise NotImplementedError

    def same_dtype(self, infos: dict) -> np.dtype:
        present = [i for i in infos.values() if i is not None]
        # Each dtype is checked before they are compared: an int64 x beside a float32 w is refused
        # for being int64, not only for differing.
        for info in present:
            if info.dtype.name not in FLOAT_DTYPES + ("bfloat16",):
                raise TypeError(f"{info.name}: dtype {info.dtype.name} is not supported; expected one of "
                                f"{', '.join(FLOAT_DTYPES)} (or bfloat16 where a variant lists it)")
        first = present[0]
        for other in present[1:]:
            if other.dtype != first.dtype:
                raise TypeError(f"{other.name} has dtype {other.dtype.name} but {first.name} has "
                                f"{first.dtype.name}; all inputs must share one dtype")
        return first.dtype

    def output_dtype(self, in_dtype: np.dtype) -> np.dtype:
        return in_dtype

    def output_from(self, infos: dict, params: dict) -> str:
        """The arguments that set the output's size, as the caller gave them, for the message when
        it is too big to allocate (``params`` as ``validate`` returned them)."""
        return "the shapes of " + ", ".join(f"{i.name} {i.shape}" for i in infos.values() if i is not None)

    # --- math ------------------------------------------------------------------------------
    def reference(self, arrays: dict, params: dict) -> np.ndarray:
        """The float64 NumPy reference of this op."""
        raise NotImplementedError

    def magnitude(self, arrays: dict, params: dict) -> np.ndarray:
        """Per-output error scale: the same op on |inputs| (sum of |terms|), float64."""
        raise NotImplementedError

    # --- cases -----------------------------------------------------------------------------
    def make_inputs(self, case: dict, dtype: str, rng: np.random.Generator) -> tuple[dict, dict]:
        """Seeded random inputs (never zeros or constants) and params for ``case``."""
        raise NotImplementedError

    def test_cases(self, backend: str, simulator: bool = False) -> list[dict]:
        raise NotImplementedError

    def demo_case(self, simulator: bool = False) -> dict:
        raise NotImplementedError

    def flops(self, case: dict) -> float:
        raise NotImplementedError

    def bytes_moved(self, case: dict, itemsize: int) -> float:
        raise NotImplementedError

    def case_id(self, case: dict) -> str:
        return ",".join(f"{k}={v}" for k, v in case.items())

    # --- compiled kernels -------------------------------------------------------------------
    # The problem dims a compiled (CUDA C++) kernel takes, as int64 in this order: the fields of
    # the op's C++ dims struct (PYKERN_DIMS in kernels/), which the extension exports as
    # <op>_fields and tests/test_cuda_tables.py compares with these names.
    dims_fields: tuple = ()

    def dims(self, problem) -> tuple:
        """The values of ``dims_fields`` for ``problem`` (a pykern._problem.Problem), as ints."""
        raise NotImplementedError(f"op {self.name!r} has no dims() for compiled kernels; define dims_fields "
                                  "and dims() in its spec (pykern/ops/) to give it a CUDA C++ table")


def random_array(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    """Standard-normal values, away from exact zeros, in ``dtype`` (bfloat16 via ml_dtypes)."""
    x = rng.standard_normal(shape)
    x[np.abs(x) < 1e-3] = 0.5  # exact zeros would hide sign and "unwritten" bugs
    if dtype == "bfloat16":
        import ml_dtypes
        return x.astype(ml_dtypes.bfloat16)
    return x.astype(dtype)


def check_rank(info: Optional[ArrayInfo], rank: int, layout: str) -> None:
    if info is not None and len(info.shape) != rank:
        raise ValueError(f"{info.name}: expected a {rank}-D array {layout}, got shape {info.shape}")
