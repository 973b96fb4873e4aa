// matmul's Hopper rung (the ladder: kernels/matmul/table.cu):
//   wgmma   tensor cores as Hopper feeds them: a producer warp streams 128B-swizzled TMA tiles of
//           a and b into a 4-stage shared-memory ring guarded by full/empty mbarriers; two
//           consumer warpgroups read them in place through wgmma.mma_async m64n128k16 descriptors,
//           one wgmma group kept in flight while the next stage is issued; fp16 or bf16 in, fp32
//           accumulate and output (sm_90a: H100/H200 only)                          f16 bf16
// a, b, c row-major; any M, N, K: TMA fills past the matrix edges with zeros, and the epilogue
// stores only inside c. Where TMA cannot read a or b (K or N not a multiple of 8, or a pointer
// not 16-byte aligned: the tensor map's rules) the producer warp copies the same swizzled tiles
// with ordinary loads instead, and the consumers do not change.
#include "matmul/ladder.cuh"
#include "tma.cuh"    // mbarriers, TMA tile loads, tensor maps
#include "wgmma.cuh"  // descriptors, mma_async, commit/wait

namespace pykern {
namespace matmul {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

// Block tile BM x BN over k-tiles of BK, STAGES k-tiles in flight; BM / 64 consumer warpgroups,
// each one m64nBNk16 wgmma per k16 step, and one producer warp.
template <int BM_, int BN_, int BK_, int STAGES_>
struct WgmmaCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, STAGES = STAGES_;
  static constexpr int kConsumers = BM / 64;                 // warpgroups
  static constexpr int kThreads = 128 * kConsumers + 32;     // + the producer warp
  static constexpr int kATile = BM * BK, kBTile = BK * BN;  // elements per stage
  static constexpr int kBoxCols = 64;                        // b's boxes: 64 columns, one 128-byte row
  static constexpr unsigned kStageBytes = (kATile + kBTile) * 2;
  static constexpr size_t kSmemBytes = size_t(STAGES) * kStageBytes;
  static_assert(BK * 2 == 128, "a's rows of BK elements are one 128B swizzle row (the TMA box and the K-major "
                               "descriptor agree on it)");
  static_assert(BM % 64 == 0 && BM <= 256, "a warpgroup's wgmma covers 64 rows; a TMA box at most 256");
  static_assert(BN % kBoxCols == 0 && BN <= 256, "b is loaded in 64-column boxes; wgmma's N is at most 256");
  static_assert(STAGES >= 2, "the ring overlaps the copy of one k-tile with the wgmmas of another");
};

// 128x128x64 tiles (two consumer warpgroups of 64x128, 64 accumulators a thread), 4 stages:
// 128 KiB of shared memory, within sm_90's 227 KiB opt-in.
using WgmmaTiles = WgmmaCfg<128, 128, 64, 4>;

// The scalar fallback's copy of a (ROWS, 64) box of a row-major matrix (leading dimension ld)
// into the layout the TMA's 128B swizzle gives it (tile.cuh's swizzled_offset on 64-element
// rows is that rule), zero past rows_left and cols_left; the producer warp's lanes share it.
template <int ROWS, typename T>
__device__ __forceinline__ void copy_box(const T* g, int64_t ld, int rows_left, int cols_left, T* s, int lane) {
  for (int e = lane; e < ROWS * 64; e += 32) {
    const int r = e / 64, c = e % 64;
    s[swizzled_offset(r, c, 64)] = r < rows_left && c < cols_left ? g[r * ld + c] : T(0.0f);
  }
}

// The producer: per k-tile, once the consumers have released the stage (empty), fill it and
// signal full. TMA: lane 0 announces the stage's bytes (edge boxes count whole: their zero fill is
// delivered too) and issues a's box and b's boxes. Otherwise all 32 lanes copy, make their stores
// visible to the async proxy that wgmma reads through, and arrive.
template <typename T, typename Cfg, bool TMA>
__device__ __forceinline__ void produce(const CUtensorMap* map_a, const CUtensorMap* map_b, const T* a, const T* b,
                                        int M, int N, int K, Tile t, T* as, T* bs, uint64_t* full, uint64_t* empty) {
  const int lane = threadIdx.x % 32;
  if (TMA && lane != 0) return;
  const int ktiles = (K + Cfg::BK - 1) / Cfg::BK;
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt % Cfg::STAGES, use = kt / Cfg::STAGES, k0 = kt * Cfg::BK;
    if (use > 0) mbarrier_wait_parity(&empty[s], static_cast<unsigned>((use - 1) & 1));
    T* a_s = as + s * Cfg::kATile;
    T* b_s = bs + s * Cfg::kBTile;
    if constexpr (TMA) {
      mbarrier_arrive_expect_tx(&full[s], Cfg::kStageBytes);
      tma_load_2d(a_s, map_a, k0, t.m0, &full[s]);
      for (int j = 0; j < Cfg::BN / Cfg::kBoxCols; ++j)
        tma_load_2d(b_s + j * Cfg::BK * Cfg::kBoxCols, map_b, t.n0 + j * Cfg::kBoxCols, k0, &full[s]);
    } else {
      copy_box<Cfg::BM>(a + static_cast<int64_t>(t.m0) * K + k0, K, M - t.m0, K - k0, a_s, lane);
      for (int j = 0; j < Cfg::BN / Cfg::kBoxCols; ++j) {
        const int n = t.n0 + j * Cfg::kBoxCols;
        copy_box<Cfg::BK>(b + static_cast<int64_t>(k0) * N + n, N, K - k0, N - n, b_s + j * Cfg::BK * Cfg::kBoxCols,
                          lane);
      }
      fence_proxy_async();
      mbarrier_arrive(&full[s]);
    }
  }
}

// One consumer warpgroup's k-loop: acc (64 x BN of c, this thread's BN / 2) += its 64 rows of a
// @ b. A is K-major (rows of 64 k, 1024 bytes per 8 rows), B MN-major (per k row 64 columns a
// box, the next box LBO on); a k16 step moves A's start 32 bytes and B's 16 rows. The group of
// k-tile kt is left in flight while kt + 1 is issued; once wait_group 1 says kt - 1's group is
// done, its stage goes back to the producer.
template <typename T, typename Cfg>
__device__ __forceinline__ void consume(float (&acc)[Cfg::BN / 2], const T* as, const T* bs, int K, int group,
                                        uint64_t* full, uint64_t* empty) {
  constexpr uint32_t kBoxBytes = Cfg::BK * Cfg::kBoxCols * 2;
  const int ktiles = (K + Cfg::BK - 1) / Cfg::BK;
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt % Cfg::STAGES, use = kt / Cfg::STAGES;
    mbarrier_wait_parity(&full[s], static_cast<unsigned>(use & 1));
    const T* a_s = as + s * Cfg::kATile + group * 64 * Cfg::BK;
    const T* b_s = bs + s * Cfg::kBTile;
    wgmma_fence_operand(acc);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < Cfg::BK; kk += 16) {
      const uint64_t da = wgmma_desc(a_s + kk, 128, 16, 8 * 128);
      const uint64_t db = wgmma_desc(b_s + kk * Cfg::kBoxCols, 128, kBoxBytes, 8 * 128);
      wgmma_m64k16<Cfg::BN, T, false, true>(acc, da, db, true);
    }
    wgmma_commit();
    wgmma_wait<1>();
    wgmma_fence_operand(acc);
    if (kt > 0) mbarrier_arrive(&empty[(kt - 1) % Cfg::STAGES]);
  }
  wgmma_wait<0>();
  wgmma_fence_operand(acc);
}

template <typename T, typename Cfg, bool TMA>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    matmul_wgmma_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                        const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c, int M, int N, int K) {
  // a: (M, K), b: (K, N), c: (M, N), row-major.
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL) && !defined(PYKERN_CUDA_SIM)
  __trap();  // wgmma exists on sm_90a only; the launcher checks the device before launching
#else
  PYKERN_EXTERN_SHARED(1024, unsigned char, smem);  // the 128B swizzle's pattern repeats every 1024 bytes
  T* as = reinterpret_cast<T*>(smem);  // a: [stage] (BM rows of M, BK of K), 128B-swizzled rows
  T* bs = as + Cfg::STAGES * Cfg::kATile;  // b: [stage][box] (BK rows of K, 64 of N), 128B-swizzled rows
  PYKERN_SHARED(__align__(8) uint64_t, full, [Cfg::STAGES]);   // the stage's tiles have landed
  PYKERN_SHARED(__align__(8) uint64_t, empty, [Cfg::STAGES]);  // the consumers are done with it
  const Tile t = tile_of_block<Cfg::BM, Cfg::BN, kGroupM>(M, N);
  const int warp = threadIdx.x / 32;
  if (threadIdx.x == 0) {
    for (int s = 0; s < Cfg::STAGES; ++s) {
      mbarrier_init(&full[s], TMA ? 1 : 32);
      mbarrier_init(&empty[s], 128 * Cfg::kConsumers);
    }
    fence_mbarrier_init();
  }
  __syncthreads();  // the barriers are initialized before anyone touches them
  if (warp == 4 * Cfg::kConsumers) {
    produce<T, Cfg, TMA>(&map_a, &map_b, a, b, M, N, K, t, as, bs, full, empty);
    return;
  }
  const int group = warp / 4, tg = threadIdx.x % 128;
  float acc[Cfg::BN / 2];
#pragma unroll
  for (int i = 0; i < Cfg::BN / 2; ++i) acc[i] = 0.f;
  consume<T, Cfg>(acc, as, bs, K, group, full, empty);
  // Each thread stores its own accumulators, bounds-checked (any M, N; no alignment needed).
#pragma unroll
  for (int i = 0; i < Cfg::BN / 2; ++i) {
    const int row = t.m0 + group * 64 + wgmma_acc_row(tg, i), col = t.n0 + wgmma_acc_col(tg, i);
    if (row < M && col < N) c[static_cast<int64_t>(row) * N + col] = acc[i];
  }
#endif
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

// A device property, not a shape (RuntimeError, not `supports`): sm_90a code runs on compute
// capability 9.0 only, so Ampere, Ada and Blackwell are all refused.
inline void require_sm90(const char* what) {
  const DeviceInfo d = device_info();
  if (d.cc_major != 9 || d.cc_minor != 0)
    throw std::runtime_error(std::string(what) + " needs compute capability 9.0 (H100/H200): wgmma is built for "
                             "sm_90a, which no other GPU runs; this one is " + std::to_string(d.cc_major) + "." +
                             std::to_string(d.cc_minor));
}

void launch_wgmma(const Call& call) {
  using Cfg = WgmmaTiles;
  const MatmulDims d = call.dims_as<MatmulDims>();
  require_sm90(call.name);
  dispatch_dtype<__half, __nv_bfloat16>(call.dtype, call.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* a = call.input<T>(0);
    const T* b = call.input<T>(1);
    float* c = call.output<float>();
    const unsigned int grid = grid_for(d.M, d.N, Cfg::BM, Cfg::BN);
    // The tensor map's rules: 16-byte aligned base, row strides a multiple of 16 bytes.
    const bool tma = d.K % 8 == 0 && d.N % 8 == 0 && aligned16(a) && aligned16(b);
    CUtensorMap map_a{}, map_b{};  // unused by the fallback
    if (tma) {
      map_a = tensor_map_2d_b16(a, d.M, d.K, Cfg::BM, Cfg::BK, 128, call.name);
      map_b = tensor_map_2d_b16(b, d.K, d.N, Cfg::BK, Cfg::kBoxCols, 128, call.name);
    }
    with_flags([&](auto v) {
      launch_staged<Cfg>(matmul_wgmma_kernel<T, Cfg, decltype(v)::value>, grid, call.stream, call.name, map_a, map_b,
                         a, b, c, int(d.M), int(d.N), int(d.K));
    }, tma);
  });
}

// This family's rung facts: its block tile; BK = 0 since no offset is 32-bit (TMA takes element
// coordinates, the fallback's copies and the epilogue index in 64 bits), so any K and N.
const Rung kWgmmaRung{launch_wgmma, {WgmmaTiles::BM, WgmmaTiles::BN, 0, 0, 0}};

}  // namespace matmul
}  // namespace pykern
