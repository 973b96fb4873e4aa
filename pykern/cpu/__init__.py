"""The NumPy backend: vectorized CPU fallbacks, and the references (pykern/ops/) registered as
``reference`` variants."""
from . import conv2d, conv2d_backward, matmul, relu, relu_backward  # noqa: F401  (registers the variants)
