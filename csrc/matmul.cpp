// Bindings for kernels/matmul.cu:
// matmul_<variant>(a, b, c, M, N, K, dtype, stream), pointers and the stream as ints.
#include "common.h"
#include "matmul.h"

namespace py = pybind11;

namespace pykern {

void bind_matmul(py::module_& m) {
  using Launcher = void (*)(DType, const void*, const void*, void*, int64_t, int64_t, int64_t, cudaStream_t);
  auto def = [&m](const char* name, Launcher fn) {
    m.def(name, [fn](uintptr_t a, uintptr_t b, uintptr_t c, int64_t M, int64_t N, int64_t K,
                     const std::string& dtype, uintptr_t stream) {
      fn(parse_dtype(dtype), in_ptr(a), in_ptr(b), out_ptr(c), M, N, K, as_stream(stream));
    }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"), py::arg("N"), py::arg("K"),
       py::arg("dtype"), py::arg("stream") = 0);
  };
  def("matmul_naive", &matmul_naive);
  def("matmul_coalesced", &matmul_coalesced);
  def("matmul_smem_tiled", &matmul_smem_tiled);
  def("matmul_blocktile_1d", &matmul_blocktile_1d);
  def("matmul_blocktile_2d", &matmul_blocktile_2d);
  def("matmul_vectorized", &matmul_vectorized);
  def("matmul_warptile", &matmul_warptile);
  def("matmul_double_buffer", &matmul_double_buffer);
  def("matmul_wmma_fp16", &matmul_wmma_fp16);
  def("matmul_wmma_bf16", &matmul_wmma_bf16);
}

}  // namespace pykern
