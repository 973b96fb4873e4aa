// pykern CUDA simulator: the warp-level matrix PTX instructions that kernels reach through the
// named wrappers of kernels/mma.cuh, as the PTX ISA defines them:
//   ldmatrix.sync.aligned.m8n8.x1/.x2/.x4{.trans}.shared.b16
//   mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32
//   mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
//
// Registers are real: a lane's fragment holds only the elements the ISA's fragment-layout
// figures give that lane, at the positions the formulas below (the ISA's own, in terms of
// groupID = lane >> 2 and threadID_in_group = lane % 4) say. Each instruction is
// warp-collective, like __shfl_sync: every lane deposits its registers (or its row address),
// the warp meets at a __syncwarp, each lane builds its own result from all 32 lanes' deposits,
// and the warp meets again. A kernel that puts an element in the wrong register or lane
// therefore computes wrong numbers here, as it would on a GPU. tests/test_cuda_sim_ptx.py holds
// these formulas to a table transcribed from the figures.
//
// Checked as the ISA requires: all 32 lanes present and at the same instruction (.aligned), and
// 16-byte aligned ldmatrix row addresses. Counted: the shared-memory bank conflicts of each
// ldmatrix matrix (sim_stats: its 8 rows of 16 bytes take one wavefront when they fall in 8
// distinct 4-bank groups).
// Not modelled: tensor-core arithmetic. Products are exact here (they are for f16, bf16 and
// tf32 inputs in fp32) and are added to c one at a time in fp32, k = 0, 1, ... in order; the
// hardware adds them with its own internal precision and order. tf32 operands ignore the low 13
// mantissa bits of their fp32 registers (truncation); feed them values rounded to tf32. That
// an ldmatrix address is in shared memory is not checked.
#pragma once
#include <cstdint>

#include "cuda_sim.h"

namespace pykern_sim {
namespace ptx {

struct RowCol {
  int row, col;
};

// ---- fragment layouts: element i of lane `lane`'s fragment sits at (row, col) ---------------

// mma.m16n8k16 .f16/.bf16, A (16 x 16, row-major): a0..a7, two per .b32 register (a0 the low half).
inline RowCol a_m16n8k16(unsigned lane, int i) {
  const int group = static_cast<int>(lane >> 2), tig = static_cast<int>(lane % 4);
  const bool upper = !(i < 2 || (i >= 4 && i < 6));  // the ISA: row = groupID for those, else + 8
  return {upper ? group + 8 : group, tig * 2 + (i & 1) + (i >= 4 ? 8 : 0)};
}
// mma.m16n8k16 .f16/.bf16, B (16 x 8, column-major): b0..b3, two per register.
inline RowCol b_m16n8k16(unsigned lane, int i) {
  const int group = static_cast<int>(lane >> 2), tig = static_cast<int>(lane % 4);
  return {tig * 2 + (i & 1) + (i >= 2 ? 8 : 0), group};
}
// C and D (16 x 8, .f32) of both shapes: c0..c3, one per register.
inline RowCol cd_m16n8(unsigned lane, int i) {
  const int group = static_cast<int>(lane >> 2), tig = static_cast<int>(lane % 4);
  return {i < 2 ? group : group + 8, tig * 2 + (i & 1)};
}
// mma.m16n8k8 .tf32, A (16 x 8): a0..a3, one per register.
inline RowCol a_m16n8k8_tf32(unsigned lane, int i) {
  const int group = static_cast<int>(lane >> 2), tig = static_cast<int>(lane % 4);
  return {(i == 0 || i == 2) ? group : group + 8, i < 2 ? tig : tig + 4};
}
// mma.m16n8k8 .tf32, B (8 x 8): b0, b1.
inline RowCol b_m16n8k8_tf32(unsigned lane, int i) {
  const int group = static_cast<int>(lane >> 2), tig = static_cast<int>(lane % 4);
  return {i == 0 ? tig : tig + 4, group};
}
// ldmatrix .m8n8 .b16, matrix i: lane 8i + r supplies the address of row r; every lane receives
// in register i the pair (row lane/4, columns 2*(lane%4) and +1), low half first, or with
// .trans the pair (rows 2*(lane%4) and +1, column lane/4). `j` picks the half.
inline RowCol ldmatrix_element(unsigned lane, int j, bool trans) {
  const int quad = static_cast<int>(lane >> 2), pair = static_cast<int>(lane % 4) * 2 + j;
  return trans ? RowCol{pair, quad} : RowCol{quad, pair};
}
inline unsigned ldmatrix_row_lane(int matrix, int row) { return static_cast<unsigned>(8 * matrix + row); }

// ---- register contents --------------------------------------------------------------------

enum class Elem { kF16, kBF16, kTF32 };

inline float half_of(uint32_t reg, int j, Elem e) {
  const uint16_t bits = static_cast<uint16_t>(j ? reg >> 16 : reg & 0xffffu);
  return e == Elem::kF16 ? half_bits_to_float(bits) : bf16_bits_to_float(bits);
}
inline float tf32_of(uint32_t reg) { return bits_float(reg & 0xffffe000u); }

// ---- instructions ---------------------------------------------------------------------------

struct MmaRegs {
  uint32_t a[4], b[2];
};

// d = a @ b + c for one warp; K = 16 (f16, bf16) or 8 (tf32).
inline void mma_m16n8(Elem e, float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  const char* op = e == Elem::kF16    ? "mma.sync.m16n8k16.f16"
                   : e == Elem::kBF16 ? "mma.sync.m16n8k16.bf16"
                                      : "mma.sync.m16n8k8.tf32";
  const int K = e == Elem::kTF32 ? 8 : 16;
  MmaRegs mine;
  for (int i = 0; i < 4; ++i) mine.a[i] = a[i];
  for (int i = 0; i < 2; ++i) mine.b[i] = b[i];
  const WarpInstruction id = warp_deposit(op, &mine, sizeof mine);
  syncwarp(0xffffffffu);
  // The warp's whole operands, gathered from every lane's registers by the first lane through
  // (which also checks that every lane is at this instruction) and shared with the rest.
  struct Gathered {
    WarpInstruction id{~0ull, ~0ull};
    float A[16][16], B[16][8];
  };
  static Gathered per_warp[32];  // one per warp of the running block (blocks run one at a time)
  Gathered& g = per_warp[warp_id()];
  float(&A)[16][16] = g.A;
  float(&B)[16][8] = g.B;
  for (unsigned lane = 0; lane < 32 && !(g.id == id); ++lane) {
    const MmaRegs& r = *static_cast<const MmaRegs*>(warp_slot(lane));
    if (e == Elem::kTF32) {
      for (int i = 0; i < 4; ++i) {
        const RowCol p = a_m16n8k8_tf32(lane, i);
        A[p.row][p.col] = tf32_of(r.a[i]);
      }
      for (int i = 0; i < 2; ++i) {
        const RowCol p = b_m16n8k8_tf32(lane, i);
        B[p.row][p.col] = tf32_of(r.b[i]);
      }
    } else {
      for (int i = 0; i < 8; ++i) {
        const RowCol p = a_m16n8k16(lane, i);
        A[p.row][p.col] = half_of(r.a[i / 2], i % 2, e);
      }
      for (int i = 0; i < 4; ++i) {
        const RowCol p = b_m16n8k16(lane, i);
        B[p.row][p.col] = half_of(r.b[i / 2], i % 2, e);
      }
    }
  }
  g.id = id;
  const unsigned me = lane_id();
  float out[4];
  for (int i = 0; i < 4; ++i) {  // this lane's own c and d elements: the same positions
    const RowCol p = cd_m16n8(me, i);
    float acc = c[i];
    for (int k = 0; k < K; ++k) acc += A[p.row][k] * B[k][p.col];
    out[i] = acc;
  }
  syncwarp(0xffffffffu);  // nobody deposits for its next instruction before everyone has read
  for (int i = 0; i < 4; ++i) d[i] = out[i];  // d may alias c
}

// ldmatrix .m8n8 .xN{.trans} .b16: r[i] gets this lane's pair of matrix i.
template <int N, bool TRANS>
void ldmatrix(uint32_t* r, const void* row) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
  static const char* const op = TRANS ? (N == 1 ? "ldmatrix.x1.trans" : N == 2 ? "ldmatrix.x2.trans" : "ldmatrix.x4.trans")
                                      : (N == 1 ? "ldmatrix.x1" : N == 2 ? "ldmatrix.x2" : "ldmatrix.x4");
  const unsigned me = lane_id();
  // Only lanes 0 .. 8N-1 supply addresses; the others' are ignored, as the ISA says.
  if (me < 8u * N && reinterpret_cast<uintptr_t>(row) % 16 != 0)
    fail("ldmatrix: a row address is not 16-byte aligned");
  warp_deposit(op, &row, sizeof row);
  syncwarp(0xffffffffu);
  unsigned extra = 0;
  for (int m = 0; m < N; ++m) {
    const uint16_t* rows[8];
    int in_group[8] = {};
    for (int j = 0; j < 8; ++j) {
      rows[j] = *static_cast<const uint16_t* const*>(warp_slot(ldmatrix_row_lane(m, j)));
      ++in_group[(reinterpret_cast<uintptr_t>(rows[j]) / 16) % 8];
    }
    uint32_t reg = 0;
    for (int j = 0; j < 2; ++j) {
      const RowCol p = ldmatrix_element(me, j, TRANS);
      reg |= static_cast<uint32_t>(rows[p.row][p.col]) << (16 * j);
    }
    r[m] = reg;
    int worst = 0;
    for (int g : in_group) worst = g > worst ? g : worst;
    extra += static_cast<unsigned>(worst - 1);
  }
  if (me == 0) count_ldmatrix(N, extra);
  syncwarp(0xffffffffu);
}

}  // namespace ptx
}  // namespace pykern_sim
