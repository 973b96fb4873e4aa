"""The CUDA C++ backend: kernels in kernels/**/*.cu, each op's variant table registered there
(PYKERN_TABLE) and bound by one generic binder (csrc/module.cpp), registered here, every row of
every table, in table order.

The rows are copied into pykern/cuda/_variant_tables.py at build time, so the variants are
registered, and listed, whether or not pykern._cuda or pykern._cuda_sim was built;
pykern.backends()["cuda"] says whether they can run. No op needs a module of its own here: the
launch is generic, its dims come from the op's spec (``OpSpec.dims``).
"""
from .._arrays import dtype_name
from .._registry import set_route, variants
from ._launch import configs, ops, register_table

# 16-bit inputs, which each op's default (a float32 rung) refuses, go to the tensor-core rung that
# takes them, where the op has one: a call without variant= then runs, as a float32 one does. The
# mma.sync rung over wmma: published ladders put mma.sync designs at 60-80% of cuBLAS HGEMM and
# WMMA far below (issue 23); no GPU has measured pykern's two yet.
TENSOR_CORE_RUNG = "mma_sync"
HALF = ("float16", "bfloat16")


def _half_route(infos, params):
    first = next(i for i in infos.values() if i is not None)
    return TENSOR_CORE_RUNG if dtype_name(first.dtype) in HALF else None


for _op in ops():
    register_table(_op)
    if any(v.name == TENSOR_CORE_RUNG for v in variants(_op, "cuda")):
        set_route(_op, "cuda", _half_route)

__all__ = ["configs"]
