"""One call as the dispatch resolved it: validated once, then handed unchanged to the variant's
``supports``, the executor and the launcher, none of which re-derives what is here."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ._arrays import ArrayInfo


class Problem:
    """A validated call of one op: its arrays, normalized parameters, output, backend and variant."""

    __slots__ = ("op", "spec", "infos", "params", "out_shape", "out_dtype", "out", "backend", "variant",
                 "_inputs", "_dims")

    def __init__(self, spec, infos: dict, params: dict, out_shape: tuple, out_dtype: np.dtype,
                 out: Optional[ArrayInfo], backend: str, variant):
        self.op = spec.name
        self.spec = spec  # the op's OpSpec (pykern/ops/)
        self.infos = infos  # argument name -> ArrayInfo, or None for an absent optional input
        self.params = params  # as spec.validate normalized them
        self.out_shape = out_shape  # a tuple of Python ints
        self.out_dtype = out_dtype
        self.out = out  # the caller's out= array, or None
        self.backend = backend  # resolved: never "auto"
        self.variant = variant  # the registry's Variant record
        self._inputs = None
        self._dims = None

    @property
    def inputs(self) -> list:
        """The input ArrayInfos (None where an optional one is absent) in the order kernels take them."""
        if self._inputs is None:
            self._inputs = [self.infos[name] for name in self.spec.inputs]
        return self._inputs

    @property
    def dims(self) -> tuple:
        """The op's problem sizes for a compiled kernel (``spec.dims``, in ``spec.dims_fields``
        order), computed once: ``supports`` and the launch both pass them."""
        if self._dims is None:
            self._dims = tuple(self.spec.dims(self))
        return self._dims

    def detached(self) -> Problem:
        """This problem without its arrays (every ArrayInfo's ``obj`` None): what a plan keeps
        (pykern/_dispatch.py), so that it holds no caller's memory. Its dims, computed once, are
        shared by every call that repeats it."""
        infos = {name: None if i is None else ArrayInfo(i.name, None, i.kind, i.shape, i.dtype, 0, i.strides,
                                                        i.stream, i.readonly)
                 for name, i in self.infos.items()}
        problem = Problem(self.spec, infos, self.params, self.out_shape, self.out_dtype, None, self.backend,
                          self.variant)
        problem._dims = self._dims
        return problem

    @property
    def dtype(self) -> np.dtype:
        """The inputs' one dtype (the spec refused mixed dtypes)."""
        return self.inputs[0].dtype

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self.infos.items() if v is not None)
        return (f"Problem({self.op}: {shapes}, {self.dtype.name} -> {self.out_shape} on "
                f"{self.backend}/{self.variant.name}, params={self.params})")
