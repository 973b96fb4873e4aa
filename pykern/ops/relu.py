"""relu: y = max(x, 0) elementwise; any shape; NaN propagates (as torch.relu)."""
from __future__ import annotations

import numpy as np

from ._spec import OpSpec, random_array


def reference(x: np.ndarray) -> np.ndarray:
    """y = x where x >= 0 (or NaN), else 0; same shape and dtype as x.

    x: any shape. NaN propagates (as torch.relu); the sign of a zero result is unspecified.
    """
    return np.where(x < 0, np.zeros((), x.dtype), x)


class ReluSpec(OpSpec):
    name = "relu"
    rank = 10
    inputs = ("x",)
    rate_unit = "GB/s"
    in_place_ok = True

    def validate(self, infos, params):
        dtype = self.same_dtype(infos)
        return infos["x"].shape, dtype, params

    def reference(self, arrays, params):
        return reference(arrays["x"])

    def magnitude(self, arrays, params):
        return np.abs(self.reference(arrays, params))

    def make_inputs(self, case, dtype, rng):
        return {"x": random_array(rng, case["shape"], dtype)}, {}

    def test_cases(self, backend, simulator=False):
        # Lengths straddle every block/vector width (1, 255, 257, 4097, ...) and include
        # multi-dimensional shapes: kernels see the flat contiguous buffer.
        sizes = [1, 2, 7, 8, 9, 31, 33, 255, 257]
        if not simulator:
            sizes += [1000, 4097, 65537, 1 << 20, 3_000_001]
        elif backend == "cuda":
            sizes += [1000, 4097, 65537]  # pykern's C++ simulator: several grid-stride waves
        return [{"shape": (n,)} for n in sizes] + [{"shape": (3, 5, 7)}, {"shape": (2, 1, 33)}]

    def demo_case(self, simulator=False):
        return {"shape": (1 << 12,)} if simulator else {"shape": (1 << 24,)}

    def flops(self, case):
        return float(np.prod(case["shape"]))

    def bytes_moved(self, case, itemsize):
        return 2.0 * np.prod(case["shape"]) * itemsize  # read x, write y

    def case_id(self, case):
        return "x".join(map(str, case["shape"]))

    # --- compiled kernels -------------------------------------------------------------------
    dims_fields = ("n",)  # ElementwiseDims (kernels/pykern.h)

    def dims(self, problem):
        return (problem.inputs[0].size,)


SPEC = ReluSpec()
