"""The Numba CUDA backend: kernels written in Python, compiled by numba-cuda (or run by its
simulator when NUMBA_ENABLE_CUDASIM=1 was set before numba.cuda was first imported)."""
from .._registry import import_op_modules

import_op_modules(__name__, __path__)  # one module per op, each registering its variants
