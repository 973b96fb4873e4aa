// Bindings for kernels/matmul.cu, one per row of its variant table:
// matmul_<variant>(a, b, c, M, N, K, dtype, stream, transpose_a=False, transpose_b=False), pointers
// and the stream as ints; a stored (K, M) when transpose_a, b (N, K) when transpose_b.
#include "common.h"
#include "matmul.h"

namespace py = pybind11;

namespace pykern {

void bind_matmul(py::module_& m) {
  bind_table(m, "matmul", matmul_variants(), [&m](const std::string& kernel, const Variant<MatmulLauncher>& row) {
    m.def(kernel.c_str(), [kernel, row](uintptr_t a, uintptr_t b, uintptr_t c, int64_t M, int64_t N, int64_t K,
                                        const std::string& dtype, uintptr_t stream, bool transpose_a,
                                        bool transpose_b) {
      const DType dt = parse_dtype(dtype);
      require_dtype(kernel, row.dtypes, dt);
      if ((transpose_a && !row.takes.has(kTransposeA)) || (transpose_b && !row.takes.has(kTransposeB)))
        throw std::domain_error(kernel + ": takes no transposed operands (its table row's takes column)");
      row.launch(dt, in_ptr(a), in_ptr(b), out_ptr(c), M, N, K, Transpose{transpose_a, transpose_b},
                 as_stream(stream));
    }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"), py::arg("N"), py::arg("K"),
       py::arg("dtype"), py::arg("stream") = 0, py::arg("transpose_a") = false, py::arg("transpose_b") = false,
       row.technique);
  });
}

}  // namespace pykern
