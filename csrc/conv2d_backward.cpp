// Bindings for kernels/conv2d_backward_input.cu and kernels/conv2d_backward_weight.cu, one per row
// of their variant tables, pointers as ints:
//   conv2d_backward_input_<variant>(dy, w, dx, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw,
//                                   groups, dtype, stream)
//   conv2d_backward_weight_<variant>(x, dy, dw, <the same shape arguments>, dtype, stream)
#include <string>

#include "common.h"
#include "conv2d_backward.h"

namespace py = pybind11;

namespace pykern {
namespace {

// Binds every row of one gradient's table; `a`, `b`, `out` name the pointer arguments.
void bind_gradient(py::module_& m, const std::string& op, VariantTable<ConvBackwardLauncher> rows,
                   const char* a, const char* b, const char* out) {
  bind_table(m, op, rows, [&](const std::string& kernel, const Variant<ConvBackwardLauncher>& row) {
    m.def(kernel.c_str(),
          [kernel, row](uintptr_t pa, uintptr_t pb, uintptr_t pout, int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t K, int64_t R, int64_t S, int64_t P, int64_t Q, int64_t sh, int64_t sw, int64_t ph,
                        int64_t pw, int64_t dh, int64_t dw, int64_t groups, const std::string& dtype,
                        uintptr_t stream) {
            const DType dt = parse_dtype(dtype);
            require_dtype(kernel, row.dtypes, dt);
            const ConvShape s{N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, false};
            row.launch(dt, s, in_ptr(pa), in_ptr(pb), out_ptr(pout), as_stream(stream));
          },
          py::arg(a), py::arg(b), py::arg(out), py::arg("N"), py::arg("C"), py::arg("H"), py::arg("W"),
          py::arg("K"), py::arg("R"), py::arg("S"), py::arg("P"), py::arg("Q"), py::arg("sh"), py::arg("sw"),
          py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("dtype"),
          py::arg("stream") = 0, row.technique);
  });
}

}  // namespace

void bind_conv2d_backward(py::module_& m) {
  bind_gradient(m, "conv2d_backward_input", conv2d_backward_input_variants(), "dy", "w", "dx");
  bind_gradient(m, "conv2d_backward_weight", conv2d_backward_weight_variants(), "x", "dy", "dw");
}

}  // namespace pykern
