"""matmul: c = op(a) @ op(b), row-major; op(a): (M, K), op(b): (K, N) -> c: (M, N).

op(t) is t, or t.T when the call sets ``transpose_a`` / ``transpose_b``: a is then stored
(K, M), b stored (N, K), and read in place (the gradients of c = a @ b are
dA = dC @ b.T and dB = a.T @ dC, with no copies). The flags are opt-in parameters: a variant
receives them only when set, and only variants that declare them (``takes``) run them.

float32/float64 give an output of the same dtype; float16/bfloat16 inputs (tensor-core
variants) accumulate and return float32 (mixed precision).
"""
from __future__ import annotations

import re
from importlib import import_module

import numpy as np

from ._baselines import cupy_baseline, numpy_baseline, torch_baseline
from ._spec import OpSpec, check_rank, random_array, sizes_at_least_one


def reference(a: np.ndarray, b: np.ndarray, transpose_a: bool = False, transpose_b: bool = False) -> np.ndarray:
    """c[m, n] = sum_k op(a)[m, k] * op(b)[k, n], computed in float64 (op: .T when the flag is set).

    a: (M, K), or (K, M) with transpose_a; b: (K, N), or (N, K) with transpose_b -> c: (M, N) float64.
    """
    a64, b64 = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    return np.matmul(a64.T if transpose_a else a64, b64.T if transpose_b else b64)


FLAGS = ("transpose_a", "transpose_b")


def flags(params) -> dict:
    """The transpose flags that are set, {name: True}; TypeError naming a flag that is no bool."""
    for k in FLAGS:
        v = params.get(k, False)
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{k}: expected True or False, got {v!r}")
    return {k: True for k in FLAGS if params.get(k, False)}


def layouts(params) -> tuple:
    """How a and b are stored, for shapes in messages: ('(M, K)' or '(K, M)', '(K, N)' or '(N, K)')."""
    return ("(K, M)" if params.get("transpose_a") else "(M, K)",
            "(N, K)" if params.get("transpose_b") else "(K, N)")


def logical(shape, transposed: bool) -> tuple:
    return tuple(shape[::-1]) if transposed else tuple(shape)


def operands(arrays, params) -> tuple:
    """op(a), op(b): the stored arrays, transposed (as views) where ``params`` says so."""
    a, b = arrays["a"], arrays["b"]
    return (a.T if params.get("transpose_a") else a), (b.T if params.get("transpose_b") else b)


def _mm(m: int, n: int, k: int) -> dict:
    return {"M": m, "N": n, "K": k}


class MatmulSpec(OpSpec):
    name = "matmul"
    rank = 20
    inputs = ("a", "b")
    opt_in = FLAGS  # passed to a variant only when set, and only to variants that take them

    def validate(self, infos, params):
        a, b = infos["a"], infos["b"]
        extra = set(params) - set(FLAGS) if params else ()
        if extra:
            raise TypeError(f"matmul got unexpected parameters {sorted(extra)}; it takes {list(FLAGS)}")
        fl = flags(params)
        la, lb = layouts(fl)
        check_rank(a, 2, f"a: {la}")
        check_rank(b, 2, f"b: {lb}")
        (m, ka), (kb, n) = logical(a.shape, "transpose_a" in fl), logical(b.shape, "transpose_b" in fl)
        if ka != kb:
            raise ValueError(f"a: {la} = {a.shape} and b: {lb} = {b.shape} disagree on K ({ka} != {kb})")
        dtype = self.same_dtype(infos)
        return (m, n), self.output_dtype(dtype), fl

    def output_from(self, infos, params):
        la, lb = layouts(params)
        return f"M, the rows of a: {la} = {infos['a'].shape}, and N, the columns of b: {lb} = {infos['b'].shape}"

    def output_dtype(self, in_dtype):
        return np.dtype(np.float32) if np.dtype(in_dtype).itemsize == 2 else np.dtype(in_dtype)

    def reference(self, arrays, params):
        return reference(arrays["a"], arrays["b"], **params)

    def magnitude(self, arrays, params):
        return reference(np.abs(arrays["a"]), np.abs(arrays["b"]), **params)

    def make_inputs(self, case, dtype, rng):
        fl = flags(case)
        return {"a": random_array(rng, logical((case["M"], case["K"]), "transpose_a" in fl), dtype),
                "b": random_array(rng, logical((case["K"], case["N"]), "transpose_b" in fl), dtype)}, fl

    def test_cases(self, backend, simulator=False):
        if simulator:
            # Numba's simulator runs a Python thread per CUDA thread: keep every dim <= ~33.
            dims = [(1, 1, 1), (5, 7, 3), (17, 33, 13), (33, 17, 32), (2, 31, 1)]
            if backend == "cuda":
                # pykern's C++ simulator is fast enough to cross the 128x128 block tiles and
                # run many k-tiles (a few hundred ms per case at most).
                dims += [(17, 33, 65), (255, 257, 129), (97, 131, 517)]
        else:
            dims = [(1, 1, 1), (17, 33, 65), (255, 257, 129), (1024, 1, 1024), (1, 2048, 3),
                    (64, 64, 64), (128, 96, 40), (300, 200, 100), (97, 131, 517), (4, 4, 1000)]
        cases = [{"M": m, "N": n, "K": k} for m, n, k in dims]
        # Most CUDA C++ rungs take no transpose flags, and would skip every flagged case here; the
        # three that do (their table's takes column) are run transposed by tests/test_cuda_backward.py.
        if backend != "cuda":
            # non-square, so a transpose that is not honoured breaks the shapes or the values; each
            # flag on one tile, and both across tile edges (in Numba's simulator a tiled variant
            # runs 1024 Python threads a block, so the single flags stay on one tile there)
            flagged = [((5, 7, 3), fl) for fl in (("transpose_a",), ("transpose_b",), FLAGS)]
            flagged += [((17, 33, 13), fl) for fl in ((FLAGS,) if simulator else
                                                      (("transpose_a",), ("transpose_b",), FLAGS))]
            cases += [{"M": m, "N": n, "K": k, **{f: True for f in fl}} for (m, n, k), fl in flagged]
        return cases

    def demo_case(self, simulator=False):
        return {"M": 32, "N": 32, "K": 32} if simulator else {"M": 2048, "N": 2048, "K": 2048}

    def flops(self, case):
        return 2.0 * case["M"] * case["N"] * case["K"]

    def bytes_moved(self, case, itemsize):
        m, n, k = case["M"], case["N"], case["K"]
        return float(itemsize * (m * k + k * n) + 4 * m * n)

    def case_id(self, case):
        fl = flags(case)
        return (f"{case['M']}x{case['N']}x{case['K']}" + ("_tA" if "transpose_a" in fl else "")
                + ("_tB" if "transpose_b" in fl else ""))

    # --- benchmarks ----------------------------------------------------------------------------
    x_label = "matrix size M x N x K"

    def bench_cases(self, device):
        # CPU sizes keep the whole CPU sweep within a minute or two on a 2-core machine; GPU sizes
        # reach the shapes where kernels differ, and DeepBench's GEMMs (M, N, K).
        if device == "cpu":
            return [_mm(n, n, n) for n in (128, 256, 512, 1024)]
        return [_mm(n, n, n) for n in (128, 256, 512, 1024, 2048, 4096)] + [_mm(1760, 128, 1760), _mm(4096, 7000, 4096)]

    def compare_cases(self):
        # Wide enough to contain the size where the GPU starts to win, copies counted or not.
        return [_mm(n, n, n) for n in (16, 32, 64, 128, 256, 512, 1024, 2048)]

    def size_forms(self):
        return ("1024 (a square), 2^10, or MxNxK such as 1760x128x1760 (suffix _tA, _tB: transpose_a, "
                "transpose_b)")

    def parse_size(self, token):
        if re.fullmatch(r"\d+", token):
            n = int(token)
            return sizes_at_least_one(_mm(n, n, n), token, ("M", "N", "K"))
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)(_tA)?(_tB)?", token)
        if not m:
            return None
        fl = {f: True for f, suffix in zip(FLAGS, m.groups()[3:]) if suffix}
        return sizes_at_least_one({**_mm(*map(int, m.groups()[:3])), **fl}, token, ("M", "N", "K"))

    def baselines(self):
        return [numpy_baseline(self.name, "np.matmul: the machine's BLAS (sgemm/dgemm)", ("float32", "float64"),
                               _matmul_into("numpy")),
                torch_baseline(self.name, "cpu", "torch.matmul on the CPU", _torch_matmul),
                cupy_baseline(self.name, "cupy.matmul: cuBLAS GEMM (no TF32)", _matmul_into("cupy")),
                torch_baseline(self.name, "gpu", "torch.matmul: cuBLAS GEMM, TF32 off", _torch_matmul)]



    # --- compiled kernels -------------------------------------------------------------------
    dims_fields = ("M", "N", "K", "transpose_a", "transpose_b")  # MatmulDims (kernels/matmul.h)

    def dims(self, problem):
        m, n = problem.out_shape
        ta, tb = bool(problem.params.get("transpose_a")), bool(problem.params.get("transpose_b"))
        a = problem.infos["a"].shape
        return (m, n, a[0] if ta else a[1], int(ta), int(tb))


def _matmul_into(module: str):
    """c = op(a) @ op(b) written into c by ``module`` ("numpy" or "cupy": the two share the API)."""
    def prepare(arrays, params):
        xp = import_module(module)
        a, b = operands(arrays, params)
        c, matmul = xp.empty((a.shape[0], b.shape[1]), a.dtype), xp.matmul
        return (lambda: matmul(a, b, out=c)), (lambda: c)
    return prepare


def _torch_matmul(ts, params):
    import torch
    a, b = operands(ts, params)
    c = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    return (lambda: torch.matmul(a, b, out=c)), (lambda: c)


SPEC = MatmulSpec()
