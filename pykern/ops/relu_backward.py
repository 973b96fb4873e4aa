"""relu_backward: dx = 0 where x <= 0, else dy (torch's threshold_backward(dy, x, 0); NaN in x passes dy).

dy, x: any shape, one shape and dtype -> dx: the same shape and dtype. Spec and float64
reference in one place; every relu_backward variant is checked against ``reference``.
"""
from __future__ import annotations

import numpy as np

from ._spec import OpSpec, random_array
from .relu import SPEC as RELU


def reference(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = 0 where x <= 0, else dy; same shape and dtype as dy.

    dy, x: one shape. The test is x <= 0, not x > 0, because that is torch's: where x is NaN
    the comparison is false and dx = dy (torch.relu's gradient at NaN). -0.0 counts as 0. x may
    be relu's output y instead: y <= 0 exactly where x <= 0 (NaN stays NaN). Exact, no rounding.
    """
    return np.where(x <= 0, np.zeros((), dy.dtype), dy)


class ReluBackwardSpec(OpSpec):
    name = "relu_backward"
    rank = 40
    inputs = ("dy", "x")
    rate_unit = "GB/s"
    in_place_ok = True  # elementwise: dx may be written over dy (or x)
    forward = "relu"  # benchmark cases and --sizes forms are the forward op's

    def validate(self, infos, params):
        dy, x = infos["dy"], infos["x"]
        if x.shape != dy.shape:
            raise ValueError(f"x: expected the shape of dy {dy.shape} (the gradient of relu's output "
                             f"for each element of x), got {x.shape}")
        dtype = self.same_dtype(infos)
        return dy.shape, dtype, params

    def reference(self, arrays, params):
        return reference(arrays["dy"], arrays["x"])

    def magnitude(self, arrays, params):
        return np.abs(self.reference(arrays, params))

    def make_inputs(self, case, dtype, rng):
        return {"dy": random_array(rng, case["shape"], dtype), "x": random_array(rng, case["shape"], dtype)}, {}

    def test_cases(self, backend, simulator=False):
        return RELU.test_cases(backend, simulator)

    def demo_case(self, simulator=False):
        return RELU.demo_case(simulator)

    def flops(self, case):
        return float(np.prod(case["shape"]))

    def bytes_moved(self, case, itemsize):
        return 3.0 * np.prod(case["shape"]) * itemsize  # read dy and x, write dx

    def case_id(self, case):
        return RELU.case_id(case)

    # --- compiled kernels -------------------------------------------------------------------
    dims_fields = ("n",)  # ElementwiseDims (kernels/pykern.h)

    def dims(self, problem):
        return (problem.inputs[0].size,)


SPEC = ReluBackwardSpec()
