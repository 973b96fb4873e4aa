// Helpers for the pybind11 bindings: pointers and streams cross the boundary as Python ints.
#pragma once
#include <pybind11/pybind11.h>
#include <cstdint>
#include <string>
#include "pykern.h"

namespace pykern {

inline const void* in_ptr(uintptr_t p) { return reinterpret_cast<const void*>(p); }
inline void* out_ptr(uintptr_t p) { return reinterpret_cast<void*>(p); }
inline cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// The dtype names in `set`, in DType order.
pybind11::list dtype_names(DTypes set);

// The Python parameter names in `takes` (transpose_a, transpose_b), in bit order.
pybind11::list takes_names(Takes takes);

// Binds each row of an op's variant table: bind_row(kernel_name, row) defines the Python
// function <op>_<name>, and <op>_variants lists the rows as dicts (name, technique, dtypes,
// default, kernel, takes) in table order, which pykern/cuda/ checks its build-time copy against.
template <typename Launcher, typename BindRow>
void bind_table(pybind11::module_& m, const std::string& op, VariantTable<Launcher> table,
                BindRow&& bind_row) {
  pybind11::list rows;
  for (const Variant<Launcher>& row : table) {
    const std::string kernel = op + "_" + row.name;
    bind_row(kernel, row);
    pybind11::dict d;
    d["name"] = row.name;
    d["technique"] = row.technique;
    d["dtypes"] = dtype_names(row.dtypes);
    d["default"] = row.is_default;
    d["kernel"] = kernel;
    d["takes"] = takes_names(row.takes);
    rows.append(d);
  }
  m.attr((op + "_variants").c_str()) = rows;
}

void bind_runtime(pybind11::module_& m);
void bind_relu(pybind11::module_& m);
void bind_matmul(pybind11::module_& m);
void bind_conv2d(pybind11::module_& m);
void bind_relu_backward(pybind11::module_& m);
void bind_conv2d_backward(pybind11::module_& m);

}  // namespace pykern
