// Bindings for kernels/matmul.cu, one per row of its variant table:
// matmul_<variant>(a, b, c, M, N, K, dtype, stream), pointers and the stream as ints.
#include "common.h"
#include "matmul.h"

namespace py = pybind11;

namespace pykern {

void bind_matmul(py::module_& m) {
  bind_table(m, "matmul", matmul_variants(), [&m](const std::string& kernel, const Variant<MatmulLauncher>& row) {
    m.def(kernel.c_str(), [kernel, row](uintptr_t a, uintptr_t b, uintptr_t c, int64_t M, int64_t N, int64_t K,
                                        const std::string& dtype, uintptr_t stream) {
      const DType dt = parse_dtype(dtype);
      require_dtype(kernel, row.dtypes, dt);
      row.launch(dt, in_ptr(a), in_ptr(b), out_ptr(c), M, N, K, as_stream(stream));
    }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"), py::arg("N"), py::arg("K"),
       py::arg("dtype"), py::arg("stream") = 0, row.technique);
  });
}

}  // namespace pykern
