// matmul's mma.sync rung (the ladder: kernels/matmul/table.cu):
//   mma_sync   tensor cores through PTX, as the fast Ampere-class kernels reach them: ldmatrix
//              from XOR-swizzled (bank-conflict free) shared tiles into mma.sync m16n8k16
//              fragments, fp16 or bf16 in, fp32 accumulate and output; 3-stage cp.async ring
//              (sm_80+)                                                            f16 bf16
#include "matmul/ladder.cuh"

namespace pykern {
namespace matmul {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

// Block tile BM x BN over k-tiles of BK, STAGES of them in flight in a cp.async ring; warps of
// WM x WN, each a grid of (WM/16) x (WN/8) m16n8 accumulator tiles (4 floats a lane each).
template <int BM_, int BN_, int BK_, int WM_, int WN_, int STAGES_>
struct MmaCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int kThreads = 32 * (BM / WM) * (BN / WN);
  static constexpr int MT = WM / 16, NT = WN / 8;  // m16 and n8 mma tiles per warp
  static constexpr int kElem = 2;                  // bytes per fp16/bf16 element
  static constexpr int kVec = 16 / kElem;          // elements per 16-byte copy and ldmatrix row
  static constexpr int kATile = BM * BK, kBTile = BK * BN;  // elements per stage, unpadded
  static_assert(BM % WM == 0 && BN % WN == 0, "warp tiles must cover the block tile exactly");
  static_assert(WM % 16 == 0 && BK % 16 == 0, "a fragments are 16x16 (m16 x k16)");
  static_assert(WN % 16 == 0, "b fragments are loaded two n8 tiles at a time (ldmatrix.x4.trans)");
  static_assert(BK % 64 == 0 && BN % 64 == 0,
                "swizzled rows must be whole 128-byte lines (64 elements) for the XOR to stay in a line");
  static_assert(STAGES >= 2, "the ring overlaps the copy of one k-tile with the compute of another");
  static constexpr size_t kSmemBytes = size_t(STAGES) * (kATile + kBTile) * kElem;
};

// 128x128x64 block tile, 8 warps of 64x32 (4 x 4 mma tiles, 64 accumulators a lane), 3 stages:
// 96 KiB of shared memory (fits every sm_80+ opt-in limit, sm_86's 99 KiB included).
using MmaTiles = MmaCfg<128, 128, 64, 64, 32, 3>;

// VEC: a and b copied in 16-byte cp.async pieces (K, N multiples of 8, pointers 16-byte
// aligned). Otherwise element by element with ordinary loads into the same swizzled layout.
template <typename T, typename Cfg, bool VEC>
__global__ void __launch_bounds__(Cfg::kThreads, VEC ? 2 : 1)
    matmul_mma_sync_kernel(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c,
                           int M, int N, int K) {
  // a: (M, K), b: (K, N), c: (M, N), row-major.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 mma.sync and cp.async need sm_80; the launcher checks before launching
#else
  static_assert(sizeof(T) == Cfg::kElem, "the tile layout is sized for 16-bit elements");
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, WM = Cfg::WM, WN = Cfg::WN;
  constexpr int STAGES = Cfg::STAGES, MT = Cfg::MT, NT = Cfg::NT;
  constexpr int V = VEC ? Cfg::kVec : 1;
  PYKERN_EXTERN_SHARED(128, unsigned char, smem);
  T* as = reinterpret_cast<T*>(smem);  // a: (BM rows of M, BK of K) per stage, swizzled rows of BK
  T* bs = as + STAGES * Cfg::kATile;   // b: (BK of K, BN columns of N) per stage, swizzled rows of BN
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wr = (warp / (BN / WN)) * WM, wc = (warp % (BN / WN)) * WN;
  const T* a_tile = a + static_cast<int64_t>(t.m0) * K;
  const T* b_tile = b + t.n0;
  auto issue = [&](int kt) {
    const int k0 = kt * BK, s = kt % STAGES;
    load_tile<BM, BK, Cfg::kThreads, V, Layout::kSwizzled, Copy::kAsync>(
        a_tile + k0, K, M - t.m0, K - k0, as + s * Cfg::kATile, BK);
    load_tile<BK, BN, Cfg::kThreads, V, Layout::kSwizzled, Copy::kAsync>(
        b_tile + static_cast<int64_t>(k0) * N, N, K - k0, N - t.n0, bs + s * Cfg::kBTile, BN);
  };

  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // ldmatrix.x4 row addresses: lane l names row l % 16 of a 16x16 block, in its left (l < 16)
  // or right 8 columns, so matrices 0..3 are (rows 0-7, cols 0-7), (8-15, 0-7), (0-7, 8-15),
  // (8-15, 8-15): for a, fragment registers a0a1, a2a3, a4a5, a6a7; for b (k rows, n columns,
  // transposed by .trans), b0b1 and b2b3 of the n8 tile at column 0, then of the one at 8.
  const int frag_row = lane % 16, frag_col = (lane / 16) * 8;

  const int ktiles = (K + BK - 1) / BK;
  // Group g holds k-tile g (empty groups past the last), so waiting until STAGES - 2 groups
  // are in flight means k-tile kt has landed.
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) issue(s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // k-tile kt is everyone's now, and stage (kt - 1) % STAGES is free to refill
    if (kt + STAGES - 1 < ktiles) issue(kt + STAGES - 1);
    cp_async_commit();
    const T* a_s = as + (kt % STAGES) * Cfg::kATile;
    const T* b_s = bs + (kt % STAGES) * Cfg::kBTile;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t af[MT][4], bf[NT][2];
#pragma unroll
      for (int i = 0; i < MT; ++i)
        ldmatrix<4, false>(af[i], a_s + swizzled_offset(wr + i * 16 + frag_row, kk + frag_col, BK));
#pragma unroll
      for (int j = 0; j < NT; j += 2) {
        uint32_t r[4];
        ldmatrix<4, true>(r, b_s + swizzled_offset(kk + frag_row, wc + j * 8 + frag_col, BN));
        bf[j][0] = r[0], bf[j][1] = r[1], bf[j + 1][0] = r[2], bf[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) mma_m16n8k16<T>(acc[i][j], af[i], bf[j], acc[i][j]);
    }
  }

  // Epilogue: the accumulator layout is the ISA's (c0, c1 at row groupID, columns
  // 2 * threadID_in_group + 0, 1; c2, c3 eight rows below), so each lane writes its own
  // elements straight to c, bounds-checked (any M, N; no alignment needed).
  const int group = lane >> 2, tig = lane % 4;
#pragma unroll
  for (int i = 0; i < MT; ++i) {
#pragma unroll
    for (int j = 0; j < NT; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = t.m0 + wr + i * 16 + group + (e >= 2 ? 8 : 0);
        const int col = t.n0 + wc + j * 8 + tig * 2 + (e & 1);
        if (row < M && col < N) c[static_cast<int64_t>(row) * N + col] = acc[i][j][e];
      }
    }
  }
#endif
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

void launch_mma_sync(const Call& call) {
  using Cfg = MmaTiles;
  const MatmulDims d = call.dims_as<MatmulDims>();
  require_sm80(call.name);
  dispatch_dtype<__half, __nv_bfloat16>(call.dtype, call.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* a = call.input<T>(0);
    const T* b = call.input<T>(1);
    float* c = call.output<float>();
    const unsigned int grid = grid_for(d.M, d.N, Cfg::BM, Cfg::BN);
    // 16-byte copies need every row start of a and b 16-byte aligned: K and N multiples of 8.
    const bool vec = d.K % Cfg::kVec == 0 && d.N % Cfg::kVec == 0 && aligned16(a) && aligned16(b);
    with_flags([&](auto v) {
      auto kernel = matmul_mma_sync_kernel<T, Cfg, decltype(v)::value>;
      // More than 48 KB of dynamic shared memory must be opted into, per kernel.
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(Cfg::kSmemBytes)), call.name);
      PYKERN_LAUNCH(grid, Cfg::kThreads, Cfg::kSmemBytes, call.stream, kernel)(a, b, c, int(d.M), int(d.N),
                                                                               int(d.K));
      check_launch(call.name);
    }, vec);
  });
}

// This family's rung facts: the tiles the table's rule (table.cu) checks the shape against.
const Rung kMmaSyncRung{launch_mma_sync, {MmaTiles::BM, MmaTiles::BN, MmaTiles::BM, MmaTiles::BN, MmaTiles::BK}};

}  // namespace matmul
}  // namespace pykern
