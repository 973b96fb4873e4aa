// matmul's register-blocked rungs (the ladder: kernels/matmul/table.cu):
//   blocktile_1d  64x64 block tile over BK=8 shared tiles, each thread a column of 8 outputs  f32
//   blocktile_2d  128x128 block tile over BK=8 shared tiles, each thread an 8x8 register tile f32
//   vectorized    blocktile_2d with float4 global loads/stores and a transposed a tile       f32
// blocktile_2d and vectorized index inside a tile with 32-bit offsets (the table's rule bounds K, N).
#include "matmul/ladder.cuh"

namespace pykern {
namespace matmul {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

// Rung 4, blocktile_1d: a BM x BN block tile, each thread a column of TM outputs in registers.
template <int BM, int BN, int BK, int TM>
__global__ void __launch_bounds__(BM * BN / TM)
    matmul_blocktile_1d_kernel(const float* __restrict__ a, const float* __restrict__ b,
                               float* __restrict__ c, int M, int N, int K) {
  constexpr int kThreads = BM * BN / TM;
  static_assert(BM % TM == 0, "each thread owns TM whole rows of the block tile");
  static_assert(kThreads % BN == 0 && kThreads / BN == BM / TM,
                "threads tile the BM x BN block exactly: BN columns x BM/TM row groups");
  PYKERN_SHARED(float, as, [BM][BK]);  // a: (BM rows of M, BK of K)
  PYKERN_SHARED(float, bs, [BK][BN]);  // b: (BK of K, BN columns of N)
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  // A warp shares one row group (broadcast as[] reads) and takes 32 consecutive columns.
  const int tc = threadIdx.x % BN, tr = threadIdx.x / BN;
  float acc[TM] = {};
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM, BK, kThreads, 1, Layout::kSame, Copy::kLoadStore>(
        a + static_cast<int64_t>(t.m0) * K + k0, int64_t(K), M - t.m0, K - k0, &as[0][0], BK);
    load_tile<BK, BN, kThreads, 1, Layout::kSame, Copy::kLoadStore>(
        b + static_cast<int64_t>(k0) * N + t.n0, int64_t(N), K - k0, N - t.n0, &bs[0][0], BN);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      const float bv = bs[k][tc];  // reused TM times from a register
#pragma unroll
      for (int i = 0; i < TM; ++i) acc[i] += as[tr * TM + i][k] * bv;
    }
    __syncthreads();
  }
  const int col = t.n0 + tc;
  if (col >= N) return;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = t.m0 + tr * TM + i;
    if (row < M) c[static_cast<int64_t>(row) * N + col] = acc[i];
  }
}

// The register tiling of blocktile_2d, kept by vectorized (which changes only how tiles move):
// a 128x128 block tile over BK = 8 slices of K, 8x8 outputs per thread, so 256 threads.
struct Tile2dCfg {
  static constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
  static constexpr int kThreads = (BM / TM) * (BN / TN);
};

template <int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2)
    matmul_blocktile_2d_kernel(const float* __restrict__ a, const float* __restrict__ b,
                               float* __restrict__ c, int M, int N, int K) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  static_assert(BM % TM == 0 && BN % TN == 0, "threads own whole TM x TN tiles of the block tile");
  // Row stride BK + 1: the two row groups a warp reads (TM*BK words apart) then fall in
  // different banks instead of colliding (a 2-way conflict on every as[] read).
  constexpr int kALd = BK + 1;
  PYKERN_SHARED(float, as, [BM * kALd]);  // a: (BM rows of M, BK of K), padded rows
  PYKERN_SHARED(float, bs, [BK * BN]);    // b: (BK of K, BN columns of N)
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const int tc = threadIdx.x % (BN / TN), tr = threadIdx.x / (BN / TN);
  float acc[TM][TN] = {};
  float ra[TM], rb[TN];
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM, BK, kThreads, 1, Layout::kSame, Copy::kLoadStore>(
        a + static_cast<int64_t>(t.m0) * K + k0, K, M - t.m0, K - k0, as, kALd);
    load_tile<BK, BN, kThreads, 1, Layout::kSame, Copy::kLoadStore>(
        b + static_cast<int64_t>(k0) * N + t.n0, N, K - k0, N - t.n0, bs, BN);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      // TM + TN shared loads feed TM * TN FMAs: the point of the register tile.
#pragma unroll
      for (int i = 0; i < TM; ++i) ra[i] = as[(tr * TM + i) * kALd + k];
#pragma unroll
      for (int j = 0; j < TN; ++j) rb[j] = bs[k * BN + tc * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = t.m0 + tr * TM + i;
    if (row < M) store_row<TN, false>(c + static_cast<int64_t>(row) * N, t.n0 + tc * TN, N, acc[i]);
  }
}

// VA: a is read as float4 (K % 4 == 0, a 16-byte aligned). VBC: b read and c written as float4
// (N % 4 == 0, b and c 16-byte aligned). Either false: the same kernel with scalar accesses.
template <int BM, int BN, int BK, int TM, int TN, bool VA, bool VBC>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2)
    matmul_vectorized_kernel(const float* __restrict__ a, const float* __restrict__ b,
                             float* __restrict__ c, int M, int N, int K) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  static_assert(TM % 4 == 0 && TN % 4 == 0, "register fragments are read as whole float4s");
  static_assert(BK % 4 == 0, "a's float4 loads run along K: k-tiles must start 16 bytes apart");
  // Transposed a tile, row stride BM + 4: the fragment a thread needs at step k is
  // contiguous (float4 reads), and the transposing stores are conflict-free (2-way with float4
  // loads, 8-way with scalar ones at stride BM); BM + 4 keeps rows 16-byte aligned.
  constexpr int kALd = BM + 4;
  PYKERN_SHARED(__align__(16) float, as, [BK * kALd]);  // a^T: (BK of K, BM rows of M)
  PYKERN_SHARED(__align__(16) float, bs, [BK * BN]);    // b: (BK of K, BN columns of N)
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const int tc = threadIdx.x % (BN / TN), tr = threadIdx.x / (BN / TN);
  float acc[TM][TN] = {};
  float ra[TM], rb[TN];
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM, BK, kThreads, VA ? 4 : 1, Layout::kTransposed, Copy::kLoadStore>(
        a + static_cast<int64_t>(t.m0) * K + k0, K, M - t.m0, K - k0, as, kALd);
    load_tile<BK, BN, kThreads, VBC ? 4 : 1, Layout::kSame, Copy::kLoadStore>(
        b + static_cast<int64_t>(k0) * N + t.n0, N, K - k0, N - t.n0, bs, BN);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
#pragma unroll
      for (int i = 0; i < TM; i += 4)
        *reinterpret_cast<float4*>(&ra[i]) = *reinterpret_cast<const float4*>(&as[k * kALd + tr * TM + i]);
#pragma unroll
      for (int j = 0; j < TN; j += 4)
        *reinterpret_cast<float4*>(&rb[j]) = *reinterpret_cast<const float4*>(&bs[k * BN + tc * TN + j]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = t.m0 + tr * TM + i;
    if (row < M) store_row<TN, VBC>(c + static_cast<int64_t>(row) * N, t.n0 + tc * TN, N, acc[i]);
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

constexpr int kTile1dBM = 64, kTile1dBN = 64, kTile1dBK = 8, kTile1dTM = 8;  // blocktile_1d

void launch_blocktile_1d(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  PYKERN_LAUNCH(grid_for(d.M, d.N, kTile1dBM, kTile1dBN), kTile1dBM * kTile1dBN / kTile1dTM, 0, call.stream,
                matmul_blocktile_1d_kernel<kTile1dBM, kTile1dBN, kTile1dBK, kTile1dTM>)(
      call.input<float>(0), call.input<float>(1), call.output<float>(), int(d.M), int(d.N), int(d.K));
  check_launch(call.name);
}

void launch_blocktile_2d(const Call& call) {
  using Cfg = Tile2dCfg;
  const MatmulDims d = call.dims_as<MatmulDims>();
  PYKERN_LAUNCH(grid_for(d.M, d.N, Cfg::BM, Cfg::BN), Cfg::kThreads, 0, call.stream,
                matmul_blocktile_2d_kernel<Cfg::BM, Cfg::BN, Cfg::BK, Cfg::TM, Cfg::TN>)(
      call.input<float>(0), call.input<float>(1), call.output<float>(), int(d.M), int(d.N), int(d.K));
  check_launch(call.name);
}

void launch_vectorized(const Call& call) {
  using Cfg = Tile2dCfg;
  const MatmulDims d = call.dims_as<MatmulDims>();
  const float* a = call.input<float>(0);
  const float* b = call.input<float>(1);
  float* c = call.output<float>();
  const unsigned int grid = grid_for(d.M, d.N, Cfg::BM, Cfg::BN);
  with_flags([&](auto va, auto vbc) {
    PYKERN_LAUNCH(grid, Cfg::kThreads, 0, call.stream,
                  matmul_vectorized_kernel<Cfg::BM, Cfg::BN, Cfg::BK, Cfg::TM, Cfg::TN, decltype(va)::value,
                                           decltype(vbc)::value>)(a, b, c, int(d.M), int(d.N), int(d.K));
    check_launch(call.name);
  }, vec_a(a, d.K), vec_bc(b, c, d.N));
}

// This family's rung facts: the tiles the table's rule (table.cu) checks the shape against.
const Rung kBlocktile1dRung{launch_blocktile_1d, {kTile1dBM, kTile1dBN, 0, 0, 0}};
const Rung kBlocktile2dRung{launch_blocktile_2d, {Tile2dCfg::BM, Tile2dCfg::BN, Tile2dCfg::BM, Tile2dCfg::BN, Tile2dCfg::BK}};
const Rung kVectorizedRung{launch_vectorized, {Tile2dCfg::BM, Tile2dCfg::BN, Tile2dCfg::BM, Tile2dCfg::BN, Tile2dCfg::BK}};

}  // namespace matmul
}  // namespace pykern
