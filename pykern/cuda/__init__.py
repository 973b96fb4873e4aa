"""The CUDA C++ backend: kernels in kernels/**/*.cu, each op's variant table registered there
(PYKERN_TABLE) and bound by one generic binder (csrc/module.cpp), registered here, every row of
every table, in table order.

The rows are copied into pykern/cuda/_variant_tables.py at build time, so the variants are
registered, and listed, whether or not pykern._cuda or pykern._cuda_sim was built;
pykern.backends()["cuda"] says whether they can run. No op needs a module of its own here: the
launch is generic, its dims come from the op's spec (``OpSpec.dims``).
"""
from ._launch import configs, ops, register_table

for _op in ops():
    register_table(_op)

__all__ = ["configs"]
