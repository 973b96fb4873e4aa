"""matmul: c = a @ b, row-major a: (M, K), b: (K, N) -> c: (M, N).

float32/float64 give an output of the same dtype; float16/bfloat16 inputs (tensor-core
variants) accumulate and return float32 (mixed precision).
"""
from __future__ import annotations

import numpy as np

from ._spec import OpSpec, check_rank, random_array


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """c[m, n] = sum_k a[m, k] * b[k, n], computed in float64.

    a: (M, K), b: (K, N) -> c: (M, N) float64.
    """
    return np.matmul(a.astype(np.float64, copy=False), b.astype(np.float64, copy=False))


class MatmulSpec(OpSpec):
    name = "matmul"
    inputs = ("a", "b")

    def validate(self, infos, params):
        a, b = infos["a"], infos["b"]
        check_rank(a, 2, "a: (M, K)")
        check_rank(b, 2, "b: (K, N)")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"a: (M, K) = {a.shape} and b: (K, N) = {b.shape} disagree on K "
                             f"({a.shape[1]} != {b.shape[0]})")
        dtype = self.same_dtype(infos)
        return (a.shape[0], b.shape[1]), self.output_dtype(dtype), params

    def output_dtype(self, in_dtype):
        return np.dtype(np.float32) if np.dtype(in_dtype).itemsize == 2 else np.dtype(in_dtype)

    def reference(self, arrays, params):
        return reference(arrays["a"], arrays["b"])

    def magnitude(self, arrays, params):
        return reference(np.abs(arrays["a"]), np.abs(arrays["b"]))

    def make_inputs(self, case, dtype, rng):
        return {"a": random_array(rng, (case["M"], case["K"]), dtype),
                "b": random_array(rng, (case["K"], case["N"]), dtype)}, {}

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
        return [{"M": m, "N": n, "K": k} for m, n, k in dims]

    def demo_case(self, simulator=False):
        return {"M": 32, "N": 32, "K": 32} if simulator else {"M": 2048, "N": 2048, "K": 2048}

    def flops(self, case):
        return 2.0 * case["M"] * case["N"] * case["K"]

    def bytes_moved(self, case, itemsize):
        m, n, k = case["M"], case["N"], case["K"]
        return float(itemsize * (m * k + k * n) + 4 * m * n)

    def case_id(self, case):
        return f"{case['M']}x{case['N']}x{case['K']}"


SPEC = MatmulSpec()
