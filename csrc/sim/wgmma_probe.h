// Kernels around the wgmma wrappers of kernels/wgmma.cuh, each with planted-bug twins, so
// tests/test_cuda_sim_wgmma.py can hold the simulator to the PTX ISA's wgmma semantics (matrix
// descriptors, the accumulator layout, asynchrony) and show that it catches the bugs they invite.
// Built only into pykern._cuda_sim. Pointers are simulator device memory.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace wgmma_probe {

// One block, one warpgroup: c (64, 64) fp32 = A (64, K) @ B (K, 64), fp16 or bf16 ("f16",
// "bf16"), K a multiple of 16, through K / 16 wgmma m64n64k16, one commit group each, then one
// wait_group 0. Each operand is given as stored: `a` is (64, K) row-major when K-major
// (trans_a false) or its transpose (K, 64) when MN-major (trans_a true); `b` is (64, K) — b
// transposed — when K-major (trans_b false), (K, 64) when MN-major. Both are loaded by TMA 2-D
// tile loads with swizzle span `span` (0, 32, 64, 128) in boxes one swizzle row wide (16 bytes
// for no swizzle), laid one after another in dynamic shared memory, and read by descriptors
// for that layout. bug: "none", "missing_wait" (the accumulators read before the wait),
// "swizzle_mismatch" (A's descriptors with the 64B swizzle where the TMA wrote 128B, or 128B for
// any other span), "wrong_sbo" (A's SBO halved), "wrong_lbo" (B's LBO halved: it matters for an
// MN-major B narrower than 64 columns per swizzle row, or without a swizzle). A launch error
// throws std::runtime_error.
void tile(const std::string& dtype, const std::string& bug, const void* a, const void* b, void* c, int K, int span,
          bool trans_a, bool trans_b);

// The 2-stage TMA -> wgmma pipeline: c (M, N) fp32 = a (M, K) @ b (K, N), fp16 row-major, K and N
// multiples of 8; one 64 x 64 tile of c per block, a producer warp and a consumer warpgroup, full
// and empty mbarriers per stage. bug: "none", "missing_wait" (no wait_group at all),
// "wait_short" (wait_group 1 where this loop needs 0 before releasing the stage),
// "early_release" (the empty barrier arrived on before the wait_group).
void pipeline(const std::string& bug, const void* a, const void* b, void* c, int M, int N, int K);

// Misuse the simulator must refuse (std::runtime_error): "partial_warpgroup" (a 96-thread block),
// "divergent_descriptors" (thread 5 names another tile), "static_shared" (a descriptor of a
// static __shared__ array), "written_in_flight" (an accumulator written before the wait),
// "exited_group" (a warp of the group returns before the wgmma). out: 64 floats of scratch.
void misuse(const std::string& what, void* out);

// The simulator's accumulator layout: for each of the 128 threads, the (row, col) of d[0 .. n/2).
std::vector<std::vector<std::pair<int, int>>> acc_layout(int n);

// The simulator's descriptor decoding for a 64 x 16 operand tile: for each element (mn, k),
// mn-major order (index mn * 16 + k), (the shared address before the swizzle, after it).
std::vector<std::pair<uint32_t, uint32_t>> descriptor_addresses(uint64_t desc, bool mn_major);

}  // namespace wgmma_probe
