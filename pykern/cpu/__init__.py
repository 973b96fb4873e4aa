"""The NumPy backend: float64 references (the spec) and vectorized CPU fallbacks."""
from . import conv2d, matmul, relu  # noqa: F401  (registers the variants)
