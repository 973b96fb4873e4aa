// Bindings for kernels/relu.cu: relu_<variant>(x, y, n, dtype, stream), pointers as ints.
#include "common.h"
#include "relu.h"

namespace py = pybind11;

namespace pykern {

void bind_relu(py::module_& m) {
  using Launcher = void (*)(DType, const void*, void*, int64_t, cudaStream_t);
  auto def = [&m](const char* name, Launcher fn) {
    m.def(name, [fn](uintptr_t x, uintptr_t y, int64_t n, const std::string& dtype, uintptr_t stream) {
      fn(parse_dtype(dtype), in_ptr(x), out_ptr(y), n, as_stream(stream));
    }, py::arg("x"), py::arg("y"), py::arg("n"), py::arg("dtype"), py::arg("stream") = 0);
  };
  def("relu_naive", &relu_naive);
  def("relu_grid_stride", &relu_grid_stride);
  def("relu_vectorized", &relu_vectorized);
}

}  // namespace pykern
