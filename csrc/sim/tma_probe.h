// Small kernels around the mbarrier and TMA wrappers of kernels/tma.cuh, each with planted-bug
// twins, so tests/test_cuda_sim_tma.py can hold the simulator to the PTX ISA's mbarrier and
// cp.async.bulk.tensor semantics and show that it catches the bugs they invite. Built only
// into pykern._cuda_sim. Pointers are simulator device memory.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace tma_probe {

// One block per (box_h, box_w) box of a row-major (H, W) matrix of elem_bytes elements (rows
// 16-byte aligned: W * elem_bytes a multiple of 16), loaded by one TMA 2-D tile load with
// swizzle span 0, 32, 64 or 128 and one mbarrier. mode "raw": block b writes its shared box's
// bytes as they lie (swizzled) to out[b * box bytes ...], blocks row-major over the grid of
// boxes. mode "logical" (float32 only): the box's elements back to out (H, W), each read where
// the swizzle put it. bug: "none", or a planted bug: "missing_wait" (no wait before reading),
// "read_unswizzled" (the read ignores the swizzle), "expect_tx_over" (expect_tx 16 bytes more
// than the box), "no_expect_tx" (a plain arrive: the phase completes before the copy lands).
// A launch error (a deadlock included) throws std::runtime_error; a tensor map the encoder
// refuses, std::invalid_argument with its reason.
void tile(const std::string& mode, const std::string& bug, const void* src, int H, int W, int elem_bytes, int box_h,
          int box_w, int span, void* out);

// One block, one buffer, one mbarrier: the boxes at rows 0, box_h, 2 box_h, ... of a float32
// (H, W) matrix (W <= box_w) loaded one after the other, box k waited with parity k & 1 and
// copied to out (H, W). bug "wrong_parity" waits with parity 0 every time.
void stream(const std::string& bug, const void* src, int H, int W, int box_h, int box_w, int span, void* out);

// 64 threads, an mbarrier of count 64, `iters` phases: in phase k every thread writes its slot,
// arrives, waits (even k: parity k & 1; odd k: the state its arrive returned), then reads its
// neighbour's slot: out[k * 64 + t] = k * 1000 + (t + 1) % 64. bug "wrong_parity": parity 0.
void arrivals(const std::string& bug, int iters, void* out);

// One thread steps one mbarrier through two phases (arrivals, expect_tx, complete_tx, a tx-count
// below zero) and records each test_wait; out: int32[13], in the order tma_probe.cu lists.
void semantics(void* out);

// The 2-stage TMA -> mma.sync pipeline (tma_probe.cu): c (M, N) fp32 = a (M, K) @ b (K, N), fp16
// row-major, K and N multiples of 8. bug: "none", "stage_parity" (consumers wait full[s] with the
// k-tile's parity instead of the stage use's), "no_empty_wait" (the producer refills a stage
// before the consumers release it).
void pipeline(const std::string& bug, const void* a, const void* b, void* c, int M, int N, int K);

// Misuse the simulator must refuse (std::runtime_error): "uninitialized" (arrive before init),
// "too_many_arrivals" (a second arrival on a count-1 phase held open by its tx-count),
// "unaligned_destination" (a 128B-swizzled box 128 bytes past a 1024-byte boundary),
// "bad_parity" (test_wait.parity 2). out: 1 float of scratch.
void misuse(const std::string& what, void* out);

// The simulator's swizzle: for each 16-byte chunk of `bytes` bytes, where it lands (chunk index).
std::vector<size_t> swizzle_chunks(int span, size_t bytes);

}  // namespace tma_probe
