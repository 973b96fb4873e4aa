// Kernels around the wgmma wrappers, with planted bugs (see wgmma_probe.h). Built into
// pykern._cuda_sim only; it also compiles under nvcc for sm_90a (nvcc -arch=sm_90a -std=c++17
// -I kernels -I csrc -c csrc/sim/wgmma_probe.cu), which checks the wrappers' PTX in these kernels.
#include <cmath>
#include <stdexcept>
#include <string>

#include "launch.cuh"
#include "pykern.h"
#include "tma.cuh"
#include "wgmma.cuh"
#include "wgmma_probe.h"

namespace wgmma_probe {
namespace {

enum Bug { kNone, kMissingWait, kSwizzleMismatch, kWrongSbo, kWrongLbo, kWaitShort, kEarlyRelease };

Bug bug_of(const std::string& bug) {
  if (bug == "none") return kNone;
  if (bug == "missing_wait") return kMissingWait;
  if (bug == "swizzle_mismatch") return kSwizzleMismatch;
  if (bug == "wrong_sbo") return kWrongSbo;
  if (bug == "wrong_lbo") return kWrongLbo;
  if (bug == "wait_short") return kWaitShort;
  if (bug == "early_release") return kEarlyRelease;
  throw std::invalid_argument("unknown planted bug '" + bug + "'");
}

// How one operand lies in shared memory: the stored matrix is (outer, inner) row-major, inner the
// contiguous dimension (K when K-major, M or N when MN-major), loaded in TMA boxes of (outer
// rows, e inner elements), e one swizzle row (span / 2 elements; 8, i.e. 16 bytes, without a
// swizzle), box b at b * box_bytes.
struct Operand {
  int span, e, box_bytes;
  bool mn_major;
};

__host__ __device__ __forceinline__ Operand operand_of(int span, int outer, bool mn_major) {
  const int row = span ? span : 16;  // bytes per box row
  return {span, row / 2, outer * row, mn_major};
}

// The descriptor of the operand's (64 of M or N, 16 of K) tile at k-step k0, by the layouts of
// kernels/wgmma.cuh: boxes one swizzle row wide are the canonical layouts themselves.
__device__ __forceinline__ uint64_t desc_of(const Operand& o, const unsigned char* base, int k0, int bug) {
  const int row = o.span ? o.span : 16;
  const unsigned char* start;
  uint32_t lbo, sbo;
  if (!o.mn_major) {
    start = base + (k0 / o.e) * o.box_bytes + (k0 % o.e) * 2;
    sbo = 8 * row;                         // the next 8 rows of M or N
    lbo = o.span ? 16 : o.box_bytes;       // swizzled: unused; else the next 8 k, the next box
  } else {
    start = base + k0 * row;
    if (o.span) sbo = 8 * o.span, lbo = o.box_bytes;  // the next 8 k rows; the next e columns: the next box
    else lbo = 128, sbo = o.box_bytes;                // the next core matrix along K; along M or N
  }
  if (bug == kWrongSbo) sbo /= 2;
  if (bug == kWrongLbo) lbo /= 2;
  const int span = bug == kSwizzleMismatch ? (o.span == 128 ? 64 : 128) : o.span;
  return pykern::wgmma_desc(start, span, lbo, sbo);
}

// Loads an operand's boxes (inner columns 0 .., rows outer0 ..) into base, completing on bar.
__device__ __forceinline__ void load_operand(const Operand& o, const CUtensorMap* map, int inner, int outer0,
                                             unsigned char* base, uint64_t* bar) {
  for (int b = 0; b * o.e < inner; ++b) pykern::tma_load_2d(base + b * o.box_bytes, map, b * o.e, outer0, bar);
}

// Thread t's accumulators into c (rows, cols) at (r0, c0), inside the matrix only.
__device__ __forceinline__ void store_acc(const float (&acc)[32], float* c, int rows, int cols, int r0, int c0) {
  const int t = threadIdx.x % 128;
  for (int i = 0; i < 32; ++i) {
    const int r = r0 + pykern::wgmma_acc_row(t, i), col = c0 + pykern::wgmma_acc_col(t, i);
    if (r < rows && col < cols) c[r * cols + col] = acc[i];
  }
}

// One warpgroup: c (64, 64) = A (64, K) @ B (K, 64), K / 16 mma_asyncs chained on one set of
// accumulators, a commit group each, then wait_group 0. The accumulators start as `init` (NaN):
// the first mma_async's scale-d 0 must ignore them.
template <typename T, bool TA, bool TB>
__global__ void tile_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                            float* c, int K, int span, int bug, float init) {
  PYKERN_EXTERN_SHARED(1024, unsigned char, smem);  // A's boxes, then B's
  PYKERN_SHARED(__align__(8) uint64_t, bar, [1]);
  const Operand oa = operand_of(span, TA ? K : 64, TA), ob = operand_of(span, TB ? K : 64, TB);
  const int inner_a = TA ? 64 : K, inner_b = TB ? 64 : K;
  unsigned char* as = smem;
  unsigned char* bs = smem + (inner_a / oa.e) * oa.box_bytes;
  if (threadIdx.x == 0) {
    pykern::mbarrier_init(bar, 1);
    pykern::fence_mbarrier_init();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    pykern::mbarrier_arrive_expect_tx(bar, (inner_a / oa.e) * oa.box_bytes + (inner_b / ob.e) * ob.box_bytes);
    load_operand(oa, &map_a, inner_a, 0, as, bar);
    load_operand(ob, &map_b, inner_b, 0, bs, bar);
  }
  pykern::mbarrier_wait_parity(bar, 0);
  float acc[32];
  for (float& v : acc) v = init;
  pykern::wgmma_fence_operand(acc);
  pykern::wgmma_fence();
  for (int k0 = 0; k0 < K; k0 += 16) {
    // The planted descriptor bugs: the swizzle and SBO in A's, the LBO in B's.
    pykern::wgmma_m64k16<64, T, TA, TB>(acc, desc_of(oa, as, k0, bug == kWrongLbo ? kNone : bug),
                                        desc_of(ob, bs, k0, bug == kWrongLbo ? bug : kNone), k0 > 0);
    pykern::wgmma_commit();
  }
  if (bug == kMissingWait) store_acc(acc, c, 64, 64, 0, 0);  // read while in flight
  pykern::wgmma_wait<0>();
  pykern::wgmma_fence_operand(acc);
  if (bug != kMissingWait) store_acc(acc, c, 64, 64, 0, 0);
}

// A 2-stage TMA -> wgmma pipeline, warp-specialized: c (M, N) fp32 = a (M, K) @ b (K, N), fp16
// in, one 64 x 64 tile of c per block over k-tiles of 64. Warp 4's lane 0 produces: per k-tile,
// once the consumers have released the stage (empty[s]), it announces the stage's bytes on
// full[s] and issues the a box (K-major) and the b box (MN-major), both 128B-swizzled. Warps
// 0-3, one warpgroup, consume: wait full[s], four chained mma_asyncs (k16 steps), commit, wait
// for the group, release the stage on empty[s]. Stage s serves k-tiles s, s + 2, ...; its u-th use
// is phase u of both barriers. bug "missing_wait": no wait_group at all; "wait_short":
// wait_group 1, which leaves this k-tile's group in flight while its stage is released;
// "early_release": the empty arrival before the wait_group.
constexpr int kPipeBM = 64, kPipeBN = 64, kPipeBK = 64, kPipeStages = 2, kPipeConsumers = 128;
constexpr int kPipeATile = kPipeBM * kPipeBK, kPipeBTile = kPipeBK * kPipeBN;  // elements per stage
constexpr unsigned kPipeStageBytes = (kPipeATile + kPipeBTile) * 2;
static_assert(kPipeBK * 2 == 128 && kPipeBN * 2 == 128, "a and b boxes are one 128B swizzle row wide");
constexpr size_t kPipeSmem = size_t(kPipeStages) * kPipeStageBytes;

__global__ void pipeline_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                                float* c, int M, int N, int K, int bug) {
  PYKERN_EXTERN_SHARED(1024, unsigned char, smem);
  unsigned char* as = smem;                          // a: [stage] (64 rows of M, 64 of K), 128B-swizzled
  unsigned char* bs = smem + kPipeStages * kPipeATile * 2;  // b: [stage] (64 rows of K, 64 of N), 128B-swizzled
  PYKERN_SHARED(__align__(8) uint64_t, full, [kPipeStages]);   // the stage's boxes have landed
  PYKERN_SHARED(__align__(8) uint64_t, empty, [kPipeStages]);  // the consumers are done with it
  const int m0 = blockIdx.y * kPipeBM, n0 = blockIdx.x * kPipeBN;
  const int ktiles = (K + kPipeBK - 1) / kPipeBK;
  const Operand oa = operand_of(128, kPipeBM, false), ob = operand_of(128, kPipeBK, true);
  if (threadIdx.x == 0) {
    for (int s = 0; s < kPipeStages; ++s) {
      pykern::mbarrier_init(&full[s], 1);
      pykern::mbarrier_init(&empty[s], kPipeConsumers);
    }
    pykern::fence_mbarrier_init();
  }
  __syncthreads();
  if (threadIdx.x >= kPipeConsumers) {
    if (threadIdx.x != kPipeConsumers) return;
    for (int kt = 0; kt < ktiles; ++kt) {
      const int s = kt % kPipeStages, use = kt / kPipeStages;
      if (use > 0) pykern::mbarrier_wait_parity(&empty[s], static_cast<unsigned>((use - 1) & 1));
      pykern::mbarrier_arrive_expect_tx(&full[s], kPipeStageBytes);  // K's edge: the zero fill counts too
      pykern::tma_load_2d(as + s * kPipeATile * 2, &map_a, kt * kPipeBK, m0, &full[s]);
      pykern::tma_load_2d(bs + s * kPipeBTile * 2, &map_b, n0, kt * kPipeBK, &full[s]);
    }
    return;
  }
  float acc[32];
  for (float& v : acc) v = 0.f;
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt % kPipeStages, use = kt / kPipeStages;
    pykern::mbarrier_wait_parity(&full[s], static_cast<unsigned>(use & 1));
    const unsigned char* a_s = as + s * kPipeATile * 2;
    const unsigned char* b_s = bs + s * kPipeBTile * 2;
    pykern::wgmma_fence_operand(acc);
    pykern::wgmma_fence();
    for (int kk = 0; kk < kPipeBK; kk += 16)
      pykern::wgmma_m64k16<64, __half, false, true>(acc, desc_of(oa, a_s, kk, kNone), desc_of(ob, b_s, kk, kNone),
                                                     true);
    pykern::wgmma_commit();
    if (bug == kEarlyRelease) pykern::mbarrier_arrive(&empty[s]);
    if (bug == kWaitShort) pykern::wgmma_wait<1>();
    else if (bug != kMissingWait) pykern::wgmma_wait<0>();
    pykern::wgmma_fence_operand(acc);
    if (bug != kEarlyRelease) pykern::mbarrier_arrive(&empty[s]);  // this thread's wgmma reads of stage s are done
  }
  if (bug == kWaitShort) pykern::wgmma_wait<0>();  // the last group, before the epilogue
  pykern::wgmma_fence_operand(acc);
  store_acc(acc, c, M, N, m0, n0);
}

// Misuse, each a launch the simulator must refuse.
enum Misuse { kPartialWarpgroup, kDivergentDescriptors, kStaticShared, kWrittenInFlight, kExitedGroup };

__global__ void misuse_kernel(int what, float* out) {
  PYKERN_EXTERN_SHARED(1024, unsigned char, smem);  // 16 KiB: room for any 64 x 16 tile
  PYKERN_SHARED(__align__(1024) unsigned char, fixed, [2048]);
  if (what == kExitedGroup && threadIdx.x >= 96) return;  // warp 3 leaves its warpgroup
  const unsigned char* a = what == kDivergentDescriptors && threadIdx.x == 5 ? smem + 1024 : smem;
  const uint64_t da = pykern::wgmma_desc(what == kStaticShared ? fixed : a, 128, 16, 1024);
  const uint64_t db = pykern::wgmma_desc(smem + 8192, 128, 16, 1024);
  float acc[32];
  for (float& v : acc) v = 0.f;
  pykern::wgmma_fence();
  pykern::wgmma_m64k16<64, __half, false, false>(acc, da, db, false);
  pykern::wgmma_commit();
  if (what == kWrittenInFlight) acc[3] = 1.f;
  pykern::wgmma_wait<0>();
  out[threadIdx.x % 64] = acc[0];
}

CUtensorMap encode(const void* src, int H, int W, int box_h, int box_w, int span) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(W), static_cast<cuuint64_t>(H)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(W) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_w), static_cast<cuuint32_t>(box_h)};
  const cuuint32_t ones[2] = {1, 1};
  const CUtensorMapSwizzle sw = span == 128  ? CU_TENSOR_MAP_SWIZZLE_128B
                                : span == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
                                : span == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                                             : CU_TENSOR_MAP_SWIZZLE_NONE;
  const CUresult r = cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, const_cast<void*>(src), dims,
                                            strides, box, ones, CU_TENSOR_MAP_INTERLEAVE_NONE, sw,
                                            CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw std::domain_error("cuTensorMapEncodeTiled failed: CUresult " + std::to_string(r));
  return map;
}

template <typename T>
void launch_tile(bool ta, bool tb, const CUtensorMap& ma, const CUtensorMap& mb, float* c, int K, int span, int bug,
                 size_t smem) {
  const float nan = std::nanf("");
  if (!ta && !tb) PYKERN_LAUNCH(1, 128, smem, 0, tile_kernel<T, false, false>)(ma, mb, c, K, span, bug, nan);
  else if (!ta) PYKERN_LAUNCH(1, 128, smem, 0, tile_kernel<T, false, true>)(ma, mb, c, K, span, bug, nan);
  else if (!tb) PYKERN_LAUNCH(1, 128, smem, 0, tile_kernel<T, true, false>)(ma, mb, c, K, span, bug, nan);
  else PYKERN_LAUNCH(1, 128, smem, 0, tile_kernel<T, true, true>)(ma, mb, c, K, span, bug, nan);
}

}  // namespace

void tile(const std::string& dtype, const std::string& bug, const void* a, const void* b, void* c, int K, int span,
          bool trans_a, bool trans_b) {
  if (K % 16 != 0 || K < 16 || K > 256) throw std::invalid_argument("tile: K must be a multiple of 16 in [16, 256]");
  if (span != 0 && span != 32 && span != 64 && span != 128) throw std::invalid_argument("span must be 0, 32, 64 or 128");
  const Operand oa = operand_of(span, trans_a ? K : 64, trans_a), ob = operand_of(span, trans_b ? K : 64, trans_b);
  // The stored matrices: (outer, inner), inner = K for a K-major operand, 64 for an MN-major one.
  const CUtensorMap ma = trans_a ? encode(a, K, 64, K, oa.e, span) : encode(a, 64, K, 64, oa.e, span);
  const CUtensorMap mb = trans_b ? encode(b, K, 64, K, ob.e, span) : encode(b, 64, K, 64, ob.e, span);
  const size_t smem = size_t(2) * 64 * K * 2;
  const int code = static_cast<int>(bug_of(bug));
  float* cf = static_cast<float*>(c);
  if (dtype == "f16") launch_tile<__half>(trans_a, trans_b, ma, mb, cf, K, span, code, smem);
  else if (dtype == "bf16") launch_tile<__nv_bfloat16>(trans_a, trans_b, ma, mb, cf, K, span, code, smem);
  else throw std::invalid_argument("dtype must be 'f16' or 'bf16'");
  pykern::check_launch(("wgmma_probe tile (" + bug + ")").c_str());
}

void pipeline(const std::string& bug, const void* a, const void* b, void* c, int M, int N, int K) {
  if (K % 8 || N % 8) throw std::domain_error("pipeline: K and N must be multiples of 8 (16-byte row strides)");
  const CUtensorMap map_a = encode(a, M, K, kPipeBM, kPipeBK, 128);
  const CUtensorMap map_b = encode(b, K, N, kPipeBK, kPipeBN, 128);
  const dim3 grid((N + kPipeBN - 1) / kPipeBN, (M + kPipeBM - 1) / kPipeBM);
  PYKERN_LAUNCH(grid, kPipeConsumers + 32, kPipeSmem, 0, pipeline_kernel)(
      map_a, map_b, static_cast<float*>(c), M, N, K, static_cast<int>(bug_of(bug)));
  pykern::check_launch(("wgmma_probe pipeline (" + bug + ")").c_str());
}

void misuse(const std::string& what, void* out) {
  const int code = what == "partial_warpgroup" ? kPartialWarpgroup : what == "divergent_descriptors" ? kDivergentDescriptors
                   : what == "static_shared" ? kStaticShared : what == "written_in_flight" ? kWrittenInFlight
                   : what == "exited_group" ? kExitedGroup : -1;
  if (code < 0) throw std::invalid_argument("unknown misuse '" + what + "'");
  const unsigned threads = code == kPartialWarpgroup ? 96 : 128;
  PYKERN_LAUNCH(1, threads, 16384, 0, misuse_kernel)(code, static_cast<float*>(out));
  pykern::check_launch(("wgmma_probe misuse " + what).c_str());
}

std::vector<std::vector<std::pair<int, int>>> acc_layout(int n) {
  if (n < 8 || n > 256 || n % 8) throw std::invalid_argument("N must be a multiple of 8 in [8, 256]");
  std::vector<std::vector<std::pair<int, int>>> threads(128);
#if defined(PYKERN_CUDA_SIM)
  for (unsigned t = 0; t < 128; ++t)
    for (int i = 0; i < n / 2; ++i) {
      const auto p = ::pykern_sim::wgmma::acc_position(t, i);
      threads[t].emplace_back(p.row, p.col);
    }
#endif
  return threads;
}

std::vector<std::pair<uint32_t, uint32_t>> descriptor_addresses(uint64_t desc, bool mn_major) {
  std::vector<std::pair<uint32_t, uint32_t>> at;
#if defined(PYKERN_CUDA_SIM)
  namespace wg = ::pykern_sim::wgmma;
  const wg::Desc d = wg::decode(desc);
  for (int mn = 0; mn < 64; ++mn)
    for (int k = 0; k < 16; ++k) at.emplace_back(wg::element_offset(d, mn_major, mn, k), wg::element_address(d, mn_major, mn, k));
#else
  throw std::logic_error("descriptor_addresses asks the simulator");
#endif
  return at;
}

}  // namespace wgmma_probe
