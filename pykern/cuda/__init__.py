"""The CUDA C++ backend: kernels in kernels/*.cu, bound in csrc/, registered here.

Variants are registered whether or not pykern._cuda was built, so they are always listed;
pykern.backends()["cuda"] says whether they can run.
"""
from . import conv2d, matmul, relu  # noqa: F401  (registers the variants)
