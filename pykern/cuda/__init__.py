"""The CUDA C++ backend: kernels in kernels/*.cu, bound in csrc/, registered here from the
variant table at the bottom of each .cu file (one row per variant).

The rows are copied into pykern/cuda/_variant_tables.py at build time, so the variants are
registered, and listed, whether or not pykern._cuda or pykern._cuda_sim was built;
pykern.backends()["cuda"] says whether they can run.
"""
from .._registry import import_op_modules

import_op_modules(__name__, __path__)  # one module per op, each registering its variants
