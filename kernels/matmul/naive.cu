// matmul's first rungs, one thread per output (the ladder: kernels/matmul/table.cu):
//   naive      threadIdx.x -> row: warp loads of a and stores of c uncoalesced on purpose   f32 f64
//   coalesced  threadIdx.x -> column: a warp reads b and writes c at consecutive addresses  f32 f64
// Both read transposed operands in place (template flags TA, TB) and index with 64-bit offsets.
#include "matmul/ladder.cuh"

namespace pykern {
namespace matmul {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

// Rung 1, naive: one thread per output. A block covers 32 rows x 8 columns of c and threadIdx.x
// walks the rows, so the 32 lanes of a warp read a at 32 rows K elements apart and write c at 32
// rows N apart: 32 memory transactions where 1 would do. The ladder's baseline, slow on purpose.
constexpr int kNaiveRows = 32, kNaiveCols = 8;  // block: (kNaiveRows, kNaiveCols) threads

template <typename T, bool TA, bool TB>
__global__ void __launch_bounds__(kNaiveRows * kNaiveCols)
    matmul_naive_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int M, int N,
                        int K) {
  // a: (M, K), or (K, M) if TA; b: (K, N), or (N, K) if TB; c: (M, N).
  const Tile t = tile_of_block<kNaiveRows, kNaiveCols, 1>(M, N);
  const int row = t.m0 + threadIdx.x, col = t.n0 + threadIdx.y;
  if (row >= M || col >= N) return;
  T acc = T(0);
  for (int k = 0; k < K; ++k) acc += a[at<TA>(row, k, M, K)] * b[at<TB>(k, col, K, N)];
  c[static_cast<int64_t>(row) * N + col] = acc;
}

// Rung 2, coalesced: the same loop with threadIdx.x walking the columns. A block covers 8 rows x
// 32 columns; a warp shares one row of a (a broadcast) and reads b and writes c at 32
// consecutive addresses: one transaction each.
constexpr int kCoalescedRows = 8, kCoalescedCols = 32;  // block: (kCoalescedCols, kCoalescedRows) threads

template <typename T, bool TA, bool TB>
__global__ void __launch_bounds__(kCoalescedRows * kCoalescedCols)
    matmul_coalesced_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int M, int N,
                            int K) {
  // a: (M, K), or (K, M) if TA; b: (K, N), or (N, K) if TB; c: (M, N). A transposed b loses the
  // coalescing (the warp's columns are rows of the stored b): smem_tiled handles that case well.
  const Tile t = tile_of_block<kCoalescedRows, kCoalescedCols, 1>(M, N);
  const int row = t.m0 + threadIdx.y, col = t.n0 + threadIdx.x;
  if (row >= M || col >= N) return;
  T acc = T(0);
  for (int k = 0; k < K; ++k) acc += a[at<TA>(row, k, M, K)] * b[at<TB>(k, col, K, N)];
  c[static_cast<int64_t>(row) * N + col] = acc;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

void launch_naive(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  const unsigned int grid = grid_for(d.M, d.N, kNaiveRows, kNaiveCols);
  dispatch_dtype<float, double>(call.dtype, call.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_flags([&](auto ta, auto tb) {
      PYKERN_LAUNCH(grid, dim3(kNaiveRows, kNaiveCols), 0, call.stream,
                    matmul_naive_kernel<T, decltype(ta)::value, decltype(tb)::value>)(
          call.input<T>(0), call.input<T>(1), call.output<T>(), int(d.M), int(d.N), int(d.K));
      check_launch(call.name);
    }, d.transpose_a != 0, d.transpose_b != 0);
  });
}

void launch_coalesced(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  const unsigned int grid = grid_for(d.M, d.N, kCoalescedRows, kCoalescedCols);
  dispatch_dtype<float, double>(call.dtype, call.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_flags([&](auto ta, auto tb) {
      PYKERN_LAUNCH(grid, dim3(kCoalescedCols, kCoalescedRows), 0, call.stream,
                    matmul_coalesced_kernel<T, decltype(ta)::value, decltype(tb)::value>)(
          call.input<T>(0), call.input<T>(1), call.output<T>(), int(d.M), int(d.N), int(d.K));
      check_launch(call.name);
    }, d.transpose_a != 0, d.transpose_b != 0);
  });
}

// This family's rung facts: the tiles the table's rule (table.cu) checks the shape against.
const Rung kNaiveRung{launch_naive, {kNaiveRows, kNaiveCols, 0, 0, 0}};
const Rung kCoalescedRung{launch_coalesced, {kCoalescedRows, kCoalescedCols, 0, 0, 0}};

}  // namespace matmul
}  // namespace pykern
