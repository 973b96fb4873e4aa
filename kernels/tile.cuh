// Staging tiles in shared memory, for every tiled kernel family (matmul's ladder in
// kernels/matmul/, conv2d's tensor-core rung in kernels/conv2d/): 16-byte packs, the cp.async
// wrappers (sm_80+; the simulator queues them until the wait), the shared-memory layouts
// (as-is, transposed, XOR-swizzled for ldmatrix), and load_tile, which copies a row-major tile
// into any of them with zero fill past the matrix edge.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "launch.cuh"
#include "pykern.h"  // device_info
#include "mma.cuh"  // smem_addr

namespace pykern {

// VEC elements of T moved as one access (16 bytes: LDG.128 / STS.128).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

// cp.async (sm_80+): an asynchronous global->shared copy of BYTES bytes; when `valid` is false
// no global byte is read and the destination is zero-filled (src-size 0), which is how edge
// tiles get their zero padding without a branch around the copy.
template <int BYTES>
__device__ __forceinline__ void cp_async(void* dst, const void* src, bool valid) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::cp_async(dst, src, BYTES, valid);  // queued; lands at cp_async_wait
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned n = valid ? BYTES : 0;
  if constexpr (BYTES == 16) {
    // .cg: 16-byte copies may skip L1; each tile is read once per block.
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(n));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "n"(BYTES), "r"(n));
  }
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::cp_async_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Wait until at most N of this thread's committed copy groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::cp_async_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// How load_tile lays a tile out in shared memory: as in global memory, transposed (element
// (r, c) at s[c * s_ld + r]) so that a column of the tile is contiguous, or XOR-swizzled
// (swizzled_offset, below) so that ldmatrix reads of 16-bit tiles are bank-conflict free.
enum class Layout { kSame, kTransposed, kSwizzled };

// The XOR swizzle of 16-bit tiles read by ldmatrix: a row's 16-byte chunks (8 elements) are
// permuted by chunk ^ (row % 8), so the same logical chunk of 8 consecutive rows, which one
// ldmatrix 8x8 matrix reads, lands in 8 different 4-bank groups of a 128-byte line instead of
// one (an 8-way conflict when rows are whole lines apart). s_ld must be a multiple of 64
// elements (rows of whole 128-byte lines), so the XOR stays inside the row's line; the
// kernel's config asserts that.
__device__ __forceinline__ int swizzled_offset(int r, int c, int s_ld) {
  return r * s_ld + (((c >> 3) ^ (r & 7)) << 3) + (c & 7);
}

// Where load_tile puts element (r, c) of the tile.
template <Layout LAYOUT>
__device__ __forceinline__ int tile_offset(int r, int c, int s_ld) {
  if constexpr (LAYOUT == Layout::kTransposed) return c * s_ld + r;
  else if constexpr (LAYOUT == Layout::kSwizzled) return swizzled_offset(r, c, s_ld);
  else return r * s_ld + c;
}
// How load_tile copies: loads into registers then stores, or cp.async (sm_80+; the caller
// commits and waits).
enum class Copy { kLoadStore, kAsync };

// Copies the ROWS x COLS tile whose top-left element is g (row-major, leading dimension ld)
// into shared memory s (leading dimension s_ld), zero-filling rows >= rows_left and columns
// >= cols_left, i.e. everything past the matrix edge. THREADS threads share the copy, VEC
// consecutive elements per access. Copy::kAsync accesses narrower than 4 bytes, which
// cp.async cannot do, fall back to ordinary loads and stores.
// Preconditions for VEC > 1: g and every row start are VEC*sizeof(T)-aligned and cols_left is
// a multiple of VEC, so a vector is either wholly inside the matrix or wholly outside.
template <int ROWS, int COLS, int THREADS, int VEC, Layout LAYOUT, Copy COPY, typename T, typename Idx>
__device__ __forceinline__ void load_tile(const T* __restrict__ g, Idx ld, int rows_left,
                                          int cols_left, T* __restrict__ s, int s_ld) {
  static_assert(COLS % VEC == 0, "a vector access must not straddle two tile rows");
  constexpr int kPerRow = COLS / VEC;
  static_assert((ROWS * kPerRow) % THREADS == 0,
                "every thread copies the same number of vectors, so no thread needs a tile-bound check");
  constexpr int kIters = ROWS * kPerRow / THREADS;
  constexpr int kBytes = VEC * static_cast<int>(sizeof(T));
  const int tid = threadIdx.x;
  constexpr bool kTranspose = LAYOUT == Layout::kTransposed;
  static_assert(LAYOUT != Layout::kSwizzled || (sizeof(T) == 2 && 8 % VEC == 0),
                "the swizzle permutes 8-element chunks of 16-bit tiles: a vector must stay inside one");
  if constexpr (COPY == Copy::kAsync && kBytes >= 4) {
    static_assert(!kTranspose || VEC == 1,
                  "cp.async copies contiguous bytes: a transposed tile takes one element per copy");
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int idx = tid + it * THREADS;
      const int r = idx / kPerRow, c = (idx % kPerRow) * VEC;
      const bool in = r < rows_left && c < cols_left;
      T* dst = s + tile_offset<LAYOUT>(r, c, s_ld);
      // Out-of-range copies read nothing; the tile origin g (inside the matrix) stands in.
      cp_async<kBytes>(dst, g + (in ? r * ld + c : Idx(0)), in);
    }
  } else {
    // Loads, then stores, kBatch accesses at a time: several global loads are in flight before
    // the first store, without holding a whole tile's worth of registers (the wmma kernel's
    // scalar fallback copies 32 elements a thread and spilled when staging them all).
    constexpr int kBatch = kIters < 8 ? kIters : 8;
    static_assert(kIters % kBatch == 0, "copies split into whole batches");
#pragma unroll
    for (int it0 = 0; it0 < kIters; it0 += kBatch) {
      Pack<T, VEC> regs[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int idx = tid + (it0 + b) * THREADS;
        const int r = idx / kPerRow, c = (idx % kPerRow) * VEC;
        if (r < rows_left && c < cols_left) {
          regs[b] = *reinterpret_cast<const Pack<T, VEC>*>(g + r * ld + c);
        } else {
#pragma unroll
          for (int v = 0; v < VEC; ++v) regs[b].v[v] = T(0.0f);
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int idx = tid + (it0 + b) * THREADS;
        const int r = idx / kPerRow, c = (idx % kPerRow) * VEC;
        if constexpr (kTranspose) {
#pragma unroll
          for (int v = 0; v < VEC; ++v) s[(c + v) * s_ld + r] = regs[b].v[v];
        } else {
          *reinterpret_cast<Pack<T, VEC>*>(s + tile_offset<LAYOUT>(r, c, s_ld)) = regs[b];
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------
// Checks of the launchers (and kernels) that stage tiles this way
// ------------------------------------------------------------------------------------------

__host__ __device__ __forceinline__ bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// A device property, not a shape: the one check launchers keep (RuntimeError, not `supports`).
inline void require_sm80(const char* what) {
  if (device_info().cc_major < 8)
    throw std::runtime_error(std::string(what) + " needs compute capability 8.0+ (cp.async, bf16 "
                             "tensor cores); this GPU is older");
}

// Launches `kernel` with Cfg's threads and dynamic shared memory, opting in to more than 48 KB of
// it first (per kernel, as CUDA requires), and checks the launch; `what` names the errors.
template <typename Cfg, typename Kernel, typename... Args>
void launch_staged(Kernel kernel, dim3 grid, cudaStream_t stream, const char* what, Args... args) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(Cfg::kSmemBytes)), what);
  PYKERN_LAUNCH(grid, Cfg::kThreads, Cfg::kSmemBytes, stream, kernel)(args...);
  check_launch(what);
}

}  // namespace pykern
