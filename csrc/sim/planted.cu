// Planted bugs: small kernels in the style of kernels/*.cu, each in a correct and a broken
// instantiation, built only into pykern._cuda_sim (never into the GPU extension). The tests in
// tests/test_cuda_sim.py run both under the simulator and require the broken one to fail.
#include <stdexcept>
#include <string>

#include <mma.h>

#include "launch.cuh"
#include "mma.cuh"
#include "planted.h"
#include "pykern.h"

namespace planted {
namespace {

constexpr int kTile = 16;

// a: (M, K), b: (K, N), c: (M, N); one 16x16 output tile per 16x16 block.
// SYNC = false drops the barrier between staging the tiles and reading them.
// EDGE_BUG runs K / 16 k-tiles instead of ceil(K / 16): the partial tile at the K edge is
// dropped.
template <bool SYNC, bool EDGE_BUG>
__global__ void tiled_kernel(const float* a, const float* b, float* c, int M, int N, int K) {
  PYKERN_SHARED(float, as, [kTile][kTile]);  // a: (16 rows of M, 16 of K)
  PYKERN_SHARED(float, bs, [kTile][kTile]);  // b: (16 of K, 16 columns of N)
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * kTile + ty, col = blockIdx.x * kTile + tx;
  float acc = 0.f;
  for (int k0 = 0; EDGE_BUG ? k0 + kTile <= K : k0 < K; k0 += kTile) {
    const int ak = k0 + tx, bk = k0 + ty;
    as[ty][tx] = row < M && ak < K ? a[row * K + ak] : 0.f;
    bs[ty][tx] = bk < K && col < N ? b[bk * N + col] : 0.f;
    if (SYNC) __syncthreads();
    for (int k = 0; k < kTile; ++k) acc += as[ty][k] * bs[k][tx];
    __syncthreads();
  }
  if (row < M && col < N) c[row * N + col] = acc;
}

// The same tiling fed through a two-stage cp.async ring; WAIT is cp.async.wait_group's count.
// Two stages with one group committed ahead need WAIT = 0; WAIT = 1 computes on a tile whose
// copies have not landed.
template <int WAIT>
__global__ void pipelined_kernel(const float* a, const float* b, float* c, int M, int N, int K) {
  PYKERN_SHARED(float, as, [2][kTile][kTile]);
  PYKERN_SHARED(float, bs, [2][kTile][kTile]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * kTile + ty, col = blockIdx.x * kTile + tx;
  const int ktiles = (K + kTile - 1) / kTile;
  auto issue = [&](int kt) {
    const int s = kt % 2, ak = kt * kTile + tx, bk = kt * kTile + ty;
    const bool a_in = row < M && ak < K, b_in = bk < K && col < N;
    ::pykern_sim::cp_async(&as[s][ty][tx], a_in ? a + row * K + ak : a, 4, a_in);
    ::pykern_sim::cp_async(&bs[s][ty][tx], b_in ? b + bk * N + col : b, 4, b_in);
  };
  issue(0);
  ::pykern_sim::cp_async_commit();
  float acc = 0.f;
  for (int kt = 0; kt < ktiles; ++kt) {
    ::pykern_sim::cp_async_wait(WAIT);
    __syncthreads();
    if (kt + 1 < ktiles) issue(kt + 1);
    ::pykern_sim::cp_async_commit();
    const int s = kt % 2;
    for (int k = 0; k < kTile; ++k) acc += as[s][ty][k] * bs[s][k][tx];
  }
  if (row < M && col < N) c[row * N + col] = acc;
}

// One warp per 16x16 tile of c; a, b float16 with M, N, K multiples of 16. The fragment is
// staged in shared memory and written out by all 32 lanes: without SYNCWARP a lane reads
// elements the other lanes have not stored yet.
template <bool SYNCWARP>
__global__ void wmma_kernel(const __half* a, const __half* b, float* c, int M, int N, int K) {
  namespace wmma = nvcuda::wmma;
  PYKERN_SHARED(__align__(32) float, stage, [kTile * kTile]);  // (16, 16) fp32
  const int m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile, lane = threadIdx.x;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.f);
  for (int k0 = 0; k0 < K; k0 += kTile) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
    wmma::load_matrix_sync(fa, a + m0 * K + k0, K);
    wmma::load_matrix_sync(fb, b + k0 * N + n0, N);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  wmma::store_matrix_sync(stage, acc, kTile, wmma::mem_row_major);
  if (SYNCWARP) __syncwarp();
  for (int e = lane; e < kTile * kTile; e += 32) c[(m0 + e / kTile) * N + n0 + e % kTile] = stage[e];
}

// One warp per 16x8 tile of c through ldmatrix and mma.sync m16n8k16; a, b float16 with M, K
// multiples of 16 and N of 8. FRAG_BUG hands mma.sync a's registers 1 and 2 swapped (a2a3 is
// rows 8-15 of k 0-7, a4a5 rows 0-7 of k 8-15): a wrong fragment index, which only a simulator
// that keeps the real lane and register layout can notice.
template <bool FRAG_BUG>
__global__ void mma_kernel(const __half* a, const __half* b, float* c, int M, int N, int K) {
  PYKERN_SHARED(__align__(16) __half, as, [16 * 16]);  // a: (16 rows of M, 16 of K)
  PYKERN_SHARED(__align__(16) __half, bs, [16 * 8]);   // b: (16 of K, 8 columns of N)
  const int m0 = blockIdx.y * 16, n0 = blockIdx.x * 8, lane = threadIdx.x;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (int k0 = 0; k0 < K; k0 += 16) {
    for (int e = lane; e < 16 * 16; e += 32) as[e] = a[(m0 + e / 16) * K + k0 + e % 16];
    for (int e = lane; e < 16 * 8; e += 32) bs[e] = b[(k0 + e / 8) * N + n0 + e % 8];
    __syncwarp();
    uint32_t af[4], bf[2];
    pykern::ldmatrix<4, false>(af, as + (lane % 16) * 16 + (lane / 16) * 8);
    pykern::ldmatrix<2, true>(bf, bs + (lane % 16) * 8);  // lanes 0-15 name k rows 0-15
    if (FRAG_BUG) {
      const uint32_t t = af[1];
      af[1] = af[2];
      af[2] = t;
    }
    pykern::mma_m16n8k16<__half>(acc, af, bf, acc);
    __syncwarp();  // everyone has read as and bs before the next k-tile overwrites them
  }
  const int group = lane >> 2, tig = lane % 4;
  for (int e = 0; e < 4; ++e) c[(m0 + group + (e >= 2 ? 8 : 0)) * N + n0 + tig * 2 + (e & 1)] = acc[e];
}

template <bool BUG>
__global__ void relu_kernel(const float* x, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (BUG ? i <= n : i < n) y[i] = x[i] < 0.f ? 0.f : x[i];
}

__global__ void touch_kernel(float* c) {
  PYKERN_EXTERN_SHARED(16, float, dyn);  // the launch's dynamic shared memory, if any
  if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0) {
    dyn[0] = 1.f;
    c[0] = dyn[0];
  }
}

__global__ void early_exit_kernel(float* c) {
  PYKERN_SHARED(float, s, [64]);
  if (threadIdx.x == 0) return;  // never reaches the barrier below
  s[threadIdx.x] = 1.f;
  __syncthreads();
  c[0] = s[1];
}

// 40 KiB static: legal alone, over the limit with more than 8 KiB of dynamic shared memory
// unless the kernel opted in.
__global__ void big_static_kernel(float* c) {
  PYKERN_SHARED(float, s, [10 * 1024]);
  s[threadIdx.x] = 1.f;
  __syncthreads();
  if (threadIdx.x == 0) c[0] = s[31];
}

// Writes element n of c and of the dynamic shared memory (both have n elements when probed).
__global__ void past_end_kernel(float* c, int n, bool smem) {
  PYKERN_EXTERN_SHARED(16, float, dyn);
  if (threadIdx.x == 0) {
    if (smem) dyn[n] = 1.f;
    else c[n] = 1.f;
  }
}

const char* const kNames[kCount] = {"missing_syncthreads", "cp_async_wait", "missing_syncwarp", "off_by_one_store",
                                    "off_by_one_tile_edge", "mma_fragment_index"};

}  // namespace

const char* name(int i) { return kNames[i]; }

void run(const std::string& bug, bool broken, const void* a, const void* b, void* c, int M, int N, int K) {
  using pykern::check_launch;
  const dim3 tiles((N + kTile - 1) / kTile, (M + kTile - 1) / kTile), block(kTile, kTile);
  const float* af = static_cast<const float*>(a);
  const float* bf = static_cast<const float*>(b);
  float* cf = static_cast<float*>(c);
  if (bug == "missing_syncthreads" || bug == "off_by_one_tile_edge") {
    const bool edge = bug == "off_by_one_tile_edge";
    if (!broken) PYKERN_LAUNCH(tiles, block, 0, 0, tiled_kernel<true, false>)(af, bf, cf, M, N, K);
    else if (edge) PYKERN_LAUNCH(tiles, block, 0, 0, tiled_kernel<true, true>)(af, bf, cf, M, N, K);
    else PYKERN_LAUNCH(tiles, block, 0, 0, tiled_kernel<false, false>)(af, bf, cf, M, N, K);
  } else if (bug == "cp_async_wait") {
    if (broken) PYKERN_LAUNCH(tiles, block, 0, 0, pipelined_kernel<1>)(af, bf, cf, M, N, K);
    else PYKERN_LAUNCH(tiles, block, 0, 0, pipelined_kernel<0>)(af, bf, cf, M, N, K);
  } else if (bug == "missing_syncwarp") {
    if (M % 16 || N % 16 || K % 16) throw std::domain_error("missing_syncwarp: M, N, K must be multiples of 16");
    const auto* ah = static_cast<const __half*>(a);
    const auto* bh = static_cast<const __half*>(b);
    if (broken) PYKERN_LAUNCH(tiles, 32, 0, 0, wmma_kernel<false>)(ah, bh, cf, M, N, K);
    else PYKERN_LAUNCH(tiles, 32, 0, 0, wmma_kernel<true>)(ah, bh, cf, M, N, K);
  } else if (bug == "mma_fragment_index") {
    if (M % 16 || N % 8 || K % 16) throw std::domain_error("mma_fragment_index: M, K must be multiples of 16, N of 8");
    const auto* ah = static_cast<const __half*>(a);
    const auto* bh = static_cast<const __half*>(b);
    const dim3 mma_tiles(N / 8, M / 16);
    if (broken) PYKERN_LAUNCH(mma_tiles, 32, 0, 0, mma_kernel<true>)(ah, bh, cf, M, N, K);
    else PYKERN_LAUNCH(mma_tiles, 32, 0, 0, mma_kernel<false>)(ah, bh, cf, M, N, K);
  } else if (bug == "off_by_one_store") {
    const unsigned grid = (static_cast<unsigned>(M) + 127) / 128;
    if (broken) PYKERN_LAUNCH(grid, 128, 0, 0, relu_kernel<true>)(af, cf, M);
    else PYKERN_LAUNCH(grid, 128, 0, 0, relu_kernel<false>)(af, cf, M);
  } else {
    throw std::invalid_argument("unknown planted bug '" + bug + "'");
  }
  check_launch(("planted " + bug + (broken ? " (broken)" : " (correct)")).c_str());
}

void probe(const std::string& what, void* c) {
  float* cf = static_cast<float*>(c);
  constexpr size_t k64 = 64 * 1024;
  if (what == "threads_1025") {
    PYKERN_LAUNCH(1, 1025, 4, 0, touch_kernel)(cf);
  } else if (what == "grid_y_65536") {
    PYKERN_LAUNCH(dim3(1, 65536), 32, 4, 0, touch_kernel)(cf);
  } else if (what == "smem_64k_no_optin") {
    PYKERN_LAUNCH(1, 32, k64, 0, early_exit_kernel)(cf);  // a kernel never opted in
  } else if (what == "smem_64k_optin") {
    pykern::check_cuda(cudaFuncSetAttribute(touch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(k64)),
                       "cudaFuncSetAttribute");
    PYKERN_LAUNCH(1, 32, k64, 0, touch_kernel)(cf);
  } else if (what == "static_40k") {
    PYKERN_LAUNCH(1, 32, 0, 0, big_static_kernel)(cf);
  } else if (what == "static_40k_dynamic_16k") {
    PYKERN_LAUNCH(1, 32, 16 * 1024, 0, big_static_kernel)(cf);
  } else if (what == "write_past_end") {  // c: 1 float
    PYKERN_LAUNCH(1, 32, 0, 0, past_end_kernel)(cf, 1, false);
  } else if (what == "dynamic_smem_past_end") {
    PYKERN_LAUNCH(1, 32, 16 * sizeof(float), 0, past_end_kernel)(cf, 16, true);
  } else if (what == "early_exit_barrier") {
    PYKERN_LAUNCH(1, 64, 0, 0, early_exit_kernel)(cf);
  } else {
    throw std::invalid_argument("unknown probe '" + what + "'");
  }
  pykern::check_launch(("probe " + what).c_str());
}

}  // namespace planted
