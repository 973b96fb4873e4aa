// Bindings for kernels/relu.cu, one per row of its variant table:
// relu_<variant>(x, y, n, dtype, stream), pointers as ints.
#include "common.h"
#include "relu.h"

namespace py = pybind11;

namespace pykern {

void bind_relu(py::module_& m) {
  bind_table(m, "relu", relu_variants(), [&m](const std::string& kernel, const Variant<ReluLauncher>& row) {
    m.def(kernel.c_str(), [kernel, row](uintptr_t x, uintptr_t y, int64_t n, const std::string& dtype,
                                        uintptr_t stream) {
      const DType dt = parse_dtype(dtype);
      require_dtype(kernel, row.dtypes, dt);
      row.launch(dt, in_ptr(x), out_ptr(y), n, as_stream(stream));
    }, py::arg("x"), py::arg("y"), py::arg("n"), py::arg("dtype"), py::arg("stream") = 0, row.technique);
  });
}

}  // namespace pykern
