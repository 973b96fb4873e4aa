// Named wrappers for Hopper's warpgroup-level matrix PTX (wgmma, sm_90a only), so one kernel
// source builds for both compilers: under nvcc each is the inline `asm volatile` it names,
// compiled where __CUDA_ARCH_FEAT_SM90_ALL is defined (the sm_90a target: plain sm_90 has no
// wgmma; there a kernel that reaches one traps, so its launcher must refuse other devices
// first); in the simulator (csrc/sim/sim_wgmma.h) each runs the instruction as the PTX ISA
// defines it, warpgroup-collective, its accumulators NaN until the wait_group that covers it.
//
//   wgmma_desc(tile, span, lbo, sbo)           the 64-bit shared-memory matrix descriptor
//   wgmma_fence()                              wgmma.fence.sync.aligned
//   wgmma_m64k16<N, T, TA, TB>(d, da, db, sd)  wgmma.mma_async.sync.aligned.m64nNk16.f32.T.T
//                                                T = __half or __nv_bfloat16, N = 64 or 128
//   wgmma_commit()                             wgmma.commit_group.sync.aligned
//   wgmma_wait<N>()                            wgmma.wait_group.sync.aligned N
//   wgmma_fence_operand(d)                     keeps the compiler from moving accumulator
//                                                accesses across the asynchronous region
//
// All are executed by a whole warpgroup: four consecutive warps, the first one's index a
// multiple of 4 (threads 128g .. 128g + 127), every thread at the same instruction.
// The protocol (PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"): the
// operands are in shared memory, named by descriptors; wgmma_fence() before the first
// mma_async (and after any register write to the accumulators); a run of mma_asyncs, which may
// accumulate into the same registers one after the other; wgmma_commit() closes them into a
// group; wgmma_wait<N>() returns once at most N of this thread's groups are in flight. Until a
// wait covers its group, an mma_async's accumulators must not be read or written and its shared
// memory must not be overwritten (a TMA refill of its stage included).
//
// Operands of one mma_async: A (64 rows of M, 16 of K) and B (16 of K, N columns), 2-byte
// elements. TRANS_A / TRANS_B = false: K-major (A row-major, B stored as (N, K) rows);
// true: MN-major (A stored as (K, M) rows, B as the (K, N) row-major matrix it is). With a
// swizzle span S (32, 64 or 128 bytes: the TMA's CU_TENSOR_MAP_SWIZZLE_<S>B), a tile is rows
// of S bytes exactly as a TMA box of inner extent S lays it out; then
//   K-major:  sbo = 8 * S (the next 8 rows of M or N); lbo unused (16 k fit in a row)
//   MN-major: sbo = 8 * S (the next 8 rows of K); lbo = the offset of the next S bytes of M or N
// and the k16 step within a K-major row of S bytes moves the start 32 bytes, within MN-major
// rows 16 * S bytes. Without a swizzle, the tile is 8 x 16-byte core matrices (128 contiguous
// bytes each, rows of M/N for K-major, of K for MN-major); for both majors, lbo steps to the
// next core matrix along K and sbo to the next along M or N. csrc/sim/sim_wgmma.h has every
// layout as the ISA's canonical layouts.
//
// Accumulators: thread t of the warpgroup holds N / 2 floats, d[i] at row
// 16 * (t / 32) + (t % 32) / 4 + 8 * ((i / 2) % 2), column 8 * (i / 4) + 2 * (t % 4) + i % 2:
// mma.sync's m16n8 C layout per warp, warp w of the group on rows 16w .. 16w + 15.
#pragma once
#include <cstdint>
#include <type_traits>

#include "mma.cuh"  // smem_addr, __half, __nv_bfloat16
#if defined(PYKERN_CUDA_SIM)
#include "sim_wgmma.h"
#endif

namespace pykern {

// The row and column, within the 64 x N tile, of accumulator d[i] of warpgroup thread t.
__host__ __device__ __forceinline__ int wgmma_acc_row(int t, int i) { return 16 * (t / 32) + (t % 32) / 4 + 8 * ((i / 2) % 2); }
__host__ __device__ __forceinline__ int wgmma_acc_col(int t, int i) { return 8 * (i / 4) + 2 * (t % 4) + i % 2; }

// The descriptor of an operand tile at `tile` (shared memory) with swizzle span `span` (0, 32,
// 64, 128 bytes) and leading / stride byte offsets (multiples of 16): start address, LBO and
// SBO each >> 4 in 14 bits, base offset 0, the swizzle mode in bits 62-63 (1 128B, 2 64B, 3 32B).
__device__ __forceinline__ uint64_t wgmma_desc(const void* tile, int span, uint32_t lbo, uint32_t sbo) {
#if defined(PYKERN_CUDA_SIM)
  const uint32_t addr = ::pykern_sim::wgmma::shared_address(tile);
#else
  const uint32_t addr = smem_addr(tile);
#endif
  const uint64_t mode = span == 128 ? 1 : span == 64 ? 2 : span == 32 ? 3 : 0;
  return (static_cast<uint64_t>((addr >> 4) & 0x3fff)) | (static_cast<uint64_t>((lbo >> 4) & 0x3fff) << 16) |
         (static_cast<uint64_t>((sbo >> 4) & 0x3fff) << 32) | (mode << 62);
}

// Orders the warpgroup's earlier register and shared-memory accesses before its next mma_async.
__device__ __forceinline__ void wgmma_fence() {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::wgmma::fence();
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::wgmma::commit_group();
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// Returns once at most N of this thread's committed wgmma groups are still in flight.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  static_assert(N >= 0 && N <= 7, "wgmma.wait_group takes 0..7");
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::wgmma::wait_group(N);
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// The accumulators as asm operands the compiler may not cache across: the register twin of a
// "memory" clobber, which the mma_async's "+f" operands alone do not give the wait.
template <int R>
__device__ __forceinline__ void wgmma_fence_operand(float (&d)[R]) {
#if !defined(PYKERN_CUDA_SIM) && defined(__CUDA_ARCH__)
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
#else
  (void)d;
#endif
}

// The inline PTX of one mma_async per N: d's N / 2 registers, then the descriptors, scale-d (as
// a predicate), imm-scale-a = imm-scale-b = 1, and the two transposes.
#define PYKERN_WGMMA_M64N64K16(TY) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " {" \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
      "}, %32, %33, p, 1, 1, %35, %36;\n}\n" \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) \
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(scale_d)), "n"(static_cast<int>(TRANS_A)), \
        "n"(static_cast<int>(TRANS_B)))

#define PYKERN_WGMMA_M64N128K16(TY) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
      "}, %64, %65, p, 1, 1, %67, %68;\n}\n" \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) \
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(scale_d)), "n"(static_cast<int>(TRANS_A)), \
        "n"(static_cast<int>(TRANS_B)))


// d (64 x N, fp32, this thread's N / 2) = A @ B + (scale_d ? d : 0) for one warpgroup, T in
// {__half, __nv_bfloat16}; A and B named by their descriptors. Asynchronous: see above.
template <int N, typename T, bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void wgmma_m64k16(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, bool scale_d) {
  constexpr bool kBF16 = std::is_same<T, __nv_bfloat16>::value;
  static_assert(kBF16 || std::is_same<T, __half>::value, "wgmma m64nNk16 takes fp16 or bf16 here");
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma m64nNk16: N is a multiple of 8 up to 256");
#if defined(PYKERN_CUDA_SIM)
  using ::pykern_sim::wgmma::Elem;
  ::pykern_sim::wgmma::mma_async(kBF16 ? Elem::kBF16 : Elem::kF16, N, d, desc_a, desc_b, scale_d, TRANS_A, TRANS_B);
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(N == 64 || N == 128, "the inline PTX is written out for N = 64 and 128 (add the operand list)");
  if constexpr (N == 64 && kBF16) {
    PYKERN_WGMMA_M64N64K16("bf16");
  } else if constexpr (N == 64) {
    PYKERN_WGMMA_M64N64K16("f16");
  } else if constexpr (kBF16) {
    PYKERN_WGMMA_M64N128K16("bf16");
  } else {
    PYKERN_WGMMA_M64N128K16("f16");
  }
#elif defined(__CUDA_ARCH__)
  (void)d, (void)desc_a, (void)desc_b, (void)scale_d;
  __trap();
#endif
}

#undef PYKERN_WGMMA_M64N64K16
#undef PYKERN_WGMMA_M64N128K16

}  // namespace pykern
