// pykern._cuda: the CUDA C++ kernels and the small slice of the CUDA runtime pykern needs
// (device memory, copies, events); pykern._cuda_sim is the same code built for the CPU
// simulator (csrc/sim/). Python-side wrappers live in pykern/cuda/ and pykern/_device.py.
#include "common.h"

namespace pykern {

DType parse_dtype(const std::string& name) {
  if (name == "float16") return DType::f16;
  if (name == "bfloat16") return DType::bf16;
  if (name == "float32") return DType::f32;
  if (name == "float64") return DType::f64;
  throw std::invalid_argument("unsupported dtype '" + name + "'");
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::f32: return "float32";
    case DType::f64: return "float64";
  }
  return "?";
}

pybind11::list dtype_names(DTypes set) {
  pybind11::list names;
  for (DType dt : {DType::f16, DType::bf16, DType::f32, DType::f64})
    if (set.has(dt)) names.append(dtype_name(dt));
  return names;
}

pybind11::list takes_names(Takes takes) {
  pybind11::list names;
  if (takes.has(kTransposeA)) names.append("transpose_a");
  if (takes.has(kTransposeB)) names.append("transpose_b");
  return names;
}

std::string dtype_list(DTypes set) {
  std::string list;
  for (DType dt : {DType::f16, DType::bf16, DType::f32, DType::f64})
    if (set.has(dt)) list += std::string(list.empty() ? "" : ", ") + dtype_name(dt);
  return list;
}

void require_dtype(const std::string& what, DTypes takes, DType dt) {
  if (!takes.has(dt))
    throw std::invalid_argument(what + ": unsupported dtype " + dtype_name(dt) + " (takes " + dtype_list(takes) +
                                ")");
}

}  // namespace pykern

namespace {
void bind_all(pybind11::module_& m) {
  pykern::bind_runtime(m);
  pykern::bind_relu(m);
  pykern::bind_matmul(m);
  pykern::bind_conv2d(m);
  pykern::bind_relu_backward(m);
  pykern::bind_conv2d_backward(m);
}
}  // namespace

// The same bindings in both builds; the simulator (csrc/sim/) adds its settings and self-test.
#ifdef PYKERN_CUDA_SIM
namespace pykern {
void bind_sim(pybind11::module_& m);
}
PYBIND11_MODULE(_cuda_sim, m) {
  m.doc() = "pykern CUDA C++ kernels (see kernels/) run on the CPU by the simulator in csrc/sim/";
  bind_all(m);
  pykern::bind_sim(m);
}
#else
PYBIND11_MODULE(_cuda, m) {
  m.doc() = "pykern CUDA C++ kernels (see kernels/) and runtime helpers";
  bind_all(m);
}
#endif
