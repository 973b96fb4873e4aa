// Bindings for kernels/relu_backward.cu, one per row of its variant table:
// relu_backward_<variant>(dy, x, dx, n, dtype, stream), pointers as ints.
#include "common.h"
#include "relu_backward.h"

namespace py = pybind11;

namespace pykern {

void bind_relu_backward(py::module_& m) {
  bind_table(m, "relu_backward", relu_backward_variants(),
             [&m](const std::string& kernel, const Variant<ReluBackwardLauncher>& row) {
    m.def(kernel.c_str(), [kernel, row](uintptr_t dy, uintptr_t x, uintptr_t dx, int64_t n, const std::string& dtype,
                                        uintptr_t stream) {
      const DType dt = parse_dtype(dtype);
      require_dtype(kernel, row.dtypes, dt);
      row.launch(dt, in_ptr(dy), in_ptr(x), out_ptr(dx), n, as_stream(stream));
    }, py::arg("dy"), py::arg("x"), py::arg("dx"), py::arg("n"), py::arg("dtype"), py::arg("stream") = 0,
       row.technique);
  });
}

}  // namespace pykern
