// Matmul launchers (kernels/matmul.cu): row-major a: (M, K) @ b: (K, N) -> c: (M, N), a stored
// (K, M) and b (N, K) when transposed (Transpose below).
// Owned by the matmul ladder; other ops that need a GEMM call matmul_f32_best.
#pragma once
#include <climits>
#include <string>
#include "pykern.h"

namespace pykern {

// The largest M, N, K any launcher takes: int indexing with a margin for the tile arithmetic that
// runs up to one tile past the edge.
constexpr int64_t kMatmulMaxDim = INT_MAX - 1024;

// Every variant's launcher: a: (M, K), b: (K, N), c: (M, N) device pointers of dtype dt (c is
// float32 for the 16-bit wmma inputs); any M, N, K in [1, kMatmulMaxDim], and from blocktile_2d
// on K and N small enough for 32-bit offsets inside a tile (millions); enqueued on `stream`.
// A shape outside those bounds throws std::domain_error, a CUDA error std::runtime_error.
// tr: which operands are stored transposed (a as (K, M), b as (N, K)); only the rows whose table
// entry takes kTransposeA / kTransposeB accept a set flag (the bindings refuse the others first,
// and those launchers refuse them too).
struct Transpose {
  bool a, b;
};
using MatmulLauncher = void (*)(DType dt, const void* a, const void* b, void* c, int64_t M, int64_t N,
                                int64_t K, Transpose tr, cudaStream_t stream);

// The ladder, one row per variant (the bottom of kernels/matmul.cu).
VariantTable<MatmulLauncher> matmul_variants();

// The fastest correct fp32 GEMM of the ladder, for any 4-byte-aligned pointers and the shapes
// matmul_f32_best_problem accepts (conv2d's im2col_gemm calls this). c = a @ b, all row-major
// and contiguous.
void matmul_f32_best(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                     cudaStream_t stream);
// "" when matmul_f32_best takes this shape, else why not (what it would throw).
std::string matmul_f32_best_problem(int64_t M, int64_t N, int64_t K);

}  // namespace pykern
