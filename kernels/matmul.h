// matmul (kernels/matmul/): row-major a: (M, K) @ b: (K, N) -> c: (M, N), a stored (K, M) and
// b (N, K) when transposed. Owned by the matmul ladder; other ops that need a GEMM call
// matmul_f32_best.
#pragma once
#include <climits>
#include <string>
#include "pykern.h"

namespace pykern {

// The largest M, N, K any launcher takes: int indexing with a margin for the tile arithmetic that
// runs up to one tile past the edge.
constexpr int64_t kMatmulMaxDim = INT_MAX - 1024;

// A Call's dims: c: (M, N) = op(a): (M, K) @ op(b): (K, N), c float32 for the 16-bit wmma inputs.
// transpose_a / transpose_b (0 or 1): a stored (K, M), b stored (N, K); only the rows whose table
// entry takes kTransposeA / kTransposeB get them set (the binder refuses the others). The spec's
// dims (pykern/ops/matmul.py) list the same fields in the same order.
PYKERN_DIMS(MatmulDims, M, N, K, transpose_a, transpose_b);

// The fastest correct fp32 GEMM of the ladder, for any 4-byte-aligned pointers and the shapes
// matmul_f32_best_problem accepts (conv2d's im2col_gemm calls this). c = a @ b, all row-major
// and contiguous; `what` names the caller's row in errors.
void matmul_f32_best(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                     cudaStream_t stream, const char* what);
// "" when matmul_f32_best takes this shape, else why not (the caller's `unsupported` rule says it).
std::string matmul_f32_best_problem(int64_t M, int64_t N, int64_t K);

}  // namespace pykern
