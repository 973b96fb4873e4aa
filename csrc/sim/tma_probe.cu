// Kernels around the mbarrier and TMA wrappers, with planted bugs (see tma_probe.h).
#include <stdexcept>

#include "launch.cuh"
#include "pykern.h"
#include "tma.cuh"
#include "tma_probe.h"

namespace tma_probe {
namespace {

enum Bug { kNone, kMissingWait, kReadUnswizzled, kExpectTxOver, kNoExpectTx, kWrongParity };

Bug bug_of(const std::string& bug) {
  if (bug == "none") return kNone;
  if (bug == "missing_wait") return kMissingWait;
  if (bug == "read_unswizzled") return kReadUnswizzled;
  if (bug == "expect_tx_over") return kExpectTxOver;
  if (bug == "no_expect_tx") return kNoExpectTx;
  if (bug == "wrong_parity") return kWrongParity;
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
  if (r != CUDA_SUCCESS) throw std::domain_error(::pykern_sim::tensor_map_error());  // ValueError
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
  for (size_t off = 0; off < bytes; off += 16) at.push_back(::pykern_sim::tma::swizzle(span, off) / 16);
  return at;
}

}  // namespace tma_probe
