"""The NumPy backend: float64 references (the spec) and vectorized CPU fallbacks."""
from . import conv2d, conv2d_backward, matmul, relu, relu_backward  # noqa: F401  (registers the variants)
