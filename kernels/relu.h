// ReLU launchers (kernels/relu.cu). x, y: (n,) device pointers; y may equal x (in place).
#pragma once
#include "pykern.h"

namespace pykern {
void relu_naive(DType dt, const void* x, void* y, int64_t n, cudaStream_t stream);
void relu_grid_stride(DType dt, const void* x, void* y, int64_t n, cudaStream_t stream);
void relu_vectorized(DType dt, const void* x, void* y, int64_t n, cudaStream_t stream);
}  // namespace pykern
