// Matmul launchers (kernels/matmul.cu): row-major a: (M, K) @ b: (K, N) -> c: (M, N).
// Owned by the matmul ladder; other ops that need a GEMM call matmul_f32_best.
#pragma once
#include "pykern.h"

namespace pykern {

// Every variant's launcher: a: (M, K), b: (K, N), c: (M, N) device pointers of dtype dt (c is
// float32 for the 16-bit wmma inputs); any M, N, K in [1, 2^31 - 1025]; enqueued on `stream`.
// A shape outside that range throws std::domain_error, a CUDA error std::runtime_error.
using MatmulLauncher = void (*)(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N,
                                int64_t K, cudaStream_t stream);

// The ladder, one row per variant (the bottom of kernels/matmul.cu).
VariantTable<MatmulLauncher> matmul_variants();

// The fastest correct fp32 GEMM of the ladder, for any M, N, K >= 1 and any 4-byte-aligned
// pointers (conv2d's im2col_gemm calls this). c = a @ b, all row-major and contiguous.
void matmul_f32_best(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                     cudaStream_t stream);

}  // namespace pykern
