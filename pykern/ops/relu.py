"""relu: y = max(x, 0) elementwise; any shape; NaN propagates (as torch.relu)."""
from __future__ import annotations

import re
from importlib import import_module

import numpy as np

from ._baselines import NP_DTYPES, cupy_baseline, keeping, numpy_baseline, torch_baseline
from ._spec import OpSpec, random_array, sizes_at_least_one


def reference(x: np.ndarray) -> np.ndarray:
    """y = x where x >= 0 (or NaN), else 0; same shape and dtype as x.

    x: any shape. NaN propagates (as torch.relu); the sign of a zero result is unspecified.
    """
    return np.where(x < 0, np.zeros((), x.dtype), x)


class ElementwiseSpec(OpSpec):
    """What relu and its gradient share: a case is one shape, {"shape": (...)}, that every input
    and the output have; its test, demo and benchmark cases, its id and its --sizes grammar."""

    rate_unit = "GB/s"
    in_place_ok = True  # elementwise: the output may be written over an input
    x_label = "elements (shape)"

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

    def case_id(self, case):
        return "x".join(map(str, case["shape"]))

    def bench_cases(self, device):
        # Sizes past the caches (a CPU sweep stays within a minute or two on a 2-core machine).
        return [{"shape": (1 << e,)} for e in ((20, 22, 24) if device == "cpu" else (20, 22, 24, 26))]

    def compare_cases(self):
        # Wide enough to contain the size where the GPU starts to win, copies counted or not.
        return [{"shape": (1 << e,)} for e in range(10, 27, 2)]

    def size_forms(self):
        return "1048576, 2^20, or a shape AxB such as 1024x1024"

    def parse_size(self, token):
        if re.fullmatch(r"\d+(x\d+)*", token):
            return sizes_at_least_one({"shape": tuple(int(p) for p in token.split("x"))}, token, ("shape",))
        return None

    # --- compiled kernels -------------------------------------------------------------------
    dims_fields = ("n",)  # ElementwiseDims (kernels/pykern.h)

    def dims(self, problem):
        return (problem.inputs[0].size,)  # every operand has that many elements


class ReluSpec(ElementwiseSpec):
    name = "relu"
    rank = 10
    inputs = ("x",)

    def validate(self, infos, params):
        dtype = self.same_dtype(infos)
        return infos["x"].shape, dtype, params

    def reference(self, arrays, params):
        return reference(arrays["x"])

    def magnitude(self, arrays, params):
        return np.abs(self.reference(arrays, params))

    def make_inputs(self, case, dtype, rng):
        return {"x": random_array(rng, case["shape"], dtype)}, {}

    def bytes_moved(self, case, itemsize):
        return 2.0 * np.prod(case["shape"]) * itemsize  # read x, write y

    def bench_late_cases(self, device):
        # Checking a 2^28-element (1 GiB) output against the float64 reference on the host takes
        # seconds per target, which a budgeted run (bench/device_run.sh) may not have: last.
        return [{"shape": (1 << 28,)}] if device == "gpu" else []

    def baselines(self):
        return [numpy_baseline(self.name, "np.maximum(x, 0, out=y)", NP_DTYPES, _maximum("numpy")),
                torch_baseline(self.name, "cpu", "torch.relu on the CPU", _torch_relu),
                torch_baseline(self.name, "gpu", "torch.relu", _torch_relu),
                cupy_baseline(self.name, "cupy.maximum(x, 0, out=y)", _maximum("cupy"))]




def _maximum(module: str):
    """relu as max(x, 0) written into y by ``module`` ("numpy" or "cupy": the two share the API)."""
    def prepare(arrays, params):
        xp = import_module(module)
        x = arrays["x"]
        y, zero, maximum = xp.empty_like(x), x.dtype.type(0), xp.maximum
        return (lambda: maximum(x, zero, out=y)), (lambda: y)
    return prepare


def _torch_relu(ts, params):
    import torch
    return keeping(lambda: torch.relu(ts["x"]))


SPEC = ReluSpec()
