// ReLU gradient launchers (kernels/relu_backward.cu). dy, x, dx: (n,) device pointers; dx may
// equal dy or x (in place).
#pragma once
#include "pykern.h"

namespace pykern {
using ReluBackwardLauncher = void (*)(DType dt, const void* dy, const void* x, void* dx, int64_t n,
                                      cudaStream_t stream);

// One row per variant (the bottom of kernels/relu_backward.cu).
VariantTable<ReluBackwardLauncher> relu_backward_variants();
}  // namespace pykern
