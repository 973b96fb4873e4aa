// Device-side helpers shared by kernels/*.cu.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "pykern.h"

namespace pykern {

// Runs BODY with `scalar_t` bound to the C++ type of dtype `dt`, for the float types a kernel
// file supports; any other dtype is a std::invalid_argument (Python TypeError upstream).
#define PYKERN_DISPATCH_FLOATS(dt, what, ...)                                              \
  switch (dt) {                                                                            \
    case ::pykern::DType::f16: { using scalar_t = __half; __VA_ARGS__; break; }            \
    case ::pykern::DType::f32: { using scalar_t = float; __VA_ARGS__; break; }             \
    case ::pykern::DType::f64: { using scalar_t = double; __VA_ARGS__; break; }            \
    default:                                                                               \
      throw std::invalid_argument(std::string(what) + ": unsupported dtype " +             \
                                  ::pykern::dtype_name(dt));                               \
  }

}  // namespace pykern
