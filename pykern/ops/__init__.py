"""Op specifications: validation, output shape, cost model and test/benchmark cases.

The math itself lives in the NumPy references (pykern/cpu/), which are the spec; the backward
ops keep theirs next to their specs here (relu_backward.py, conv2d_backward.py).
"""
from .conv2d import CONV2D
from .conv2d_backward import CONV2D_BACKWARD_INPUT, CONV2D_BACKWARD_WEIGHT
from .matmul import MATMUL
from .relu import RELU
from .relu_backward import RELU_BACKWARD

SPECS = {s.name: s for s in (RELU, MATMUL, CONV2D, RELU_BACKWARD, CONV2D_BACKWARD_INPUT, CONV2D_BACKWARD_WEIGHT)}

__all__ = ["SPECS", "RELU", "MATMUL", "CONV2D", "RELU_BACKWARD", "CONV2D_BACKWARD_INPUT", "CONV2D_BACKWARD_WEIGHT"]
