// ReLU launchers (kernels/relu.cu). x, y: (n,) device pointers; y may equal x (in place).
#pragma once
#include "pykern.h"

namespace pykern {
using ReluLauncher = void (*)(DType dt, const void* x, void* y, int64_t n, cudaStream_t stream);

// One row per variant (the bottom of kernels/relu.cu).
VariantTable<ReluLauncher> relu_variants();
}  // namespace pykern
