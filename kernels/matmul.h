// Matmul launchers (kernels/matmul.cu): row-major a: (M, K) @ b: (K, N) -> c: (M, N).
// Owned by the matmul ladder; other ops that need a GEMM call matmul_f32_best.
#pragma once
#include "pykern.h"

namespace pykern {

// The fastest correct fp32 GEMM of the ladder, for any M, N, K >= 1 and any 4-byte-aligned
// pointers (conv2d's im2col_gemm calls this). c = a @ b, all row-major and contiguous.
void matmul_f32_best(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                     cudaStream_t stream);

}  // namespace pykern
