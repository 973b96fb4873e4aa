// Kernels around the mbarrier and TMA wrappers, with planted bugs (see tma_probe.h). Built into
// pykern._cuda_sim only; it also compiles under nvcc for sm_90a (nvcc -arch=sm_90a -std=c++17
// -I kernels -c csrc/sim/tma_probe.cu), which checks the wrappers' PTX in these kernels.
#include <stdexcept>
#include <string>

#include "launch.cuh"
#include "pykern.h"
#include "tma.cuh"
#include "tma_probe.h"

namespace tma_probe {
namespace {

enum Bug { kNone, kMissingWait, kReadUnswizzled, kExpectTxOver, kNoExpectTx, kWrongParity, kStageParity, kNoEmptyWait };

Bug bug_of(const std::string& bug) {
  if (bug == "none") return kNone;
  if (bug == "missing_wait") return kMissingWait;
  if (bug == "read_unswizzled") return kReadUnswizzled;
  if (bug == "expect_tx_over") return kExpectTxOver;
  if (bug == "no_expect_tx") return kNoExpectTx;
  if (bug == "wrong_parity") return kWrongParity;
  if (bug == "stage_parity") return kStageParity;
  if (bug == "no_empty_wait") return kNoEmptyWait;
  throw std::invalid_argument("unknown planted bug '" + bug + "'");
}

// One box per block; thread 0 inits the barrier and issues the copy, every thread waits.
__global__ void tile_kernel(const __grid_constant__ CUtensorMap map, int H, int W, int box_h, int box_w, int eb,
                            int span, bool raw, int bug, unsigned char* out) {
  PYKERN_EXTERN_SHARED(1024, unsigned char, box);  // (box_h, box_w) elements, as the TMA lays them
  PYKERN_SHARED(__align__(8) uint64_t, bar, [1]);
  const unsigned bytes = static_cast<unsigned>(box_h * box_w * eb);
  const int x0 = blockIdx.x * box_w, y0 = blockIdx.y * box_h;
  if (threadIdx.x == 0) {
    pykern::mbarrier_init(bar, 1);
    pykern::fence_mbarrier_init();
  }
  __syncthreads();  // the barrier is initialized before anyone waits on it
  if (threadIdx.x == 0) {
    if (bug == kNoExpectTx) pykern::mbarrier_arrive(bar);
    else pykern::mbarrier_arrive_expect_tx(bar, bug == kExpectTxOver ? bytes + 16 : bytes);
    pykern::tma_load_2d(box, &map, x0, y0, bar);
  }
  if (bug != kMissingWait) pykern::mbarrier_wait_parity(bar, 0);
  if (raw) {
    unsigned char* o = out + static_cast<size_t>(blockIdx.y * gridDim.x + blockIdx.x) * bytes;
    for (unsigned i = threadIdx.x; i < bytes; i += blockDim.x) o[i] = box[i];
    return;
  }
  float* o = reinterpret_cast<float*>(out);
  for (int e = threadIdx.x; e < box_h * box_w; e += blockDim.x) {
    const int y = y0 + e / box_w, x = x0 + e % box_w;
    const uint32_t off = static_cast<uint32_t>(e) * 4;
    const uint32_t at = bug == kReadUnswizzled ? off : pykern::tma_swizzle(off, span);
    if (y < H && x < W) o[y * W + x] = *reinterpret_cast<const float*>(box + at);
  }
}

// The boxes down the rows of one column, through one buffer and one barrier: phase k of the
// barrier covers box k, so its waiters use parity k & 1.
__global__ void stream_kernel(const __grid_constant__ CUtensorMap map, int H, int W, int box_h, int box_w, int span,
                              int bug, float* out) {
  PYKERN_EXTERN_SHARED(1024, unsigned char, box);
  PYKERN_SHARED(__align__(8) uint64_t, bar, [1]);
  const unsigned bytes = static_cast<unsigned>(box_h * box_w) * 4;
  if (threadIdx.x == 0) {
    pykern::mbarrier_init(bar, 1);
    pykern::fence_mbarrier_init();
  }
  __syncthreads();
  const int tiles = (H + box_h - 1) / box_h;
  for (int k = 0; k < tiles; ++k) {
    if (threadIdx.x == 0) {
      pykern::mbarrier_arrive_expect_tx(bar, bytes);
      pykern::tma_load_2d(box, &map, 0, k * box_h, bar);
    }
    pykern::mbarrier_wait_parity(bar, bug == kWrongParity ? 0u : static_cast<unsigned>(k & 1));
    for (int e = threadIdx.x; e < box_h * box_w; e += blockDim.x) {
      const int y = k * box_h + e / box_w, x = e % box_w;
      const uint32_t at = pykern::tma_swizzle(static_cast<uint32_t>(e) * 4, span);
      if (y < H && x < W) out[y * W + x] = *reinterpret_cast<const float*>(box + at);
    }
    __syncthreads();  // everyone has read box k before the copy of box k + 1 overwrites it
  }
}

// Arrivals only: phase k completes when all blockDim.x threads have arrived in it.
__global__ void arrivals_kernel(int iters, int bug, float* out) {
  PYKERN_SHARED(float, vals, [2][64]);  // phase k's values in vals[k % 2]
  PYKERN_SHARED(__align__(8) uint64_t, bar, [1]);
  const int t = threadIdx.x, n = blockDim.x;
  if (t == 0) {
    pykern::mbarrier_init(bar, static_cast<unsigned>(n));
    pykern::fence_mbarrier_init();
  }
  __syncthreads();
  for (int k = 0; k < iters; ++k) {
    // Phase k + 2 rewrites vals[k % 2]: safe, since phase k + 1 cannot complete before every
    // thread has arrived in it, after its read of phase k.
    vals[k % 2][t] = static_cast<float>(k * 1000 + t);
    const uint64_t state = pykern::mbarrier_arrive(bar);
    if (bug == kWrongParity) pykern::mbarrier_wait_parity(bar, 0);
    else if (k % 2 == 0) pykern::mbarrier_wait_parity(bar, static_cast<unsigned>(k & 1));
    else while (!pykern::mbarrier_try_wait(bar, state)) {}
    out[k * n + t] = vals[k % 2][(t + 1) % n];
  }
}

// The ISA's phase rules step by step; each out[i] is a test_wait (or try_wait) result.
__global__ void semantics_kernel(int* out) {
  PYKERN_SHARED(__align__(8) uint64_t, bar, [1]);
  pykern::mbarrier_init(bar, 2);                       // phase 0: 2 arrivals pending, tx-count 0
  out[0] = pykern::mbarrier_test_wait_parity(bar, 0);  // 0: phase 0 is the current one
  out[1] = pykern::mbarrier_test_wait_parity(bar, 1);  // 1: parity 1 names the phase before it
  const uint64_t s0 = pykern::mbarrier_arrive(bar);   // 1 arrival pending
  out[2] = pykern::mbarrier_test_wait_parity(bar, 0);  // 0
  pykern::mbarrier_expect_tx(bar, 32);                 // tx-count 32
  pykern::mbarrier_arrive(bar);                        // no arrival pending, 32 bytes
  out[3] = pykern::mbarrier_test_wait_parity(bar, 0);  // 0: the tx-count holds the phase open
  pykern::mbarrier_complete_tx(bar, 16);
  out[4] = pykern::mbarrier_test_wait_parity(bar, 0);  // 0: 16 bytes to go
  pykern::mbarrier_complete_tx(bar, 16);               // phase 0 completes; phase 1 begins
  out[5] = pykern::mbarrier_test_wait_parity(bar, 0);  // 1
  out[6] = pykern::mbarrier_test_wait_parity(bar, 1);  // 0: phase 1 is current
  out[7] = pykern::mbarrier_test_wait(bar, s0);        // 1: s0's phase (0) has completed
  pykern::mbarrier_complete_tx(bar, 8);                // tx-count -8: bytes before their expect_tx
  const uint64_t s1 = pykern::mbarrier_arrive_expect_tx(bar, 8);  // tx-count 0, 1 arrival pending
  out[8] = pykern::mbarrier_test_wait_parity(bar, 1);  // 0
  out[9] = pykern::mbarrier_test_wait(bar, s1);        // 0: s1's phase (1) is still open
  pykern::mbarrier_arrive(bar);                        // phase 1 completes
  out[10] = pykern::mbarrier_test_wait_parity(bar, 1);  // 1
  out[11] = pykern::mbarrier_try_wait_parity(bar, 1);   // 1
  out[12] = pykern::mbarrier_test_wait(bar, s1);        // 1
}

// A 2-stage TMA -> mma.sync pipeline, warp-specialized: c (M, N) fp32 = a (M, K) @ b (K, N), fp16
// in, one 64 x 64 tile of c per block over k-tiles of 64. Warp 4's lane 0 produces: per k-tile,
// once the consumers have released the stage (empty[s]), it announces the stage's bytes on
// full[s] and issues the a and b boxes. Warps 0-3 consume: each waits full[s], computes 16 rows x
// 64 columns of c through ldmatrix (reading the TMA's 128-byte swizzle) and mma.sync m16n8k16,
// and arrives on empty[s]. Stage s serves k-tiles s, s + 2, ...: the u-th use of a stage is phase
// u of both its barriers, so full[s] is waited with parity u & 1 and empty[s], before use u, with
// (u - 1) & 1. bug "stage_parity": consumers wait with kt & 1 (the k-tile's parity, not the
// use's); "no_empty_wait": the producer refills a stage without waiting for its release.
constexpr int kPipeBM = 64, kPipeBN = 64, kPipeBK = 64, kPipeStages = 2, kPipeConsumers = 128;
constexpr int kPipeATile = kPipeBM * kPipeBK, kPipeBTile = kPipeBK * kPipeBN;  // elements per stage
constexpr unsigned kPipeStageBytes = (kPipeATile + kPipeBTile) * 2;
static_assert(kPipeBK * 2 == 128 && kPipeBN * 2 == 128,
              "a and b boxes are 128 bytes wide: the 128B swizzle's span, which spreads ldmatrix rows over all banks");
constexpr size_t kPipeSmem = size_t(kPipeStages) * kPipeStageBytes;

// Element (r, c) of a (rows, 64) fp16 box the TMA wrote with the 128B swizzle.
__device__ __forceinline__ int pipe_at(int r, int c) {
  return static_cast<int>(pykern::tma_swizzle(static_cast<uint32_t>(r * 64 + c) * 2, 128) / 2);
}

__global__ void pipeline_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                                float* c, int M, int N, int K, int bug) {
  PYKERN_EXTERN_SHARED(1024, unsigned char, smem);
  __half* as = reinterpret_cast<__half*>(smem);  // a: [stage] (64 rows of M, 64 of K), swizzled
  __half* bs = as + kPipeStages * kPipeATile;    // b: [stage] (64 rows of K, 64 of N), swizzled
  PYKERN_SHARED(__align__(8) uint64_t, full, [kPipeStages]);   // the stage's boxes have landed
  PYKERN_SHARED(__align__(8) uint64_t, empty, [kPipeStages]);  // the consumers are done with it
  const int m0 = blockIdx.y * kPipeBM, n0 = blockIdx.x * kPipeBN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int ktiles = (K + kPipeBK - 1) / kPipeBK;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kPipeStages; ++s) {
      pykern::mbarrier_init(&full[s], 1);
      pykern::mbarrier_init(&empty[s], kPipeConsumers);
    }
    pykern::fence_mbarrier_init();
  }
  __syncthreads();  // the barriers are initialized before anyone touches them
  if (warp == kPipeConsumers / 32) {
    if (lane != 0) return;
    for (int kt = 0; kt < ktiles; ++kt) {
      const int s = kt % kPipeStages, use = kt / kPipeStages;
      if (use > 0 && bug != kNoEmptyWait) pykern::mbarrier_wait_parity(&empty[s], static_cast<unsigned>((use - 1) & 1));
      pykern::mbarrier_arrive_expect_tx(&full[s], kPipeStageBytes);  // K's edge: the zero fill counts too
      pykern::tma_load_2d(as + s * kPipeATile, &map_a, kt * kPipeBK, m0, &full[s]);
      pykern::tma_load_2d(bs + s * kPipeBTile, &map_b, n0, kt * kPipeBK, &full[s]);
    }
    return;
  }
  float acc[8][4];
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 4; ++e) acc[j][e] = 0.f;
  // ldmatrix.x4 row addresses as in kernels/matmul/mma_sync.cu: lane l names row l % 16 of a
  // 16 x 16 block, in its left (l < 16) or right 8 columns.
  const int frag_row = lane % 16, frag_col = (lane / 16) * 8;
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt % kPipeStages, use = kt / kPipeStages;
    pykern::mbarrier_wait_parity(&full[s], static_cast<unsigned>(bug == kStageParity ? kt & 1 : use & 1));
    const __half* a_s = as + s * kPipeATile;
    const __half* b_s = bs + s * kPipeBTile;
    for (int kk = 0; kk < kPipeBK; kk += 16) {
      uint32_t af[4], bf[8][2];
      pykern::ldmatrix<4, false>(af, a_s + pipe_at(warp * 16 + frag_row, kk + frag_col));
      for (int j = 0; j < 8; j += 2) {
        uint32_t r[4];
        pykern::ldmatrix<4, true>(r, b_s + pipe_at(kk + frag_row, j * 8 + frag_col));
        bf[j][0] = r[0], bf[j][1] = r[1], bf[j + 1][0] = r[2], bf[j + 1][1] = r[3];
      }
      for (int j = 0; j < 8; ++j) pykern::mma_m16n8k16<__half>(acc[j], af, bf[j], acc[j]);
    }
    pykern::mbarrier_arrive(&empty[s]);  // this thread's reads of stage s are done
  }
  const int group = lane >> 2, tig = lane % 4;
  for (int j = 0; j < 8; ++j) {
    for (int e = 0; e < 4; ++e) {
      const int row = m0 + warp * 16 + group + (e >= 2 ? 8 : 0), col = n0 + j * 8 + tig * 2 + (e & 1);
      if (row < M && col < N) c[static_cast<int64_t>(row) * N + col] = acc[j][e];
    }
  }
}

__global__ void misuse_kernel(const __grid_constant__ CUtensorMap map, int what, float* out) {
  PYKERN_EXTERN_SHARED(1024, unsigned char, smem);
  PYKERN_SHARED(__align__(8) uint64_t, bar, [1]);
  if (what == 0) {
    pykern::mbarrier_arrive(bar);  // never initialized
  } else if (what == 1) {
    pykern::mbarrier_init(bar, 1);
    pykern::mbarrier_expect_tx(bar, 16);
    pykern::mbarrier_arrive(bar);  // the phase stays open for its 16 bytes...
    pykern::mbarrier_arrive(bar);  // ...and gets a second arrival of a count of 1
  } else if (what == 2) {
    pykern::mbarrier_init(bar, 1);
    pykern::mbarrier_arrive_expect_tx(bar, 8 * 128);
    pykern::tma_load_2d(smem + 128, &map, 0, 0, bar);  // 128-aligned, not 1024
  } else {
    pykern::mbarrier_init(bar, 1);
    pykern::mbarrier_test_wait_parity(bar, 2);
  }
  out[0] = 1.f;
}

CUtensorMapDataType dtype_of(int elem_bytes) {
  switch (elem_bytes) {
    case 1: return CU_TENSOR_MAP_DATA_TYPE_UINT8;
    case 2: return CU_TENSOR_MAP_DATA_TYPE_UINT16;
    case 4: return CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
    case 8: return CU_TENSOR_MAP_DATA_TYPE_FLOAT64;
    default: throw std::invalid_argument("elem_bytes must be 1, 2, 4 or 8");
  }
}

CUtensorMapSwizzle swizzle_of(int span) {
  switch (span) {
    case 0: return CU_TENSOR_MAP_SWIZZLE_NONE;
    case 32: return CU_TENSOR_MAP_SWIZZLE_32B;
    case 64: return CU_TENSOR_MAP_SWIZZLE_64B;
    case 128: return CU_TENSOR_MAP_SWIZZLE_128B;
    default: throw std::invalid_argument("swizzle span must be 0, 32, 64 or 128");
  }
}

// A 2-D map of a row-major (H, W) matrix, as a host would encode one for the GPU.
CUtensorMap encode(const void* src, int H, int W, int elem_bytes, int box_h, int box_w, int span) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(W), static_cast<cuuint64_t>(H)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(W) * elem_bytes};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_w), static_cast<cuuint32_t>(box_h)};
  const cuuint32_t ones[2] = {1, 1};
  const CUresult r = cuTensorMapEncodeTiled(&map, dtype_of(elem_bytes), 2, const_cast<void*>(src), dims, strides, box,
                                            ones, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle_of(span),
                                            CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
#if defined(PYKERN_CUDA_SIM)
  if (r != CUDA_SUCCESS) throw std::domain_error(::pykern_sim::tensor_map_error());  // ValueError
#else
  if (r != CUDA_SUCCESS) throw std::domain_error("cuTensorMapEncodeTiled failed: CUresult " + std::to_string(r));
#endif
  return map;
}

}  // namespace

void tile(const std::string& mode, const std::string& bug, const void* src, int H, int W, int elem_bytes, int box_h,
          int box_w, int span, void* out) {
  if (mode != "raw" && mode != "logical") throw std::invalid_argument("mode must be 'raw' or 'logical'");
  if (mode == "logical" && elem_bytes != 4) throw std::invalid_argument("the logical read is of float32 boxes");
  const CUtensorMap map = encode(src, H, W, elem_bytes, box_h, box_w, span);
  const dim3 grid((W + box_w - 1) / box_w, (H + box_h - 1) / box_h);
  const size_t smem = static_cast<size_t>(box_h) * box_w * elem_bytes;
  PYKERN_LAUNCH(grid, 64, smem, 0, tile_kernel)(map, H, W, box_h, box_w, elem_bytes, span, mode == "raw",
                                                static_cast<int>(bug_of(bug)), static_cast<unsigned char*>(out));
  pykern::check_launch(("tma_probe tile (" + bug + ")").c_str());
}

void stream(const std::string& bug, const void* src, int H, int W, int box_h, int box_w, int span, void* out) {
  if (W > box_w) throw std::invalid_argument("stream loads one column of boxes: W <= box_w");
  const CUtensorMap map = encode(src, H, W, 4, box_h, box_w, span);
  const size_t smem = static_cast<size_t>(box_h) * box_w * 4;
  PYKERN_LAUNCH(1, 64, smem, 0, stream_kernel)(map, H, W, box_h, box_w, span, static_cast<int>(bug_of(bug)),
                                               static_cast<float*>(out));
  pykern::check_launch(("tma_probe stream (" + bug + ")").c_str());
}

void arrivals(const std::string& bug, int iters, void* out) {
  PYKERN_LAUNCH(1, 64, 0, 0, arrivals_kernel)(iters, static_cast<int>(bug_of(bug)), static_cast<float*>(out));
  pykern::check_launch(("tma_probe arrivals (" + bug + ")").c_str());
}

void semantics(void* out) {
  PYKERN_LAUNCH(1, 1, 0, 0, semantics_kernel)(static_cast<int*>(out));
  pykern::check_launch("tma_probe semantics");
}

void pipeline(const std::string& bug, const void* a, const void* b, void* c, int M, int N, int K) {
  if (K % 8 || N % 8) throw std::domain_error("pipeline: K and N must be multiples of 8 (16-byte row strides)");
  const CUtensorMap map_a = encode(a, M, K, 2, kPipeBM, kPipeBK, 128);
  const CUtensorMap map_b = encode(b, K, N, 2, kPipeBK, kPipeBN, 128);
  const dim3 grid((N + kPipeBN - 1) / kPipeBN, (M + kPipeBM - 1) / kPipeBM);
  PYKERN_LAUNCH(grid, kPipeConsumers + 32, kPipeSmem, 0, pipeline_kernel)(
      map_a, map_b, static_cast<float*>(c), M, N, K, static_cast<int>(bug_of(bug)));
  pykern::check_launch(("tma_probe pipeline (" + bug + ")").c_str());
}

void misuse(const std::string& what, void* out) {
  const int code = what == "uninitialized" ? 0 : what == "too_many_arrivals" ? 1
                   : what == "unaligned_destination" ? 2 : what == "bad_parity" ? 3 : -1;
  if (code < 0) throw std::invalid_argument("unknown misuse '" + what + "'");
  static float src[8 * 32] __attribute__((aligned(16)));  // a 128-byte-wide map for the TMA case
  const CUtensorMap map = encode(src, 8, 32, 4, 8, 32, 128);
  PYKERN_LAUNCH(1, 1, 2048, 0, misuse_kernel)(map, code, static_cast<float*>(out));
  pykern::check_launch(("tma_probe misuse " + what).c_str());
}

std::vector<size_t> swizzle_chunks(int span, size_t bytes) {
  std::vector<size_t> at;
#if defined(PYKERN_CUDA_SIM)
  for (size_t off = 0; off < bytes; off += 16) at.push_back(::pykern_sim::tma::swizzle(span, off) / 16);
#else
  throw std::logic_error("swizzle_chunks asks the simulator");
#endif
  return at;
}

}  // namespace tma_probe
