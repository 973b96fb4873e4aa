"""relu_backward: dx = 0 where x <= 0, else dy (torch's threshold_backward(dy, x, 0); NaN in x passes dy).

dy, x: any shape, one shape and dtype -> dx: the same shape and dtype. Spec and float64
reference in one place; every relu_backward variant is checked against ``reference``.
"""
from __future__ import annotations

import numpy as np

from ._baselines import keeping, torch_baseline
from ._spec import random_array
from .relu import ElementwiseSpec


def reference(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = 0 where x <= 0, else dy; same shape and dtype as dy.

    dy, x: one shape. The test is x <= 0, not x > 0, because that is torch's: where x is NaN
    the comparison is false and dx = dy (torch.relu's gradient at NaN). -0.0 counts as 0. x may
    be relu's output y instead: y <= 0 exactly where x <= 0 (NaN stays NaN). Exact, no rounding.
    """
    return np.where(x <= 0, np.zeros((), dy.dtype), dy)


class ReluBackwardSpec(ElementwiseSpec):
    """relu's cases, sizes and benchmark cases (ElementwiseSpec): dx may be written over dy or x."""

    name = "relu_backward"
    rank = 40
    inputs = ("dy", "x")

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

    def bytes_moved(self, case, itemsize):
        return 3.0 * np.prod(case["shape"]) * itemsize  # read dy and x, write dx

    def baselines(self):
        return [torch_baseline(self.name, "cpu", "torch's threshold_backward on the CPU", _threshold_backward),
                torch_baseline(self.name, "gpu", "torch's threshold_backward", _threshold_backward)]


def _threshold_backward(ts, params):
    import torch
    return keeping(lambda: torch.ops.aten.threshold_backward(ts["dy"], ts["x"], 0))


SPEC = ReluBackwardSpec()
