"""Equivalence with the float64 NumPy reference: the one tolerance policy, and pk.check().

Tolerance policy (the only place it is written down). An output element passes when

    |got - ref| <= atol + rtol * mag

where ref is the float64 reference on the same (already rounded) inputs and mag is the op
applied to |inputs| (for matmul |a| @ |b|, for conv2d conv(|x|, |w|) + |bias|, for relu |ref|):
the sum of the magnitudes of the terms, which bounds a summation's rounding error
(|error| <= gamma_n * mag, gamma_n ~ n*u worst case, ~sqrt(n)*u in practice). Using mag rather
than |ref| keeps outputs that cancel to near zero from failing honest kernels, while rtol stays
tight. rtol is a small multiple of the unit roundoff u of the lowest precision involved:

    dtype     u          rtol    atol    why
    float64   1.1e-16    1e-12   1e-12   ~1e4 u: blocked reductions of up to ~1e5 terms
    float32   6.0e-8     1e-5    1e-6    ~170 u: sqrt(n)*u for n up to ~1e4, with headroom
    float16   4.9e-4     2e-3    1e-3    4 u: inputs exact in fp32, fp32 accumulation, fp16 output
    bfloat16  3.9e-3     1.6e-2  1e-2    4 u, as float16

Kernels that must be exact (relu) are also tested for bit equality in the tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._backends import on_simulator, require
from ._dispatch import Unsupported, prepare
from ._registry import get_variant
from .ops import SPECS

TOLERANCES = {  # dtype -> (rtol, atol); see the module docstring for the reasons
    "float64": (1e-12, 1e-12),
    "float32": (1e-5, 1e-6),
    "float16": (2e-3, 1e-3),
    "bfloat16": (1.6e-2, 1e-2),
}
_PRECISION_ORDER = ("bfloat16", "float16", "float32", "float64")


def tolerance_key(*dtypes) -> str:
    """The lowest precision among the dtypes involved decides the tolerance."""
    names = [np.dtype(d).name if not isinstance(d, str) else d for d in dtypes]
    return min(names, key=_PRECISION_ORDER.index)


@dataclass
class Comparison:
    """How one output compares with the reference."""

    ok: bool
    dtype: str
    n_bad: int
    n_total: int
    max_rel_err: float  # max |got - ref| / max(mag, tiny)
    first_bad: list = field(default_factory=list)  # up to 5 (index, got, ref)
    nan_mismatch: int = 0  # positions where exactly one of got/ref is NaN or Inf differs
    # max |got - ref| / (atol + rtol*mag): the worst element's error as a share of what the
    # policy allows (<= 1 passes); inf when a NaN/Inf differs
    worst_vs_tol: float = 0.0

    def message(self) -> str:
        if self.ok:
            return f"ok ({self.dtype}, max rel err {self.max_rel_err:.2e})"
        rtol, atol = TOLERANCES[self.dtype]
        lines = [f"{self.n_bad} of {self.n_total} elements outside |got-ref| <= {atol:g} + {rtol:g}*mag "
                 f"({self.dtype}); max rel err {self.max_rel_err:.3e}"]
        if self.nan_mismatch:
            lines.append(f"{self.nan_mismatch} NaN/Inf mismatches")
        for idx, g, r in self.first_bad:
            lines.append(f"  at {idx}: got {g!r}, expected {r!r}")
        return "\n".join(lines)


# compare() works through the outputs this many elements at a time: its float64 temporaries stay
# in cache, and a demo's 16 M-element output does not map (and page-fault) a fresh 128 MB
# array for each of them.
_CHUNK = 1 << 16


def compare(got, ref: np.ndarray, mag: np.ndarray, dtype: str) -> Comparison:
    """Compare ``got`` (any float dtype) with float64 ``ref`` under the policy above."""
    rtol, atol = TOLERANCES[dtype]
    got = np.asarray(got)
    if got.shape != ref.shape:
        return Comparison(False, dtype, ref.size, ref.size, float("inf"),
                          [(("shape",), got.shape, ref.shape)])
    flat_got, flat_ref = got.reshape(-1), ref.reshape(-1)
    flat_mag = np.broadcast_to(mag, ref.shape).reshape(-1)
    tiny = np.finfo(np.float64).tiny
    n_bad = n_special_bad = 0
    max_rel = worst = 0.0
    first = []
    for start in range(0, ref.size, _CHUNK):
        g = flat_got[start:start + _CHUNK].astype(np.float64)
        r, m = flat_ref[start:start + _CHUNK], flat_mag[start:start + _CHUNK]
        # Non-finite values must match exactly (NaN with NaN, +Inf with +Inf).
        special = ~(np.isfinite(g) & np.isfinite(r))
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(g - r)
            tol = atol + rtol * m
            bad = err > tol
            if special.any():
                special_bad = special & ~((np.isnan(g) & np.isnan(r)) | (g == r))
                n_special_bad += int(special_bad.sum())
                bad = np.where(special, special_bad, bad)
                err[special] = 0.0
            worst = max(worst, float((err / tol).max(initial=0.0)))
            max_rel = max(max_rel, float((err / np.maximum(m, tiny)).max(initial=0.0)))
        count = int(bad.sum())
        if count and len(first) < 5:
            for i in np.flatnonzero(bad)[:5 - len(first)]:
                ix = tuple(int(v) for v in np.unravel_index(start + int(i), ref.shape))
                first.append((ix, got[ix].item(), ref[ix].item()))
        n_bad += count
    if n_special_bad:
        worst = float("inf")
    return Comparison(n_bad == 0, dtype, n_bad, int(ref.size), max_rel, first, n_special_bad, worst)


def run_case(variant, case: dict, dtype: str, seed: int) -> Comparison:
    """Run ``variant`` on seeded random inputs for ``case`` (host arrays in, poisoned output)
    and compare with the float64 reference. Raises Unsupported if the variant cannot run it."""
    arrays, params = SPECS[variant.op].make_inputs(case, dtype, np.random.default_rng(seed))
    return run_arrays(variant, arrays, params)


def run_arrays(variant, arrays: dict, params: dict) -> Comparison:
    """Run ``variant`` on the host ``arrays`` (name -> array or None) with a poisoned output and
    compare with the float64 reference on the same (already rounded) inputs. Raises Unsupported
    if the variant cannot run them."""
    spec = SPECS[variant.op]
    prepared = prepare(variant.op, arrays, params, backend=variant.backend,
                       variant=variant.name, poison=True)
    prepared.run()
    got = prepared.finish()
    arrays64 = {k: (None if v is None else v.astype(np.float64)) for k, v in arrays.items()}
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite inputs: inf * 0 is the point
        ref = spec.reference(arrays64, prepared.params)
        mag = spec.magnitude(arrays64, prepared.params)
    in_dtype = next(v.dtype for v in arrays.values() if v is not None)
    return compare(got, ref, mag, tolerance_key(in_dtype, got.dtype))


@dataclass
class CheckReport:
    """pk.check()'s answer: one line per (dtype, case, trial), and whether all passed."""

    op: str
    backend: str
    variant: str
    passed: bool
    results: list  # (dtype, case_id, seed, Comparison or skip reason)

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        """One line: how many runs were checked and passed, and the worst error against its
        tolerance (1.0x is the limit)."""
        done = [r for r in self.results if isinstance(r[3], Comparison)]
        n_pass = sum(r[3].ok for r in done)
        n_skip = len(self.results) - len(done)
        line = (f"{self.op}/{self.backend}/{self.variant}: {'PASS' if self.passed else 'FAIL'}: "
                f"{len(done)} checked, {n_pass} passed, {len(done) - n_pass} failed"
                + (f", {n_skip} skipped" if n_skip else "")
                + ("" if done else " (the variant declined every case: nothing was checked)"))
        if done:
            dtype, cid, seed, worst = max(done, key=lambda r: r[3].worst_vs_tol)
            rtol, atol = TOLERANCES[worst.dtype]
            line += (f"; worst error {worst.worst_vs_tol:.2g}x the tolerance (|got-ref| <= {atol:g} + "
                     f"{rtol:g}*mag, {worst.dtype}) at {dtype} {cid} seed={seed}")
        return line

    def __str__(self) -> str:
        head = self.summary()
        rows = []
        for dtype, cid, seed, res in self.results:
            text = res.message() if isinstance(res, Comparison) else f"skipped: {res}"
            rows.append(f"  {dtype:8s} {cid:28s} seed={seed}: {text}")
        return "\n".join([head] + rows)


def check(op: str, backend: str, variant: Optional[str] = None, *, trials: int = 5, seed: int = 0,
          cases: Optional[list] = None) -> CheckReport:
    """Check a variant against the float64 reference on every test case of its op and every
    dtype it takes, ``trials`` fresh seeds each. Raises RuntimeError if the backend is unavailable,
    ValueError for ``trials`` < 1 or no cases; a check in which the variant declined every case
    fails (it checked nothing)."""
    if op not in SPECS:
        raise ValueError(f"op: unknown op {op!r}; expected one of {list(SPECS)}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials: expected an int >= 1 (fresh seeds per case and dtype), got {trials!r}: "
                         "a check of nothing cannot fail")
    if cases is not None and not cases:
        raise ValueError("cases: expected at least one case, got an empty list: a check of nothing cannot fail")
    require(backend)
    var = get_variant(op, backend, variant)
    spec = SPECS[op]
    sim = on_simulator(backend)
    cases = cases if cases is not None else spec.test_cases(backend, simulator=sim)
    results, passed = [], True
    for dtype in var.dtypes:
        for ci, case in enumerate(cases):
            for t in range(trials):
                s = seed + 1000 * ci + t
                try:
                    cmp = run_case(var, case, dtype, s)
                except Unsupported as e:
                    results.append((dtype, spec.case_id(case), s, str(e)))
                    break
                passed &= cmp.ok
                results.append((dtype, spec.case_id(case), s, cmp))
    checked = any(isinstance(r[3], Comparison) for r in results)
    return CheckReport(op, backend, var.name, passed and checked, results)
