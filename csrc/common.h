// Helpers for the pybind11 module: pointers and streams cross the boundary as Python ints.
#pragma once
#include <pybind11/pybind11.h>
#include <cstdint>
#include <string>
#include "pykern.h"

namespace pykern {

inline cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// The dtype names in `set`, in DType order.
pybind11::list dtype_names(DTypes set);

// The Python parameter names in `takes` (kTakeFlags' fields), in bit order.
pybind11::list takes_names(Takes takes);

// Device memory, copies, events, device queries (csrc/runtime.cpp).
void bind_runtime(pybind11::module_& m);

// Every registered variant table (csrc/module.cpp).
void bind_tables(pybind11::module_& m);

}  // namespace pykern
