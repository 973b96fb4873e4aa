"""The NumPy backend: vectorized CPU fallbacks, and the references (pykern/ops/) registered as
``reference`` variants."""
from . import conv2d, matmul, relu  # noqa: F401  (registers the variants)
