"""The Numba CUDA backend: kernels written in Python, compiled by numba-cuda (or run by its
simulator when NUMBA_ENABLE_CUDASIM=1 was set before numba.cuda was first imported)."""
from . import conv2d, conv2d_backward, matmul, relu, relu_backward  # noqa: F401  (registers the variants)
