// matmul's mma.sync rung (the ladder: kernels/matmul/table.cu):
//   mma_sync   tensor cores through PTX, as the fast Ampere-class kernels reach them: ldmatrix
//              from XOR-swizzled (bank-conflict free) shared tiles into mma.sync m16n8k16
//              fragments, fp16 or bf16 in, fp32 accumulate and output; 3-stage cp.async ring
//              (sm_80+)                                                            f16 bf16
#include "matmul/ladder.cuh"
#include "mma_tile.cuh"  // MmaCfg and the ring, fragments and mma.sync calls, shared with conv2d's rung

namespace pykern {
namespace matmul {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

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
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK;
  constexpr int V = VEC ? Cfg::kVec : 1;
  PYKERN_EXTERN_SHARED(128, unsigned char, smem);
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const T* a_tile = a + static_cast<int64_t>(t.m0) * K;
  const T* b_tile = b + t.n0;
  float acc[Cfg::MT][Cfg::NT][4];
  mma_block_loop<T, Cfg>(acc, reinterpret_cast<T*>(smem), (K + BK - 1) / BK, [&](int kt, T* as, T* bs) {
    const int k0 = kt * BK;
    load_tile<BM, BK, Cfg::kThreads, V, Layout::kSwizzled, Copy::kAsync>(a_tile + k0, K, M - t.m0, K - k0, as, BK);
    load_tile<BK, BN, Cfg::kThreads, V, Layout::kSwizzled, Copy::kAsync>(
        b_tile + static_cast<int64_t>(k0) * N, N, K - k0, N - t.n0, bs, BN);
  });
  // Each lane writes its own accumulators straight to c, bounds-checked (any M, N; no
  // alignment needed).
  for_each_accumulator<Cfg>(acc, [&](int r, int col, float v) {
    const int row = t.m0 + r, cc = t.n0 + col;
    if (row < M && cc < N) c[static_cast<int64_t>(row) * N + cc] = v;
  });
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
      launch_staged<Cfg>(matmul_mma_sync_kernel<T, Cfg, decltype(v)::value>, grid, call.stream, call.name, a, b, c,
                         int(d.M), int(d.N), int(d.K));
    }, vec);
  });
}

// This family's rung facts: the tiles the table's rule (table.cu) checks the shape against.
const Rung kMmaSyncRung{launch_mma_sync, {MmaTiles::BM, MmaTiles::BN, MmaTiles::BM, MmaTiles::BN, MmaTiles::BK}};

}  // namespace matmul
}  // namespace pykern
