"""Op specifications: validation, output shape, cost model and test/benchmark cases.

The math itself lives in the NumPy references (pykern/cpu/), which are the spec.
"""
from .conv2d import CONV2D
from .matmul import MATMUL
from .relu import RELU

SPECS = {s.name: s for s in (RELU, MATMUL, CONV2D)}

__all__ = ["SPECS", "RELU", "MATMUL", "CONV2D"]
