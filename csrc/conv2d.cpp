// Bindings for kernels/conv2d.cu, pointers as ints:
//   conv2d_<variant>(x, w, bias, y, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups,
//                    relu, dtype, stream, tile=-1)   one per row of its variant table; bias = 0 for none
//   conv2d_unsupported(variant, <same shape arguments>, dtype) -> "" or the reason
//   conv2d_implicit_gemm_tiles() -> the tile names conv2d_implicit_gemm's `tile` indexes
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "common.h"
#include "conv2d.h"

namespace py = pybind11;

namespace pykern {
namespace {

// The shape arguments every conv2d binding takes, in order, as pybind11 argument names.
#define PYKERN_CONV_SHAPE_ARGS                                                               \
  py::arg("N"), py::arg("C"), py::arg("H"), py::arg("W"), py::arg("K"), py::arg("R"),        \
      py::arg("S"), py::arg("P"), py::arg("Q"), py::arg("sh"), py::arg("sw"), py::arg("ph"), \
      py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("relu")

ConvShape make_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                     int64_t P, int64_t Q, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                     int64_t dh, int64_t dw, int64_t groups, bool relu) {
  return ConvShape{N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, relu};
}

}  // namespace

void bind_conv2d(py::module_& m) {
  bind_table(m, "conv2d", conv2d_variants(), [&m](const std::string& kernel, const Variant<ConvLauncher>& row) {
    m.def(kernel.c_str(),
          [kernel, row](uintptr_t x, uintptr_t w, uintptr_t bias, uintptr_t y, int64_t N, int64_t C, int64_t H,
                        int64_t W, int64_t K, int64_t R, int64_t S, int64_t P, int64_t Q, int64_t sh, int64_t sw,
                        int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups, bool relu,
                        const std::string& dtype, uintptr_t stream, int tile) {
            const DType dt = parse_dtype(dtype);
            require_dtype(kernel, row.dtypes, dt);
            row.launch(dt, make_shape(N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, relu), in_ptr(x),
                       in_ptr(w), bias ? in_ptr(bias) : nullptr, out_ptr(y), as_stream(stream), tile);
          },
          py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("y"), PYKERN_CONV_SHAPE_ARGS, py::arg("dtype"),
          py::arg("stream") = 0, py::arg("tile") = -1, row.technique);
  });

  m.def("conv2d_implicit_gemm_tiles", &conv2d_implicit_gemm_tiles);

  m.def("conv2d_unsupported",
        [](const std::string& variant, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
           int64_t R, int64_t S, int64_t P, int64_t Q, int64_t sh, int64_t sw, int64_t ph,
           int64_t pw, int64_t dh, int64_t dw, int64_t groups, bool relu, const std::string& dtype) {
          return conv2d_unsupported(
              variant, parse_dtype(dtype),
              make_shape(N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, relu));
        },
        py::arg("variant"), PYKERN_CONV_SHAPE_ARGS, py::arg("dtype"));
}

#undef PYKERN_CONV_SHAPE_ARGS

}  // namespace pykern
