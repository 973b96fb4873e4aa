// matmul's tensor-core rungs (the ladder: kernels/matmul/table.cu):
//   wmma_fp16  tensor cores via nvcuda::wmma, fp16 in, fp32 accumulate and output,
//   wmma_bf16  same with bf16 in; 3-stage cp.async pipeline (sm_80+)                      f16 / bf16
#include <mma.h>

#include "matmul/ladder.cuh"

namespace pykern {
namespace matmul {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

// Tensor cores through nvcuda::wmma: 16x16x16 fragments, T (half or bf16) in, fp32 accumulate.
// WM x WN warp tiles of (WM/16) x (WN/16) accumulator fragments; k-tiles of BK staged through a
// STAGES-deep cp.async ring in dynamic shared memory.
template <int BM_, int BN_, int BK_, int WM_, int WN_, int STAGES_>
struct WmmaCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int kThreads = 32 * (BM / WM) * (BN / WN);
  // Rows padded by 8 elements (16 bytes): consecutive fragment rows then start 4 banks apart,
  // so the 8 rows an 8x8 fragment load reads hit 8 disjoint bank groups.
  static constexpr int kALd = BK + 8, kBLd = BN + 8;
  static constexpr int kATile = BM * kALd, kBTile = BK * kBLd;  // elements per stage
  static constexpr int kElem = 2;                               // bytes per fp16/bf16 element
  static constexpr int kVec = 16 / kElem;                       // elements per 16-byte copy
  static_assert(BM % WM == 0 && BN % WN == 0, "warp tiles must cover the block tile exactly");
  static_assert(WM % 16 == 0 && WN % 16 == 0 && BK % 16 == 0, "wmma fragments are 16x16x16");
  static_assert(BK % kVec == 0 && BN % kVec == 0, "tiles are copied in whole 16-byte pieces");
  // load_matrix_sync needs 32-byte aligned fragment pointers: rows are multiples of 16
  // elements apart and every stage/array offset must keep that.
  static_assert((kATile * kElem) % 32 == 0 && (kBTile * kElem) % 32 == 0 && (kALd * kElem * 16) % 32 == 0,
                "stage sizes keep fragment pointers 32-byte aligned");
  static constexpr size_t kSmemBytes = size_t(STAGES) * (kATile + kBTile) * kElem;
  // The epilogue reuses the ring to stage each warp's 16 x WN fp32 fragment rows.
  static_assert(size_t(kThreads / 32) * 16 * WN * sizeof(float) <= kSmemBytes,
                "epilogue staging must fit in the pipeline's shared memory");
};

// 128x128x32 block tile, 8 warps of 64x32 (8 accumulator fragments, 64 registers each), 3
// stages: 55.5 KB of shared memory, 2 blocks per SM.
using WmmaTiles = WmmaCfg<128, 128, 32, 64, 32, 3>;

// VEC: a and b copied in 16-byte cp.async pieces (K, N multiples of 8, pointers 16-byte aligned).
// Otherwise element by element with ordinary loads (cp.async cannot copy 2 bytes); that path
// needs more address registers and is allowed up to 255 (one block per SM) instead of spilling.
template <typename T, typename Cfg, bool VEC>
__global__ void __launch_bounds__(Cfg::kThreads, VEC ? 2 : 1)
    matmul_wmma_kernel(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c,
                       int M, int N, int K) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 wmma and cp.async need sm_80; the launcher checks before launching
#else
  static_assert(sizeof(T) == Cfg::kElem, "the tile layout is sized for 16-bit elements");
  namespace wmma = nvcuda::wmma;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, WM = Cfg::WM, WN = Cfg::WN;
  constexpr int STAGES = Cfg::STAGES, FM = WM / 16, FN = WN / 16;
  constexpr int V = VEC ? Cfg::kVec : 1;
  PYKERN_EXTERN_SHARED(128, unsigned char, smem);
  T* as = reinterpret_cast<T*>(smem);   // a: (BM rows of M, BK of K) per stage, row stride kALd
  T* bs = as + STAGES * Cfg::kATile;    // b: (BK of K, BN columns of N) per stage, row stride kBLd
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wr = (warp / (BN / WN)) * WM, wc = (warp % (BN / WN)) * WN;
  const T* a_tile = a + static_cast<int64_t>(t.m0) * K;
  const T* b_tile = b + t.n0;
  auto issue = [&](int kt) {
    const int k0 = kt * BK, s = kt % STAGES;
    load_tile<BM, BK, Cfg::kThreads, V, Layout::kSame, Copy::kAsync>(
        a_tile + k0, K, M - t.m0, K - k0, as + s * Cfg::kATile, Cfg::kALd);
    load_tile<BK, BN, Cfg::kThreads, V, Layout::kSame, Copy::kAsync>(
        b_tile + static_cast<int64_t>(k0) * N, N, K - k0, N - t.n0, bs + s * Cfg::kBTile, Cfg::kBLd);
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  const int ktiles = (K + BK - 1) / BK;
  // Same ring discipline as the double_buffer kernel: group g holds k-tile g.
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) issue(s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    if (kt + STAGES - 1 < ktiles) issue(kt + STAGES - 1);
    cp_async_commit();
    const T* a_s = as + (kt % STAGES) * Cfg::kATile;
    const T* b_s = bs + (kt % STAGES) * Cfg::kBTile;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[FM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[FN];
#pragma unroll
      for (int i = 0; i < FM; ++i) wmma::load_matrix_sync(fa[i], a_s + (wr + i * 16) * Cfg::kALd + kk, Cfg::kALd);
#pragma unroll
      for (int j = 0; j < FN; ++j) wmma::load_matrix_sync(fb[j], b_s + kk * Cfg::kBLd + wc + j * 16, Cfg::kBLd);
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
  }

  // Epilogue: fragments have an opaque register layout, so each warp stages one 16 x WN row of
  // fragments in shared memory and writes it out with per-element bounds checks (any M, N, and
  // no alignment needed for c).
  cp_async_wait<0>();
  __syncthreads();  // every warp is done reading the ring before it is reused
  float* stage = reinterpret_cast<float*>(smem) + warp * 16 * WN;  // (16, WN) per warp
#pragma unroll
  for (int i = 0; i < FM; ++i) {
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::store_matrix_sync(stage + j * 16, acc[i][j], WN, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 16 * WN; e += 32) {
      const int row = t.m0 + wr + i * 16 + e / WN, col = t.n0 + wc + e % WN;
      if (row < M && col < N) c[static_cast<int64_t>(row) * N + col] = stage[e];
    }
    __syncwarp();  // the next fragment row overwrites stage
  }
#endif
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

template <typename T>
void launch_wmma(const Call& call) {
  using Cfg = WmmaTiles;
  const MatmulDims d = call.dims_as<MatmulDims>();
  const T* a = call.input<T>(0);
  const T* b = call.input<T>(1);
  float* c = call.output<float>();
  require_sm80(call.name);
  const unsigned int grid = grid_for(d.M, d.N, Cfg::BM, Cfg::BN);
  // 16-byte copies need every row start of a and b 16-byte aligned: K and N multiples of 8.
  const bool vec = d.K % Cfg::kVec == 0 && d.N % Cfg::kVec == 0 && aligned16(a) && aligned16(b);
  with_flags([&](auto v) {
    launch_staged<Cfg>(matmul_wmma_kernel<T, Cfg, decltype(v)::value>, grid, call.stream, call.name, a, b, c,
                       int(d.M), int(d.N), int(d.K));
  }, vec);
}

void launch_wmma_fp16(const Call& call) { launch_wmma<__half>(call); }
void launch_wmma_bf16(const Call& call) { launch_wmma<__nv_bfloat16>(call); }

// This family's rung facts: the tiles the table's rule (table.cu) checks the shape against.
const Rung kWmmaFp16Rung{launch_wmma_fp16, {WmmaTiles::BM, WmmaTiles::BN, WmmaTiles::BM, WmmaTiles::BN, WmmaTiles::BK}};
const Rung kWmmaBf16Rung{launch_wmma_bf16, {WmmaTiles::BM, WmmaTiles::BN, WmmaTiles::BM, WmmaTiles::BN, WmmaTiles::BK}};

}  // namespace matmul
}  // namespace pykern
