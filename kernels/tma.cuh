// Named wrappers for the Hopper (sm_90) asynchronous-copy PTX: mbarrier objects in shared memory
// and TMA tiled loads from a tensor map. As in mma.cuh, one kernel source builds for both
// compilers: under nvcc each wrapper is the inline `asm volatile` it names, compiled for
// __CUDA_ARCH__ >= 900 (below that a kernel that reaches one traps: its launcher must refuse
// such devices first); in the simulator (csrc/sim/sim_tma.h) each runs the instruction as the
// PTX ISA defines it, with the copy's data poisoned until the barrier phase covering it completes.
//
//   mbarrier_init(bar, count)              mbarrier.init.shared::cta.b64
//   fence_mbarrier_init()                  fence.mbarrier_init.release.cluster
//   fence_proxy_async()                    fence.proxy.async.shared::cta
//   mbarrier_arrive(bar)                   mbarrier.arrive.shared::cta.b64            -> state
//   mbarrier_arrive_expect_tx(bar, bytes)  mbarrier.arrive.expect_tx.shared::cta.b64  -> state
//   mbarrier_expect_tx(bar, bytes)         mbarrier.expect_tx.relaxed.cta.shared::cta.b64
//   mbarrier_complete_tx(bar, bytes)       mbarrier.complete_tx.relaxed.cta.shared::cta.b64
//   mbarrier_test_wait_parity(bar, p)      mbarrier.test_wait.parity.shared::cta.b64  (non-blocking)
//   mbarrier_try_wait_parity(bar, p)       mbarrier.try_wait.parity.shared::cta.b64   (may suspend)
//   mbarrier_test_wait(bar, state), mbarrier_try_wait(bar, state): the same, for an arrive's state
//   mbarrier_wait_parity(bar, p)           try_wait.parity until it succeeds
//   tma_load_2d(dst, map, c0, c1, bar)     cp.async.bulk.tensor.2d.shared::cluster.global
//                                            .mbarrier::complete_tx::bytes
//
// The protocol (PTX ISA, mbarrier): one thread inits the barrier with the number of arrivals a
// phase takes, then fence_mbarrier_init and a __syncthreads publish it. Each phase: the thread
// that issues the copies announces their bytes (mbarrier_arrive_expect_tx with the whole boxes'
// size, out-of-bounds fill included) and issues them; consumers wait for the phase's parity
// (phase k has parity k & 1) and may then read the boxes. A barrier reused for phase k + 1 is
// waited with the other parity.
// tensor map: a CUtensorMap made on the host by cuTensorMapEncodeTiled, passed as a
// `const __grid_constant__ CUtensorMap` kernel parameter; coordinates are in elements, dimension
// 0 innermost, and may be negative or past the end (those elements are filled with zero).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include <cuda.h>  // CUtensorMap (only the type: nothing of the driver is linked)

#include "mma.cuh"  // smem_addr
#if defined(PYKERN_CUDA_SIM)
#include "sim_tma.h"
#endif

namespace pykern {

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, unsigned count) {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::tma::mbarrier_init(bar, count);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// Makes the initialized barrier visible to the async proxy (the TMA unit) and the cluster.
__device__ __forceinline__ void fence_mbarrier_init() {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::tma::fence_mbarrier_init();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// Orders this thread's ordinary shared-memory accesses before later async-proxy ones (a TMA
// store reading what threads wrote, or a TMA load overwriting what they read).
__device__ __forceinline__ void fence_proxy_async() {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::tma::fence_proxy_async();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

__device__ __forceinline__ uint64_t mbarrier_arrive(uint64_t* bar) {
  uint64_t state = 0;
#if defined(PYKERN_CUDA_SIM)
  state = ::pykern_sim::tma::mbarrier_arrive(bar);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.shared::cta.b64 %0, [%1];\n" : "=l"(state) : "r"(smem_addr(bar)) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
  return state;
}

// Adds `bytes` to the phase's tx-count, then arrives: the phase cannot complete before the
// copies have delivered that many bytes.
__device__ __forceinline__ uint64_t mbarrier_arrive_expect_tx(uint64_t* bar, unsigned bytes) {
  uint64_t state = 0;
#if defined(PYKERN_CUDA_SIM)
  state = ::pykern_sim::tma::mbarrier_arrive_expect_tx(bar, bytes);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 %0, [%1], %2;\n"
               : "=l"(state) : "r"(smem_addr(bar)), "r"(bytes) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
  return state;
}

__device__ __forceinline__ void mbarrier_expect_tx(uint64_t* bar, unsigned bytes) {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::tma::mbarrier_expect_tx(bar, bytes);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

__device__ __forceinline__ void mbarrier_complete_tx(uint64_t* bar, unsigned bytes) {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::tma::mbarrier_complete_tx(bar, bytes);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.complete_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// True once the phase of parity `parity` (0 or 1) has completed; returns at once either way.
__device__ __forceinline__ bool mbarrier_test_wait_parity(uint64_t* bar, unsigned parity) {
  uint32_t done = 0;
#if defined(PYKERN_CUDA_SIM)
  done = ::pykern_sim::tma::mbarrier_test_wait_parity(bar, parity);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n.reg .pred p;\nmbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done) : "r"(smem_addr(bar)), "r"(parity) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
  return done != 0;
}

// The same, but the thread may be suspended until the phase completes or a system time limit.
__device__ __forceinline__ bool mbarrier_try_wait_parity(uint64_t* bar, unsigned parity) {
  uint32_t done = 0;
#if defined(PYKERN_CUDA_SIM)
  done = ::pykern_sim::tma::mbarrier_try_wait_parity(bar, parity);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done) : "r"(smem_addr(bar)), "r"(parity) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
  return done != 0;
}

// True once the phase that `state` (from mbarrier_arrive*) arrived on has completed.
__device__ __forceinline__ bool mbarrier_test_wait(uint64_t* bar, uint64_t state) {
  uint32_t done = 0;
#if defined(PYKERN_CUDA_SIM)
  done = ::pykern_sim::tma::mbarrier_test_wait(bar, state);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n.reg .pred p;\nmbarrier.test_wait.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done) : "r"(smem_addr(bar)), "l"(state) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
  return done != 0;
}

__device__ __forceinline__ bool mbarrier_try_wait(uint64_t* bar, uint64_t state) {
  uint32_t done = 0;
#if defined(PYKERN_CUDA_SIM)
  done = ::pykern_sim::tma::mbarrier_try_wait(bar, state);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done) : "r"(smem_addr(bar)), "l"(state) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
  return done != 0;
}

// Blocks until the phase of parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, unsigned parity) {
  while (!mbarrier_try_wait_parity(bar, parity)) {
  }
}

// The box of `map` whose first element is (c0 innermost, c1) into dst (shared memory, 128-byte
// aligned; with a swizzle, aligned to the pattern's repeat: 256, 512 or 1024 bytes for 32B, 64B,
// 128B), completing its bytes on bar.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar) {
#if defined(PYKERN_CUDA_SIM)
  const int coords[2] = {c0, c1};
  ::pykern_sim::tma::tensor_load(dst, map, coords, 2, bar);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// Where a TMA load with a swizzle span of 0 (none), 32, 64 or 128 bytes put byte `offset` of its
// dense row-major box, in a destination aligned to the pattern's repeat: the 16-byte chunk bits
// [4, 4+b) XORed with the 128-byte line bits [7, 7+b), b = log2(span / 16); for 128B, the chunk
// within each 128-byte row XORed with row % 8. (The kernel's own copy of the rule: the simulator
// applies its own, and tests/test_cuda_sim_tma.py holds that one to the guide's tables.)
__device__ __forceinline__ uint32_t tma_swizzle(uint32_t offset, int span) {
  const uint32_t mask = span >= 32 ? static_cast<uint32_t>(span / 16 - 1) : 0u;
  return offset ^ (((offset >> 7) & mask) << 4);
}

// ---- host: tensor maps ------------------------------------------------------------------

// The driver's cuTensorMapEncodeTiled. The extension links no libcuda (CMakeLists.txt: it must
// import where no driver is), so the function is fetched through the runtime, once; the
// simulator has its own encoder (csrc/sim/sim_tma.cpp), which checks the driver's rules.
using TensorMapEncode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                     const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                     CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
inline TensorMapEncode tensor_map_encoder() {
#if defined(PYKERN_CUDA_SIM)
  return &cuTensorMapEncodeTiled;
#else
  static const TensorMapEncode fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050  // the versioned query; the unversioned one is deprecated from 12.5 on
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                                           &found);
#else
    const cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &found);
#endif
    return e == cudaSuccess && found == cudaDriverEntryPointSuccess ? reinterpret_cast<TensorMapEncode>(p) : nullptr;
  }();
  return fn;
#endif
}

// The tensor map of a row-major (rows, cols) matrix of 2-byte elements at `base` (16-byte
// aligned, cols a multiple of 8: the driver's rules), boxes of (box_rows, box_cols) with the
// swizzle span `span` (0, 32, 64, 128 bytes), zero fill past the edges. `what` names the error.
inline CUtensorMap tensor_map_2d_b16(const void* base, int64_t rows, int64_t cols, int box_rows, int box_cols,
                                     int span, const char* what) {
  const TensorMapEncode encode = tensor_map_encoder();
  if (encode == nullptr) throw std::runtime_error(std::string(what) + ": the driver has no cuTensorMapEncodeTiled");
  CUtensorMap map{};
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_cols), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t ones[2] = {1, 1};
  const CUtensorMapSwizzle swizzle = span == 128  ? CU_TENSOR_MAP_SWIZZLE_128B
                                     : span == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
                                     : span == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                                                  : CU_TENSOR_MAP_SWIZZLE_NONE;
  const CUresult r = encode(&map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, const_cast<void*>(base), dims, strides, box, ones,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error(std::string(what) + ": cuTensorMapEncodeTiled failed (CUresult " + std::to_string(r) + ")");
  return map;
}

}  // namespace pykern
