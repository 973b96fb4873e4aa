"""What every op specification provides (see relu.py, matmul.py, conv2d.py): each op file puts
its float64 reference at the top, then its OpSpec subclass, then ``SPEC``, its one instance.

The benchmarks (pykern/benchmark/) know nothing of any op: its benchmark cases, its ``--sizes``
grammar, its plot axis and its library baselines are the spec's, each with a default here, so
an op that declares none of them is still benchmarked (on its largest test cases)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._arrays import ArrayInfo, dtype_name

FLOAT_DTYPES = ("float16", "float32", "float64")
_TAKEN = frozenset(FLOAT_DTYPES + ("bfloat16",))  # by some variant; each variant lists its own


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
        """Check shapes/dtypes/params; return (output shape, output dtype, normalized params).

        A pure function of the arrays' kinds, shapes, dtypes and strides and of ``params``: the
        dispatch reuses its result for a later call with the same ones (pykern/_dispatch.py)."""
        raise NotImplementedError

    def same_dtype(self, infos: dict) -> np.dtype:
        present = [i for i in infos.values() if i is not None]
        # Each dtype is checked before they are compared: an int64 x beside a float32 w is refused
        # for being int64, not only for differing.
        for info in present:
            if dtype_name(info.dtype) not in _TAKEN:
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
        """The case in one token, as tables print it and ``--sizes`` reads it back: no ',', ';'
        or '=' (they separate --sizes lists and groups), e.g. M17_N33_K65 or shape3x5."""
        return "_".join(k + ("x".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v))
                        for k, v in case.items())

    def work(self, case: dict, itemsize: int = 4) -> float:
        """What the op's rate counts for this case: bytes for an op rated in GB/s, else FLOPs."""
        return self.bytes_moved(case, itemsize) if self.rate_unit == "GB/s" else self.flops(case)

    # --- benchmarks --------------------------------------------------------------------------
    # Benchmark cases are kept apart from the test cases; the defaults fall back on the test
    # cases only so that a new op is benchmarked before anyone chose its sizes.
    DEFAULT_BENCH_CASES = 3  # how many of its largest test cases an op without bench cases runs

    x_label: str = "case"  # the plots' x axis: what a case is, in words
    # Whether the cases are unrelated points (the layers of a network) rather than one size
    # growing: plots then draw markers, never a line between them.
    categorical: bool = False

    def bench_cases(self, device: str) -> list[dict]:
        """The cases a default sweep runs on ``device`` ("cpu" or "gpu"); by default the op's
        largest few test cases."""
        return sorted(self.test_cases("numpy"), key=self.work)[-self.DEFAULT_BENCH_CASES:]

    def bench_late_cases(self, device: str) -> list[dict]:
        """Cases a default sweep runs after every other entry, while its time budget lasts
        (none by default)."""
        return []

    def compare_cases(self) -> list[dict]:
        """The sizes ``pykern compare`` runs, smallest first; by default the CPU bench cases."""
        return self.bench_cases("cpu")

    def _known_cases(self) -> list[dict]:
        """Every case the op names: its test cases, then its benchmark and comparison cases."""
        return self.test_cases("numpy") + self.bench_cases("cpu") + self.bench_cases("gpu") + self.compare_cases()

    def size_forms(self) -> str:
        """What ``--sizes`` takes for this op, in plain words (--help and the errors print it);
        by default the ids of its test and benchmark cases."""
        ids = list(dict.fromkeys(self.case_id(c) for c in self._known_cases()))
        return (f"a case id as the tables print it, such as {' or '.join(ids[-2:])} (numbers may be written "
                f"2^N; {self.name}'s spec declares no other size forms)")

    def parse_size(self, token: str) -> Optional[dict]:
        """The case one ``--sizes`` token names (any 2^N already written out as its value), or
        None when the token is none of this op's forms; by default one of its known case ids."""
        return next((c for c in self._known_cases() if self.case_id(c) == token), None)

    def size_grammar(self) -> object:
        """Who reads this op's ``--sizes``: the spec class whose parse_size it inherits, which
        ops sharing that class share (one plain size list may go to all of them); for the
        default grammar, the op's own case ids, the op itself."""
        owner = next(c for c in type(self).__mro__ if "parse_size" in vars(c))
        return self.name if owner is OpSpec else owner

    def tick_label(self, case: dict) -> str:
        """A short plot tick label for ``case``; by default its id."""
        return self.case_id(case)

    def baselines(self) -> list:
        """The library baselines timed beside the variants (pykern.ops._baselines.Baseline); per
        device, the first listed is the one ratios refer to. None by default."""
        return []

    def gpu_workspace(self, case: dict, out_shape: tuple) -> int:
        """Device bytes a GPU variant allocates beyond its inputs and output (0 by default), for
        the benchmarks' memory estimate."""
        return 0

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


def sizes_at_least_one(case: dict, token: str, dims) -> dict:
    """``case`` when every entry of ``dims`` (keys of the case; a tuple counts each entry) is
    >= 1, else ValueError naming the --sizes token."""
    values = [v for k in dims if k in case for v in (case[k] if isinstance(case[k], tuple) else (case[k],))]
    if any(int(v) < 1 for v in values):
        raise ValueError(f"sizes: every dimension in {token!r} must be >= 1")
    return case


def check_rank(info: Optional[ArrayInfo], rank: int, layout: str) -> None:
    if info is not None and len(info.shape) != rank:
        raise ValueError(f"{info.name}: expected a {rank}-D array {layout}, got shape {info.shape}")
