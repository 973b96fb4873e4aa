// matmul's warp-tiled rungs (the ladder: kernels/matmul/table.cu), and matmul_f32_best, the
// ladder's GEMM for other ops (conv2d's im2col_gemm):
//   warptile       block -> warp (64x32) -> thread (2x2 sub-tiles of 4x4) tiling, so each warp's
//                  shared reads are broadcast-friendly and conflict-free                      f32
//   double_buffer  warptile fed by cp.async (sm_80+): the next k-tile is copied global->shared
//                  while the current one is computed; the default                             f32
#include "matmul/ladder.cuh"

namespace pykern {
namespace matmul {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

// Warp tiling, shared by warptile and double_buffer. The BM x BN block tile is split among
// warps as WM x WN warp tiles; a warp's 32 lanes form an 8 x 4 grid, each lane owning TM x TN
// outputs in each of WMITER x WNITER sub-tiles. At every k, the 8 row-lanes read 8 adjacent
// float4s of a^T and the 4 column-lanes 4 adjacent float4s of b: each shared read is one
// conflict-free wavefront, and 4 float4 reads feed 64 FMAs.
template <int BM_, int BN_, int BK_, int WM_, int WN_, int TM_, int TN_>
struct WarpTiling {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, TM = TM_, TN = TN_;
  static constexpr int kLaneRows = 8, kLaneCols = 4;
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int WMITER = WM / (kLaneRows * TM), WNITER = WN / (kLaneCols * TN);
  // a^T row stride: +4 keeps rows 16-byte aligned for the float4 reads and cuts the transposing
  // stores' bank conflicts to 2-way (4-way for float4 loads, 16-way for scalar ones at BM).
  static constexpr int kALd = BM + 4;
  static constexpr int kATile = BK * kALd, kBTile = BK * BN;  // floats per k-tile
  static_assert(BM % WM == 0 && BN % WN == 0, "warp tiles must cover the block tile exactly");
  static_assert(WM % (kLaneRows * TM) == 0 && WN % (kLaneCols * TN) == 0,
                "a warp tile is a whole number of 8x4-lane sub-tiles");
  static_assert(TM % 4 == 0 && TN % 4 == 0, "register fragments are read from shared memory as float4");
  static_assert(BK % 4 == 0, "a's float4 loads run along K: k-tiles must start 16 bytes apart");

  float acc[WMITER * TM][WNITER * TN];
  int row0, col0;  // this lane's first row / column inside the block tile

  __device__ __forceinline__ WarpTiling() {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    row0 = (warp / kWarpsN) * WM + (lane / kLaneCols) * TM;
    col0 = (warp % kWarpsN) * WN + (lane % kLaneCols) * TN;
#pragma unroll
    for (int i = 0; i < WMITER * TM; ++i)
#pragma unroll
      for (int j = 0; j < WNITER * TN; ++j) acc[i][j] = 0.f;
  }

  // acc += a tile @ b tile as BK rank-1 updates: scalar FFMA outer products of register
  // fragments (no tensor cores; wmma_* is the rung that uses them).
  // as: a^T (BK, BM) with row stride kALd; bs: b (BK, BN).
  __device__ __forceinline__ void outer_products(const float* __restrict__ as, const float* __restrict__ bs) {
    float ra[WMITER * TM], rb[WNITER * TN];
#pragma unroll
    for (int k = 0; k < BK; ++k) {
#pragma unroll
      for (int wm = 0; wm < WMITER; ++wm)
#pragma unroll
        for (int i = 0; i < TM; i += 4)
          *reinterpret_cast<float4*>(&ra[wm * TM + i]) =
              *reinterpret_cast<const float4*>(&as[k * kALd + row0 + wm * kLaneRows * TM + i]);
#pragma unroll
      for (int wn = 0; wn < WNITER; ++wn)
#pragma unroll
        for (int j = 0; j < TN; j += 4)
          *reinterpret_cast<float4*>(&rb[wn * TN + j]) =
              *reinterpret_cast<const float4*>(&bs[k * BN + col0 + wn * kLaneCols * TN + j]);
#pragma unroll
      for (int i = 0; i < WMITER * TM; ++i)
#pragma unroll
        for (int j = 0; j < WNITER * TN; ++j) acc[i][j] += ra[i] * rb[j];
    }
  }

  template <bool VEC>
  __device__ __forceinline__ void store(float* __restrict__ c, int M, int N, Tile t) const {
#pragma unroll
    for (int wm = 0; wm < WMITER; ++wm)
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const int row = t.m0 + row0 + wm * kLaneRows * TM + i;
        if (row >= M) continue;
        float* c_row = c + static_cast<int64_t>(row) * N;
#pragma unroll
        for (int wn = 0; wn < WNITER; ++wn)
          store_row<TN, VEC>(c_row, t.n0 + col0 + wn * kLaneCols * TN, N, &acc[wm * TM + i][wn * TN]);
      }
  }
};

// 128x128x16 block tile, 8 warps of 64x32, 2x2 sub-tiles of 4x4 per lane: 64 accumulators per
// thread, so 2 blocks (16 warps) fit per SM within 128 registers a thread.
using WarpCfg = WarpTiling<128, 128, 16, 64, 32, 4, 4>;

template <typename Cfg, bool VA, bool VBC>
__global__ void __launch_bounds__(Cfg::kThreads, 2)
    matmul_warptile_kernel(const float* __restrict__ a, const float* __restrict__ b,
                           float* __restrict__ c, int M, int N, int K) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK;
  PYKERN_SHARED(__align__(16) float, as, [Cfg::kATile]);  // a^T: (BK of K, BM rows of M), row stride kALd
  PYKERN_SHARED(__align__(16) float, bs, [Cfg::kBTile]);  // b: (BK of K, BN columns of N)
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  Cfg w;
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM, BK, Cfg::kThreads, VA ? 4 : 1, Layout::kTransposed, Copy::kLoadStore>(
        a + static_cast<int64_t>(t.m0) * K + k0, K, M - t.m0, K - k0, as, Cfg::kALd);
    load_tile<BK, BN, Cfg::kThreads, VBC ? 4 : 1, Layout::kSame, Copy::kLoadStore>(
        b + static_cast<int64_t>(k0) * N + t.n0, N, K - k0, N - t.n0, bs, BN);
    __syncthreads();
    w.outer_products(as, bs);
    __syncthreads();
  }
  w.template store<VBC>(c, M, N, t);
}

// STAGES k-tiles in flight in a ring of shared buffers. a is always copied one element per
// cp.async (4 bytes) because its tile is stored transposed, which cp.async cannot do in wider
// pieces; that also means a needs no alignment beyond 4 bytes. VBC: b copied in 16-byte pieces
// and c stored as float4 (N % 4 == 0, b and c 16-byte aligned).
template <typename Cfg, int STAGES, bool VBC>
__global__ void __launch_bounds__(Cfg::kThreads, 2)
    matmul_double_buffer_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                float* __restrict__ c, int M, int N, int K) {
  static_assert(STAGES >= 2, "overlap needs one buffer being computed and one being filled");
  static_assert(STAGES * (Cfg::kATile + Cfg::kBTile) * sizeof(float) <= 48 * 1024,
                "static shared memory is capped at 48 KB per block");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // cp.async needs sm_80; the launcher never picks this kernel below that
#else
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK;
  PYKERN_SHARED(__align__(16) float, as, [STAGES][Cfg::kATile]);  // a^T: (BK of K, BM rows of M) per stage
  PYKERN_SHARED(__align__(16) float, bs, [STAGES][Cfg::kBTile]);  // b: (BK of K, BN columns of N) per stage
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const float* a_tile = a + static_cast<int64_t>(t.m0) * K;
  const float* b_tile = b + t.n0;
  auto issue = [&](int kt) {
    const int k0 = kt * BK;
    load_tile<BM, BK, Cfg::kThreads, 1, Layout::kTransposed, Copy::kAsync>(
        a_tile + k0, K, M - t.m0, K - k0, as[kt % STAGES], Cfg::kALd);
    load_tile<BK, BN, Cfg::kThreads, VBC ? 4 : 1, Layout::kSame, Copy::kAsync>(
        b_tile + static_cast<int64_t>(k0) * N, N, K - k0, N - t.n0, bs[kt % STAGES], BN);
  };
  const int ktiles = (K + BK - 1) / BK;
  // Prologue: k-tiles 0..STAGES-2 in flight, one commit group each (empty past the end, so
  // group g always holds k-tile g and the wait count below stays a constant).
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) issue(s);
    cp_async_commit();
  }
  Cfg w;
  for (int kt = 0; kt < ktiles; ++kt) {
    // STAGES-1+kt groups committed; allowing STAGES-2 pending means groups 0..kt (this
    // thread's part of k-tile kt) have landed.
    cp_async_wait<STAGES - 2>();
    // Everyone's part of k-tile kt is now visible, and everyone has finished computing k-tile
    // kt-1, whose buffer the next issue overwrites.
    __syncthreads();
    if (kt + STAGES - 1 < ktiles) issue(kt + STAGES - 1);
    cp_async_commit();
    w.outer_products(as[kt % STAGES], bs[kt % STAGES]);
  }
  w.template store<VBC>(c, M, N, t);
#endif
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

void warptile_f32(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                  cudaStream_t stream, const char* what) {
  using Cfg = WarpCfg;
  const unsigned int grid = grid_for(M, N, Cfg::BM, Cfg::BN);
  with_flags([&](auto va, auto vbc) {
    PYKERN_LAUNCH(grid, Cfg::kThreads, 0, stream,
                  matmul_warptile_kernel<Cfg, decltype(va)::value, decltype(vbc)::value>)(
        a, b, c, int(M), int(N), int(K));
    check_launch(what);
  }, vec_a(a, K), vec_bc(b, c, N));
}

void double_buffer_f32(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                       cudaStream_t stream, const char* what) {
  using Cfg = WarpCfg;
  constexpr int kStages = 2;
  require_sm80(what);
  const unsigned int grid = grid_for(M, N, Cfg::BM, Cfg::BN);
  with_flags([&](auto vbc) {
    PYKERN_LAUNCH(grid, Cfg::kThreads, 0, stream, matmul_double_buffer_kernel<Cfg, kStages, decltype(vbc)::value>)(
        a, b, c, int(M), int(N), int(K));
    check_launch(what);
  }, vec_bc(b, c, N));
}

void launch_warptile(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  warptile_f32(call.input<float>(0), call.input<float>(1), call.output<float>(), d.M, d.N, d.K, call.stream,
               call.name);
}

void launch_double_buffer(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  double_buffer_f32(call.input<float>(0), call.input<float>(1), call.output<float>(), d.M, d.N, d.K, call.stream,
                    call.name);
}

// This family's rung facts: the tiles the table's rule (table.cu) checks the shape against.
const Rung kWarptileRung{launch_warptile, {WarpCfg::BM, WarpCfg::BN, WarpCfg::BM, WarpCfg::BN, WarpCfg::BK}};
const Rung kDoubleBufferRung{launch_double_buffer, {WarpCfg::BM, WarpCfg::BN, WarpCfg::BM, WarpCfg::BN, WarpCfg::BK}};

}  // namespace matmul

void matmul_f32_best(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                     cudaStream_t stream, const char* what) {
  // double_buffer needs cp.async (sm_80+); older GPUs get the same tiling without it.
  if (device_info().cc_major >= 8) {
    matmul::double_buffer_f32(a, b, c, M, N, K, stream, what);
  } else {
    matmul::warptile_f32(a, b, c, M, N, K, stream, what);
  }
}

}  // namespace pykern
