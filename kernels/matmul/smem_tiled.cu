// matmul's shared-memory rung (the ladder: kernels/matmul/table.cu):
//   smem_tiled  32x32 tiles of a and b staged in shared memory, one output per thread;
//               transposed a/b tiles loaded along their stored rows                        f32 f64
#include "matmul/ladder.cuh"

namespace pykern {
namespace matmul {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

// Rung 3, smem_tiled: a block computes a TILE x TILE tile of c, stepping along K one TILE-wide
// slice at a time. Each thread copies one element of a's slice and one of b's into shared
// memory, then all TILE*TILE threads read them TILE times from there instead of from global
// memory: TILE times less global traffic.
template <typename T, int TILE, bool TA, bool TB>
__global__ void __launch_bounds__(TILE * TILE)
    matmul_smem_tiled_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                             int M, int N, int K) {
  // a: (M, K), or (K, M) if TA; b: (K, N), or (N, K) if TB; c: (M, N).
  static_assert(TILE * TILE <= 1024, "one thread per output of a TILE x TILE tile: at most 1024 threads");
  // A transposed operand's tile is stored into shared memory transposed (a warp writes a column):
  // one padding word per row puts a column's elements in different banks.
  PYKERN_SHARED(T, as, [TILE][TILE + (TA ? 1 : 0)]);  // a: (TILE rows of M, TILE of K)
  PYKERN_SHARED(T, bs, [TILE][TILE + (TB ? 1 : 0)]);  // b: (TILE of K, TILE columns of N)
  const Tile t = tile_of_block<TILE, TILE, kGroupM>(M, N);
  const int ty = threadIdx.x / TILE, tx = threadIdx.x % TILE;
  const int row = t.m0 + ty, col = t.n0 + tx;
  T acc = T(0);
  for (int k0 = 0; k0 < K; k0 += TILE) {
    // Zeros past the edges of a and b, so the sum below runs over whole tiles without checks.
    // Consecutive tx read consecutive stored addresses in every layout: a transposed tile is read
    // along its stored rows, element (m0 + tx, k0 + ty), and written to as[tx][ty].
    if (TA) as[tx][ty] = t.m0 + tx < M && k0 + ty < K ? a[at<true>(t.m0 + tx, k0 + ty, M, K)] : T(0);
    else as[ty][tx] = row < M && k0 + tx < K ? a[at<false>(row, k0 + tx, M, K)] : T(0);
    if (TB) bs[tx][ty] = k0 + tx < K && t.n0 + ty < N ? b[at<true>(k0 + tx, t.n0 + ty, K, N)] : T(0);
    else bs[ty][tx] = k0 + ty < K && col < N ? b[at<false>(k0 + ty, col, K, N)] : T(0);
    __syncthreads();
    // as[ty][k] is one address per warp (broadcast); bs[k][tx] is 32 consecutive words.
#pragma unroll
    for (int k = 0; k < TILE; ++k) acc += as[ty][k] * bs[k][tx];
    __syncthreads();  // before the next iteration overwrites the tiles
  }
  if (row < M && col < N) c[static_cast<int64_t>(row) * N + col] = acc;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

constexpr int kSmemTile = 32;  // smem_tiled's TILE

void launch_smem_tiled(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  const unsigned int grid = grid_for(d.M, d.N, kSmemTile, kSmemTile);
  dispatch_dtype<float, double>(call.dtype, call.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_flags([&](auto ta, auto tb) {
      PYKERN_LAUNCH(grid, kSmemTile * kSmemTile, 0, call.stream,
                    matmul_smem_tiled_kernel<T, kSmemTile, decltype(ta)::value, decltype(tb)::value>)(
          call.input<T>(0), call.input<T>(1), call.output<T>(), int(d.M), int(d.N), int(d.K));
      check_launch(call.name);
    }, d.transpose_a != 0, d.transpose_b != 0);
  });
}

// This family's rung facts: the tiles the table's rule (table.cu) checks the shape against.
const Rung kSmemTiledRung{launch_smem_tiled, {kSmemTile, kSmemTile, 0, 0, 0}};

}  // namespace matmul
}  // namespace pykern
