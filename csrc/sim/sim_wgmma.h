// pykern CUDA simulator: Hopper's warpgroup-level matrix instructions, reached through the named
// wrappers of kernels/wgmma.cuh, as the PTX ISA defines them ("Asynchronous Warpgroup Level
// Matrix Multiply-Accumulate Instructions"; section numbers move between releases, so they are
// cited by name):
//   wgmma.fence.sync.aligned
//   wgmma.mma_async.sync.aligned.m64nNk16.f32.{f16,bf16}.{f16,bf16}  d, a-desc, b-desc, scale-d,
//                                                         1, 1, imm-trans-a, imm-trans-b
//   wgmma.commit_group.sync.aligned, wgmma.wait_group.sync.aligned N
//
// Warpgroup: four consecutive warps, the first one's index a multiple of 4 (threads 128g ..
// 128g + 127 of the block). mma_async is warpgroup-collective: all 128 threads meet at a
// warpgroup barrier (the scheduler's, beside __syncwarp's), each checks that the others are at
// the same instruction with the same descriptors, N, types, transposes and scale-d (.aligned;
// the operands are the warpgroup's, not a thread's), and the group meets again before anyone
// deposits anew. A thread of the group that has exited is an error.
//
// Matrix descriptors ("Matrix Descriptor Format"): a 64-bit value, bits [0, 14) the start
// address >> 4, [16, 30) the leading-dimension byte offset (LBO) >> 4, [32, 46) the
// stride-dimension byte offset (SBO) >> 4, [49, 52) the matrix base offset, [62, 64) the swizzle
// mode (0 none, 1 128B, 2 64B, 3 32B). The operand tiles are A (64 rows of M, 16 of K) and B
// (16 of K, N columns); each is K-major (K contiguous: imm-trans 0) or MN-major (imm-trans 1,
// allowed for f16/bf16). Element (mn, k) of an operand, for 2-byte elements, T = 8 elements per
// 16 bytes, W = span / 16 chunks per swizzle row ("Shared Memory Matrix Layout", the canonical
// layouts, in the ISA's own CuTe notation, strides in 16-byte units where marked T):
//   K-major,  no swizzle  ((8,m),(T,2k)):((1T,SBO),(1,LBO))       8x16-byte core matrices
//   K-major,  swizzled    ((8,m),(T,2k)):((WT,SBO),(1,T))         rows of `span` bytes
//   MN-major, no swizzle  ((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))
//   MN-major, swizzled    ((T,W,m),(8,k)):((1,T,LBO),(WT,SBO))
// then the swizzle of the byte address: bits [4, 4+b) XORed with [7, 7+b), b = log2(W), the
// same rule as the TMA's (sim_tma.h's tma::swizzle, called here), so a box a TMA load wrote
// with the 128B swizzle reads back right through a 128B descriptor, and through a 64B one it
// reads the wrong elements, as on a GPU. Swizzled K-major tiles ignore LBO (the 16 k of one
// instruction fit in a swizzle row); MN-major tiles of at most W * T columns ignore it too.
// tests/test_cuda_sim_wgmma.py holds element_offset() to the canonical layouts evaluated from
// those strings, and the swizzle to the guide's tables.
// Shared addresses: a descriptor's 14-bit start address covers 256 KiB of shared memory. Here
// a shared address is the offset into the launch's dynamic shared memory (1024-byte aligned,
// so the swizzle's bits agree); wgmma operands in static __shared__ arrays are refused. A
// non-zero matrix base offset is not simulated (refused).
//
// Accumulators ("Register Fragments and Shared Memory Matrix Layouts", wgmma D, .f32): thread
// t of the warpgroup holds N / 2 floats; d[i] is row 16 * (t / 32) + (t % 32) / 4 + 8 * ((i / 2)
// % 2), column 8 * (i / 4) + 2 * (t % 4) + i % 2: mma.sync's m16n8 C layout per warp, warp w on
// rows 16w .. 16w + 15, repeated over the N / 8 column blocks. acc_position() is that formula;
// the tests hold it to a table transcribed from the figure.
//
// Asynchrony, poisoned like TMA data: the ISA forbids reading or writing the accumulators of an
// in-flight mma_async, and modifying its shared-memory operands, until a wait_group covers its
// group. The simulator takes the latest moment a GPU could: at mma_async the thread's
// accumulators are filled with NaN and the operation is recorded (its input accumulators copied,
// or, when an in-flight mma_async of this thread has the same accumulators, chained to its
// result: the ISA lets consecutive mma_asyncs accumulate into the same registers without a
// wait); commit_group closes the thread's recorded operations into a group; wait_group N first
// yields (the other threads run: a stage released too early is refilled, and poisoned, by its
// producer now), then runs the groups older than the N newest in issue order, reading shared
// memory at that moment, and writes the results into the registers. So a missing wait reads NaN,
// a wait one group short leaves the newest group's accumulators NaN, and a stage refilled under
// an in-flight mma_async computes on the TMA's poisoned box. Per thread: a thread's operations
// read the operand elements of its own accumulators at its own wait. Errors: accumulators written
// while in flight (found at the wait: they are no longer the NaN the issue left), a thread that
// exits with operations in flight (their registers would be written into a dead frame),
// descriptors that reach outside the dynamic shared memory.
// Not modelled: wgmma.fence (called through its wrapper, not checked: the simulator cannot see
// the ordinary register and shared-memory writes it orders), A from registers, imm-scale -1,
// other shapes and types (tf32, fp8, integer), sparse wgmma. Products are exact (they are for
// f16 and bf16 in fp32) and summed in fp32, k = 0 .. 15 in order, onto the input accumulator.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pykern_sim {
namespace wgmma {

enum class Elem { kF16, kBF16 };

struct Desc {          // a decoded matrix descriptor; byte quantities
  uint32_t start;      // shared address of the tile
  uint32_t lbo, sbo;   // leading- and stride-dimension byte offsets
  int base_offset;
  int span;            // swizzle: 0 (none), 32, 64, 128 bytes
};

inline Desc decode(uint64_t d) {
  static const int kSpan[4] = {0, 128, 64, 32};  // the mode field: 0 none, 1 128B, 2 64B, 3 32B
  return Desc{static_cast<uint32_t>(d & 0x3fff) << 4, static_cast<uint32_t>((d >> 16) & 0x3fff) << 4,
              static_cast<uint32_t>((d >> 32) & 0x3fff) << 4, static_cast<int>((d >> 49) & 7),
              kSpan[(d >> 62) & 3]};
}

// The shared address of element (mn, k) of an operand tile of 2-byte elements, before the
// swizzle (the canonical layouts above).
inline uint32_t element_offset(const Desc& d, bool mn_major, int mn, int k) {
  constexpr uint32_t kEb = 2, kT = 8;  // bytes per element, elements per 16-byte chunk
  const uint32_t m = static_cast<uint32_t>(mn), kk = static_cast<uint32_t>(k), w = d.span / 16;
  if (!mn_major) {
    if (d.span == 0) return d.start + (m % 8) * 16 + (m / 8) * d.sbo + (kk % kT) * kEb + (kk / kT) * d.lbo;
    return d.start + (m % 8) * d.span + (m / 8) * d.sbo + (kk % kT) * kEb + (kk / kT) * 16;
  }
  if (d.span == 0) return d.start + (m % kT) * kEb + (m / kT) * d.sbo + (kk % 8) * 16 + (kk / 8) * d.lbo;
  return d.start + (m % kT) * kEb + ((m / kT) % w) * 16 + ((m / kT) / w) * d.lbo + (kk % 8) * d.span +
         (kk / 8) * d.sbo;
}

// The swizzled shared address the hardware reads element (mn, k) from.
uint32_t element_address(const Desc& d, bool mn_major, int mn, int k);

struct RowCol {
  int row, col;
};
// Accumulator d[i] of thread t (0..127) of the warpgroup (the formula above).
inline RowCol acc_position(unsigned t, int i) {
  const int warp = static_cast<int>(t / 32), lane = static_cast<int>(t % 32);
  return {16 * warp + lane / 4 + 8 * ((i / 2) % 2), 8 * (i / 4) + 2 * (lane % 4) + i % 2};
}

// The shared address (offset into the launch's dynamic shared memory) of p, for a descriptor.
uint32_t shared_address(const void* p);

inline void fence() {}
// d: this thread's n / 2 accumulators.
void mma_async(Elem e, int n, float* d, uint64_t desc_a, uint64_t desc_b, bool scale_d, bool trans_a, bool trans_b);
void commit_group();
void wait_group(int pending);

}  // namespace wgmma
}  // namespace pykern_sim
