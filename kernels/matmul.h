// Matmul launchers (kernels/matmul.cu): row-major a: (M, K) @ b: (K, N) -> c: (M, N).
// Owned by the matmul ladder; other ops that need a GEMM call matmul_f32_best.
#pragma once
#include "pykern.h"

namespace pykern {

// The ladder's launchers, one per variant (see the header of kernels/matmul.cu). a: (M, K),
// b: (K, N), c: (M, N) device pointers of dtype dt (c is float32 for the 16-bit wmma inputs);
// any M, N, K in [1, 2^31 - 1025]; enqueued on `stream`. A dtype a variant does not take throws
// std::invalid_argument, a shape outside that range std::domain_error, a CUDA error
// std::runtime_error.

// float32, float64
void matmul_naive(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                  cudaStream_t stream);
// float32, float64
void matmul_coalesced(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                      cudaStream_t stream);
// float32, float64
void matmul_smem_tiled(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                       cudaStream_t stream);
// float32
void matmul_blocktile_1d(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                         cudaStream_t stream);
// float32
void matmul_blocktile_2d(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                         cudaStream_t stream);
// float32
void matmul_vectorized(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                       cudaStream_t stream);
// float32
void matmul_warptile(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                     cudaStream_t stream);
// float32; sm_80+
void matmul_double_buffer(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                          cudaStream_t stream);
// float16 in, float32 out; sm_80+
void matmul_wmma_fp16(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                      cudaStream_t stream);
// bfloat16 in, float32 out; sm_80+
void matmul_wmma_bf16(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N, int64_t K,
                      cudaStream_t stream);

// The fastest correct fp32 GEMM of the ladder, for any M, N, K >= 1 and any 4-byte-aligned
// pointers (conv2d's im2col_gemm calls this). c = a @ b, all row-major and contiguous.
void matmul_f32_best(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                     cudaStream_t stream);

}  // namespace pykern
