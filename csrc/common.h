// Helpers for the pybind11 bindings: pointers and streams cross the boundary as Python ints.
#pragma once
#include <pybind11/pybind11.h>
#include <cstdint>
#include "pykern.h"

namespace pykern {

inline const void* in_ptr(uintptr_t p) { return reinterpret_cast<const void*>(p); }
inline void* out_ptr(uintptr_t p) { return reinterpret_cast<void*>(p); }
inline cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

void bind_runtime(pybind11::module_& m);
void bind_relu(pybind11::module_& m);
void bind_matmul(pybind11::module_& m);
void bind_conv2d(pybind11::module_& m);

}  // namespace pykern
