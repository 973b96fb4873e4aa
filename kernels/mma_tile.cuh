// The block-level mma.sync machinery shared by the tensor-core rungs that feed on ldmatrix
// (matmul's mma_sync in kernels/matmul/, conv2d's mma_sync in kernels/conv2d/): a block computes
// a BM x BN tile of D = A @ B over k-tiles of BK, with
//   A: (BM rows, BK of k) per stage in shared memory, swizzled rows of BK (row-major, "row")
//   B: (BK of k, BN columns) per stage in shared memory, swizzled rows of BN
// staged through a STAGES-deep cp.async ring. What differs between the rungs is only how a
// k-tile reaches shared memory (the caller's `issue`) and where the accumulators go (the
// caller's epilogue, walked by for_each_accumulator); the ring, the ldmatrix fragment reads and
// the mma.sync calls are here, once.
#pragma once
#include <cstddef>
#include <cstdint>

#include "mma.cuh"   // ldmatrix, mma_m16n8k16
#include "tile.cuh"  // cp.async, swizzled_offset

namespace pykern {

// Block tile BM x BN over k-tiles of BK, STAGES of them in flight in a cp.async ring; warps of
// WM x WN, each a grid of (WM/16) x (WN/8) m16n8 accumulator tiles (4 floats a lane each).
template <int BM_, int BN_, int BK_, int WM_, int WN_, int STAGES_>
struct MmaCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int kThreads = 32 * (BM / WM) * (BN / WN);
  static constexpr int MT = WM / 16, NT = WN / 8;  // m16 and n8 mma tiles per warp
  static constexpr int kElem = 2;                  // bytes per fp16/bf16 element
  static constexpr int kVec = 16 / kElem;          // elements per 16-byte copy and ldmatrix row
  static constexpr int kATile = BM * BK, kBTile = BK * BN;  // elements per stage, unpadded
  static_assert(BM % WM == 0 && BN % WN == 0, "warp tiles must cover the block tile exactly");
  static_assert(WM % 16 == 0 && BK % 16 == 0, "a fragments are 16x16 (m16 x k16)");
  static_assert(WN % 16 == 0, "b fragments are loaded two n8 tiles at a time (ldmatrix.x4.trans)");
  static_assert(BK % 64 == 0 && BN % 64 == 0,
                "swizzled rows must be whole 128-byte lines (64 elements) for the XOR to stay in a line");
  static_assert(STAGES >= 2, "the ring overlaps the copy of one k-tile with the compute of another");
  static constexpr size_t kSmemBytes = size_t(STAGES) * (kATile + kBTile) * kElem;
};

// This warp's corner of the block tile: rows wr.., columns wc.. (warps row-major over the tile).
struct WarpCorner {
  int wr, wc;
};
template <typename Cfg>
__device__ __forceinline__ WarpCorner warp_corner() {
  const int warp = threadIdx.x / 32;
  return {(warp / (Cfg::BN / Cfg::WN)) * Cfg::WM, (warp % (Cfg::BN / Cfg::WN)) * Cfg::WN};
}

// Runs the whole k-loop of one block tile: acc (zeroed here) += A @ B over ktiles k-tiles.
// smem holds the ring, STAGES A tiles then STAGES B tiles; issue(kt, a_dst, b_dst) starts the
// copy of k-tile kt into one stage (cp.async and/or plain shared stores: both are visible to
// every thread of the block by the time that stage is read).
template <typename T, typename Cfg, typename Issue>
__device__ __forceinline__ void mma_block_loop(float (&acc)[Cfg::MT][Cfg::NT][4], T* smem, int ktiles,
                                               Issue&& issue) {
  static_assert(sizeof(T) == Cfg::kElem, "the tile layout is sized for 16-bit elements");
  constexpr int BK = Cfg::BK, BN = Cfg::BN, STAGES = Cfg::STAGES, MT = Cfg::MT, NT = Cfg::NT;
  T* as = smem;                        // a: (BM, BK) per stage, swizzled rows of BK
  T* bs = as + STAGES * Cfg::kATile;   // b: (BK, BN) per stage, swizzled rows of BN
  const WarpCorner w = warp_corner<Cfg>();
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // ldmatrix.x4 row addresses: lane l names row l % 16 of a 16x16 block, in its left (l < 16)
  // or right 8 columns, so matrices 0..3 are (rows 0-7, cols 0-7), (8-15, 0-7), (0-7, 8-15),
  // (8-15, 8-15): for a, fragment registers a0a1, a2a3, a4a5, a6a7; for b (k rows, n columns,
  // transposed by .trans), b0b1 and b2b3 of the n8 tile at column 0, then of the one at 8.
  const int frag_row = lane % 16, frag_col = (lane / 16) * 8;

  // Group g holds k-tile g (empty groups past the last), so waiting until STAGES - 2 groups
  // are in flight means k-tile kt has landed.
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) issue(s, as + s * Cfg::kATile, bs + s * Cfg::kBTile);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // k-tile kt is everyone's now, and stage (kt - 1) % STAGES is free to refill
    if (kt + STAGES - 1 < ktiles) {
      const int s = (kt + STAGES - 1) % STAGES;
      issue(kt + STAGES - 1, as + s * Cfg::kATile, bs + s * Cfg::kBTile);
    }
    cp_async_commit();
    const T* a_s = as + (kt % STAGES) * Cfg::kATile;
    const T* b_s = bs + (kt % STAGES) * Cfg::kBTile;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t af[MT][4], bf[NT][2];
#pragma unroll
      for (int i = 0; i < MT; ++i)
        ldmatrix<4, false>(af[i], a_s + swizzled_offset(w.wr + i * 16 + frag_row, kk + frag_col, BK));
#pragma unroll
      for (int j = 0; j < NT; j += 2) {
        uint32_t r[4];
        ldmatrix<4, true>(r, b_s + swizzled_offset(kk + frag_row, w.wc + j * 8 + frag_col, BN));
        bf[j][0] = r[0], bf[j][1] = r[1], bf[j + 1][0] = r[2], bf[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) mma_m16n8k16<T>(acc[i][j], af[i], bf[j], acc[i][j]);
    }
  }
}

// Calls fn(row, col, value) for each of this lane's accumulators, row and col within the block
// tile. The layout is the ISA's (c0, c1 at row groupID, columns 2 * threadID_in_group + 0, 1;
// c2, c3 eight rows below), so each lane stores its own elements with no shuffle.
template <typename Cfg, typename Fn>
__device__ __forceinline__ void for_each_accumulator(const float (&acc)[Cfg::MT][Cfg::NT][4], Fn&& fn) {
  const WarpCorner w = warp_corner<Cfg>();
  const int lane = threadIdx.x % 32, group = lane >> 2, tig = lane % 4;
#pragma unroll
  for (int i = 0; i < Cfg::MT; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        fn(w.wr + i * 16 + group + (e >= 2 ? 8 : 0), w.wc + j * 8 + tig * 2 + (e & 1), acc[i][j][e]);
}

}  // namespace pykern
