// The packed GEMM that every compiled CPU kernel with a reduction runs on: the GotoBLAS/BLIS loops
// around a register-blocked micro-kernel, written once for any "operand description" (an Op), so
// matmul, conv2d (implicit GEMM: B is the im2col of x, packed straight from x, never stored
// whole) and its gradients share one micro-kernel, one threading scheme and one summation order.
//
// An Op describes C (M x N) = A (M x K) * B (K x N) by how to pack its operands and where C lives:
//   int64_t M, N, K;
//   Epilogue<T> epi;                                    bias per row, then ReLU, after the last K block
//   template <class B> void pack_a(ic, mc, pc, kc, T* ap) const
//       A's rows [ic, ic+mc) x columns [pc, pc+kc) into MR-row micro-panels, k-major
//       (ap[ir*kc + k*MR + i]), zero rows past mc
//   template <class B> void pack_b(pc, kc, jc, nc, T* bp) const
//       B's rows [pc, pc+kc) x columns [jc, jc+nc) into NR-column micro-panels, k-major
//       (bp[jr*kc + k*NR + j]), zero columns past nc
//   T* c_run(int64_t i, int64_t j, int64_t* ldc, int64_t* run) const
//       C(i, j); C's columns [j, j + *run) lie at unit stride from it in rows i, i+1, ... of one
//       tile (row stride *ldc): matmul's run is the rest of the row, conv2d's the rest of an image
//   optional: int64_t c_stride   C's columns of one run lie c_stride apart instead (conv2d's input
//       gradient at stride > 1 writes every sw-th column of dx); such tiles are stored one element
//       at a time, so an Op without it (unit stride) keeps the vector stores
// Its methods run inside the ISA's target functions: mark them PYKERN_INLINE so they are compiled
// for that ISA.
//
// Accuracy (error_model "terms"): every output sums its own terms in the input dtype in a fixed
// order: k ascending within a KC block, the blocks' sums added to C in ascending order, then the
// bias, then ReLU. Threads split outputs, never a sum, so the result does not depend on the thread
// count. Edge panels are padded with zeros; a padded row or column only ever meets outputs that
// are discarded, so an Inf in a real input never meets a padding zero (0 * Inf) in a kept output.
// (Zeros an Op packs *as data*, conv2d's spatial padding, do multiply like values: 0 * Inf = NaN,
// as in torch and in the spec.)
#pragma once
#include <type_traits>

#include "cpu.h"
#if PYKERN_X86
#include <immintrin.h>
#endif

namespace pykern {
namespace cpu {
namespace gemm {

// ------------------------------------------------------------------------------------------
// Blockings
// ------------------------------------------------------------------------------------------
// The blocking of one rung on one ISA, as data. V: the vector type (T itself for the scalar
// micro-kernel). The micro-kernel keeps an MR x NR tile of C in MR * NV registers.
template <class T, class V, int MR_, int NV_, int MC_, int KC_, int NC_>
struct Blocking {
  using Elem = T;
  using Vec = V;
  static constexpr int W = int(sizeof(V) / sizeof(T));  // lanes
  static constexpr int MR = MR_, NV = NV_, NR = NV_ * W;
  static constexpr int MC = MC_, KC = KC_, NC = NC_;
  static_assert(sizeof(V) % sizeof(T) == 0, "a vector holds whole elements");
  static_assert(MC % MR == 0, "an A block is whole MR-row micro-panels (packing and the ir loop step MR)");
  static_assert(NC % NR == 0, "a B block is whole NR-column micro-panels (packing and the jr loop step NR)");
  // Why these sizes: the B micro-panel (KC x NR) stays in L1 while the ir loop sweeps the A
  // block; the A block (MC x KC) stays in L2; the B block (KC x NC) in L3.
  static constexpr size_t a_elems = size_t(MC) * KC;
};

// The blockings of each rung per element type:
//   Blocked: 4 x 8 plain scalars, no ISA dispatch; GCC's SLP vectorizer packs each row's 8 into
//     SSE2 registers (4 x 4 it left scalar: 6 GFLOP/s against 37 for 4 x 8 at 512, one thread).
//   Base / Avx2 / Avx512: the SIMD micro-kernel per ISA. Accumulators: baseline 8 of 16 xmm;
//     AVX2 10 of 16 ymm (2 for B, 1 broadcast); AVX-512 16 of 32 zmm: enough independent FMA
//     chains to cover the FMA latency x units. AVX2 was 6 rows (12 accumulators, 15 of the 16
//     registers): GCC kept one accumulator on the stack, a load-FMA-store chain through memory
//     every k, and the rung ran at 39 GFLOP/s at 1024 on one thread (float64: 23) where 5 rows
//     run at 99 (40), as fast as AVX-512's 8 x 32 on this AMD EPYC (Zen 4: same FMA width).
template <class T>
struct Blockings;
template <>
struct Blockings<float> {
  using Blocked = Blocking<float, float, 4, 8, 128, 256, 2048>;
  using Base = Blocking<float, f32x4, 4, 2, 128, 256, 4096>;
  using Avx2 = Blocking<float, f32x8, 5, 2, 140, 256, 4096>;
  using Avx512 = Blocking<float, f32x16, 8, 2, 128, 256, 4096>;
};
template <>
struct Blockings<double> {
  using Blocked = Blocking<double, double, 4, 8, 128, 256, 2048>;
  using Base = Blocking<double, f64x2, 4, 2, 128, 256, 2048>;
  using Avx2 = Blocking<double, f64x4, 5, 2, 100, 256, 2048>;
  using Avx512 = Blocking<double, f64x8, 8, 2, 128, 128, 2048>;
};

template <class V, class T>
PYKERN_INLINE V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V, class T>
PYKERN_INLINE void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// What happens to an output after its last term: + bias[row] (none where bias is null), then
// ReLU written as the spec's select (x < 0 ? 0 : x), which keeps NaN.
template <class T>
struct Epilogue {
  const T* bias = nullptr;  // (M,) or null
  bool relu = false;
  bool any() const { return bias != nullptr || relu; }
};

// ------------------------------------------------------------------------------------------
// Packing
// ------------------------------------------------------------------------------------------
// A strided matrix: element (i, k) at p[i * rs + k * cs]. matmul's operands (a transposed one is
// another pair of strides) and conv2d's filters (a group's (Kg, Cg*R*S) rows of w) are these.
template <class T>
struct Strided {
  const T* p;
  int64_t rs, cs;
};

// 8 x 8 floats transposed in registers: rows src[i * ld + (0..7)] -> dst[k * ldd + i]. The packing
// of an operand whose packed order is its transpose (a row-major A, a transposed B) moved one
// element at a time was half of a small Linear layer's matmul (32 x 512 x 64, perf); in 8 x 8
// blocks it is 16 vector loads, 24 shuffles and 8 vector stores.
PYKERN_INLINE void transpose_8x8(const float* src, int64_t ld, float* dst, int64_t ldd) {
  using V = f32x8;
  V r[8];
  for (int i = 0; i < 8; ++i) std::memcpy(&r[i], src + i * ld, sizeof(V));
  V t[8], u[8];
  for (int i = 0; i < 8; i += 2) {  // interleave row pairs: (r0 r1), (r2 r3), ...
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {  // then pairs of pairs: four rows per 128-bit half
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int k = 0; k < 4; ++k) {  // column k in u[k]'s and u[k + 4]'s low halves, column k + 4 in their high ones
    const V lo = __builtin_shufflevector(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    const V hi = __builtin_shufflevector(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    std::memcpy(dst + k * ldd, &lo, sizeof(V));
    std::memcpy(dst + (k + 4) * ldd, &hi, sizeof(V));
  }
}

// Rows [ic, ic + mc) x columns [pc, pc + kc) of m into MR-row micro-panels, zero rows past mc.
template <class B>
PYKERN_INLINE void pack_rows(const Strided<typename B::Elem>& m, int64_t ic, int64_t mc, int64_t pc, int64_t kc,
                             typename B::Elem* __restrict ap) {
  using T = typename B::Elem;
  constexpr int MR = B::MR;
  for (int64_t ir = 0; ir < mc; ir += MR) {
    T* dst = ap + ir * kc;
    const int rows = int(mc - ir < MR ? mc - ir : MR);
    const T* src = m.p + (ic + ir) * m.rs + pc * m.cs;
    int64_t k0 = 0;
    if constexpr (std::is_same<T, float>::value && MR % 8 == 0) {
      if (m.cs == 1 && rows == MR)  // rows contiguous along k (a row-major A): 8 x 8 blocks
        for (; k0 + 8 <= kc; k0 += 8)
          for (int i = 0; i < MR; i += 8) transpose_8x8(src + i * m.rs + k0, m.rs, dst + k0 * MR + i, MR);
    }
    for (int64_t k = k0; k < kc; ++k) {
      for (int i = 0; i < rows; ++i) dst[k * MR + i] = src[i * m.rs + k * m.cs];
      for (int i = rows; i < MR; ++i) dst[k * MR + i] = T(0);
    }
  }
}

// An Op whose A is one strided matrix (matmul's a, a conv group's filters) packs it this way.
template <class T>
struct StridedA {
  Strided<T> a;

  template <class B>
  PYKERN_INLINE void pack_a(int64_t ic, int64_t mc, int64_t pc, int64_t kc, T* ap) const {
    pack_rows<B>(a, ic, mc, pc, kc, ap);
  }
};

// Rows [pc, pc + kc) x columns [jc, jc + nc) of m into NR-column micro-panels, zero columns
// past nc. (The same walk as pack_rows with rows and columns exchanged: B's panels hold NR
// columns of kc rows, A's MR rows of kc columns.)
template <class B>
PYKERN_INLINE void pack_columns(const Strided<typename B::Elem>& m, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                                typename B::Elem* __restrict bp) {
  using T = typename B::Elem;
  constexpr int NR = B::NR;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    T* dst = bp + jr * kc;
    const int cols = int(nc - jr < NR ? nc - jr : NR);
    const T* src = m.p + pc * m.rs + (jc + jr) * m.cs;
    if (m.rs == 1) {  // columns are contiguous along k (a transposed B): read each column in order
      int j0 = 0;
      if constexpr (std::is_same<T, float>::value && NR % 8 == 0) {  // whole 8 x 8 blocks in registers
        const int64_t k8 = kc / 8 * 8;
        for (; j0 + 8 <= cols; j0 += 8) {
          for (int64_t k = 0; k < k8; k += 8) transpose_8x8(src + k + j0 * m.cs, m.cs, dst + k * NR + j0, NR);
          for (int64_t k = k8; k < kc; ++k)
            for (int j = j0; j < j0 + 8; ++j) dst[k * NR + j] = src[k + j * m.cs];
        }
      }
      for (int j = j0; j < cols; ++j)
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k + j * m.cs];
      for (int j = cols; j < NR; ++j)
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = T(0);
      continue;
    }
    for (int64_t k = 0; k < kc; ++k) {
      if (m.cs == 1 && cols == NR) {
        std::memcpy(dst + k * NR, src + k * m.rs, sizeof(T) * NR);
        continue;
      }
      for (int j = 0; j < cols; ++j) dst[k * NR + j] = src[k * m.rs + j * m.cs];
      for (int j = cols; j < NR; ++j) dst[k * NR + j] = T(0);
    }
  }
}

// ------------------------------------------------------------------------------------------
// The micro-kernel
// ------------------------------------------------------------------------------------------
// The distance between C's columns in a run: the Op's c_stride where it has one, else 1 (a
// constant, so the Ops without one compile to what they did before it existed).
template <class Op>
PYKERN_INLINE auto column_stride(const Op& op, int) -> decltype(int64_t(op.c_stride)) { return op.c_stride; }
template <class Op>
PYKERN_INLINE constexpr int64_t column_stride(const Op&, long) { return 1; }

#if PYKERN_X86
// An AVX-512 vector's lanes [lo, hi) as a mask, and the masked loads and stores of both element
// types (masked-off lanes are neither read nor written, nor can they fault).
PYKERN_INLINE unsigned lane_mask(int lo, int hi) { return ((1u << (hi - lo)) - 1u) << lo; }
PYKERN_TARGET_AVX512 PYKERN_INLINE f32x16 masked_load(const float* p, unsigned m) {
  return (f32x16)_mm512_maskz_loadu_ps(__mmask16(m), p);
}
PYKERN_TARGET_AVX512 PYKERN_INLINE f64x8 masked_load(const double* p, unsigned m) {
  return (f64x8)_mm512_maskz_loadu_pd(__mmask8(m), p);
}
PYKERN_TARGET_AVX512 PYKERN_INLINE void masked_store(float* p, unsigned m, f32x16 v) {
  _mm512_mask_storeu_ps(p, __mmask16(m), (__m512)v);
}
PYKERN_TARGET_AVX512 PYKERN_INLINE void masked_store(double* p, unsigned m, f64x8 v) {
  _mm512_mask_storeu_pd(p, __mmask8(m), (__m512d)v);
}

// The micro-kernel's tile into C where C holds its columns in runs shorter than the tile (conv2d:
// a tile across two images, a tap's rows of 13 outputs) or the tile is an edge one, on AVX-512:
// each run's part of each accumulator vector goes straight to C with a masked load and store
// (lane l of vector v lies at the run's start + v*W + l - its first column). The buffer's path
// below stores a run's elements past its whole vectors one at a time, and a row of 13 outputs
// has no whole vector. (A call, not inlined: the intrinsics need the AVX-512 target, which the
// generic micro-kernel lacks until it is inlined into its ISA's function; one call per tile.)
template <class B, class Op, class V, class T>
PYKERN_TARGET_AVX512 __attribute__((noinline)) void masked_tile(const Op& op, const T* tile, int64_t i0, int64_t j0,
                                                                bool first, bool epilogue, int mr, int nr) {
  constexpr int NV = B::NV, NR = B::NR, W = B::W;  // tile: the accumulators, MR x NR
  int64_t ldc = 0, run = 0;
  for (int j = 0; j < nr; j += int(run)) {
    T* c = op.c_run(i0, j0 + j, &ldc, &run);
    if (run > nr - j) run = nr - j;
    const int end = j + int(run);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const int lo = j > v * W ? j : v * W, hi = end < v * W + W ? end : v * W + W;
      if (lo >= hi) continue;
      const unsigned m = lane_mask(lo - v * W, hi - v * W);
      // Lane 0 of vector v, (v*W - j) elements from the run's start: before it, even before the
      // array, where the run starts inside the vector. Lanes before lo are masked off, never
      // touched, but a pointer outside its array is undefined behaviour in C++: the address is
      // computed as an integer and only made a pointer for the intrinsics.
      const uintptr_t base = reinterpret_cast<uintptr_t>(c) + uintptr_t(int64_t(v * W - j) * int64_t(sizeof(T)));
      for (int i = 0; i < mr; ++i) {
        T* p = reinterpret_cast<T*>(base + uintptr_t(int64_t(i) * ldc * int64_t(sizeof(T))));
        const V a = load<V>(tile + i * NR + v * W);
        V x = first ? a : masked_load(p, m) + a;
        if (epilogue) {
          x += op.epi.bias != nullptr ? op.epi.bias[i0 + i] : T(0);
          if (op.epi.relu) x = x < T(0) ? V{} : x;
        }
        masked_store(p, m, x);
      }
    }
  }
}
#endif

// ap: MR x kc micro-panel, k-major; bp: kc x NR, k-major; the tile's corner is C(i0, j0), of which
// mr x nr are real. first: the first KC block (C is written, not added to: it holds garbage
// before); last: the last one (the epilogue runs).
template <class B, class Op>
PYKERN_INLINE void micro_kernel(const Op& op, int64_t kc, const typename B::Elem* __restrict ap,
                                const typename B::Elem* __restrict bp, int64_t i0, int64_t j0, bool first, bool last,
                                int mr, int nr) {
  using T = typename B::Elem;
  using V = typename B::Vec;
  constexpr int MR = B::MR, NV = B::NV, NR = B::NR, W = B::W;
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = load<V>(bp + k * NR + j * W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const T av = ap[k * MR + i];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
    }
  }
  const bool epilogue = last && op.epi.any();
  int64_t ldc = 0, run = 0;
  T* c = op.c_run(i0, j0, &ldc, &run);
  const int64_t cs = column_stride(op, 0);
  if (mr == MR && nr == NR && run >= NR && cs == 1) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const T bias = op.epi.bias != nullptr ? op.epi.bias[i0 + i] : T(0);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        T* p = c + i * ldc + j * W;
        V v = first ? acc[i][j] : load<V>(p) + acc[i][j];
        if (epilogue) {
          v += bias;
          if (op.epi.relu) v = v < T(0) ? V{} : v;
        }
        store<V>(p, v);
      }
    }
    return;
  }
  // An edge tile (only its mr x nr corner is real), or one whose columns C holds in pieces
  // (conv2d: two images) or strided: through a buffer, one run of columns at a time. (The
  // accumulators are stored to it, never passed by address: that kept them out of registers in
  // the fast path above: the 56x56 conv2d ran 1-4% slower, one thread.)
  alignas(64) T tile[MR * NR];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) store<V>(tile + i * NR + j * W, acc[i][j]);
#if PYKERN_X86
  if constexpr (std::is_same<V, f32x16>::value || std::is_same<V, f64x8>::value) {
    if (cs == 1) {
      masked_tile<B, Op, V, T>(op, tile, i0, j0, first, epilogue, mr, nr);
      return;
    }
  }
#endif
  for (int j = 0; j < nr; j += int(run)) {
    if (j > 0) c = op.c_run(i0, j0 + j, &ldc, &run);
    if (run > nr - j) run = nr - j;
    // At unit stride a run's whole vectors go as vectors (the same operations on each element):
    // on the 7x7 conv2d nearly every tile holds two images' columns, and these stores one
    // element at a time were 15% of its time (perf).
    const int whole = cs == 1 ? int(run) / W * W : 0;
    for (int i = 0; i < mr; ++i) {
      const T bias = op.epi.bias != nullptr ? op.epi.bias[i0 + i] : T(0);
      T* p = c + i * ldc;
      const T* t = tile + i * NR + j;
      for (int u = 0; u < whole; u += W) {
        V v = first ? load<V>(t + u) : load<V>(p + u) + load<V>(t + u);
        if (epilogue) {
          v += bias;
          if (op.epi.relu) v = v < T(0) ? V{} : v;
        }
        store<V>(p + u, v);
      }
      for (int u = whole; u < int(run); ++u) {
        T v = first ? t[u] : p[u * cs] + t[u];
        if (epilogue) {
          v += bias;
          if (op.epi.relu) v = v < T(0) ? T(0) : v;
        }
        p[u * cs] = v;
      }
    }
  }
}

// ------------------------------------------------------------------------------------------
// The loops around it
// ------------------------------------------------------------------------------------------
// How one call runs the loops, decided per call (plan() below): the width of B's blocks, and
// whether all of A is packed once up front (a_all) instead of block by block in every jc step.
template <class T>
struct Plan {
  int64_t nc;          // columns per B block: NC, or fewer where A is packed up front
  const T* a_all;      // null, or every (ic, pc) block of A packed: block (ic, pc) at a_all + pc*m_pad + ic*kc
  int64_t m_pad;       // M rounded up to MR (a_all's row count)
  const T* a_block(int64_t ic, int64_t pc, int64_t kc) const { return a_all + pc * m_pad + ic * kc; }
};

// The ic block [ic, ic + mc) x columns [j0, j1) (j0 a multiple of NR) of one (jc, pc) step, B's
// block already packed in bp: A's block packed into ap (or taken from the plan's a_all), then
// the jr and ir loops.
template <class B, class Op>
PYKERN_INLINE void block_body(const Op& op, const Plan<typename B::Elem>& plan, int64_t jc, int64_t nc, int64_t pc,
                              int64_t kc, int64_t ic, int64_t mc, int64_t j0, int64_t j1, typename B::Elem* ap,
                              const typename B::Elem* bp) {
  const typename B::Elem* a = ap;
  if (plan.a_all != nullptr)
    a = plan.a_block(ic, pc, kc);
  else
    op.template pack_a<B>(ic, mc, pc, kc, ap);
  const bool first = pc == 0, last = pc + kc == op.K;
  for (int64_t jr = j0; jr < j1; jr += B::NR) {
    const int nr = int(nc - jr < B::NR ? nc - jr : B::NR);
    for (int64_t ir = 0; ir < mc; ir += B::MR) {
      const int mr = int(mc - ir < B::MR ? mc - ir : B::MR);
      micro_kernel<B>(op, kc, a + ir * kc, bp + jr * kc, ic + ir, jc + jr, first, last, mr, nr);
    }
  }
}

// B's panels [p0, p1) (in NR-column units) of the (jc, pc) block: threads pack shares of it.
template <class B, class Op>
PYKERN_INLINE void pack_b_panels(const Op& op, int64_t pc, int64_t kc, int64_t jc, int64_t nc, int64_t p0, int64_t p1,
                                 typename B::Elem* bp) {
  const int64_t lo = p0 * B::NR, hi = p1 * B::NR < nc ? p1 * B::NR : nc;
  if (hi > lo) op.template pack_b<B>(pc, kc, jc + lo, hi - lo, bp + lo * kc);
}

// A's blocks number [b0, b1) (in (pc, ic) order) into the plan's a_all: threads pack shares.
template <class B, class Op>
PYKERN_INLINE void pack_a_blocks(const Op& op, int64_t m_pad, int64_t b0, int64_t b1, typename B::Elem* a_all) {
  const int64_t ic_blocks = (op.M + B::MC - 1) / B::MC;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t pc = b / ic_blocks * B::KC, ic = b % ic_blocks * B::MC;
    const int64_t kc = op.K - pc < B::KC ? op.K - pc : B::KC, mc = op.M - ic < B::MC ? op.M - ic : B::MC;
    op.template pack_a<B>(ic, mc, pc, kc, a_all + pc * m_pad + ic * kc);
  }
}

// The five loops (BLIS's jc, pc, ic, jr, ir) on one thread. ap, bp: B::a_elems and KC * plan.nc
// of scratch. K = 0 still runs the epilogue over C (zeros, then bias and ReLU): one pc step of
// kc 0.
template <class B, class Op>
PYKERN_INLINE void serial_body(const Op& op, const Plan<typename B::Elem>& plan, typename B::Elem* ap,
                               typename B::Elem* bp) {
  for (int64_t jc = 0; jc < op.N; jc += plan.nc) {
    const int64_t nc = op.N - jc < plan.nc ? op.N - jc : plan.nc;
    int64_t pc = 0;
    do {
      const int64_t kc = op.K - pc < B::KC ? op.K - pc : B::KC;
      op.template pack_b<B>(pc, kc, jc, nc, bp);
      for (int64_t ic = 0; ic < op.M; ic += B::MC) {
        const int64_t mc = op.M - ic < B::MC ? op.M - ic : B::MC;
        block_body<B>(op, plan, jc, nc, pc, kc, ic, mc, 0, nc, ap, bp);
      }
      pc += kc;
    } while (pc < op.K);
  }
}

// One compiled path: a blocking compiled for one ISA, for one Op type, as functions (each a
// target function: a lambda or std::thread body never inherits a target, so threads call these),
// and its sizes.
template <class T, class Op>
struct Path {
  void (*run)(const Op& op, const Plan<T>& plan, T* ap, T* bp);  // the whole product, one thread
  void (*pack_a)(const Op& op, int64_t m_pad, int64_t b0, int64_t b1, T* a_all);
  void (*pack_b)(const Op& op, int64_t pc, int64_t kc, int64_t jc, int64_t nc, int64_t p0, int64_t p1, T* bp);
  void (*block)(const Op& op, const Plan<T>& plan, int64_t jc, int64_t nc, int64_t pc, int64_t kc, int64_t ic,
                int64_t mc, int64_t j0, int64_t j1, T* ap, const T* bp);
  size_t a_elems;
  int mr, nr, mc, kc, nc;
};

// path_<isa><B, Op>(): the Path of blocking B compiled for that ISA.
#define PYKERN_GEMM_PATH(isa, target)                                                                         \
  template <class B, class Op>                                                                                \
  target void run_##isa(const Op& op, const Plan<typename B::Elem>& plan, typename B::Elem* ap,                \
                        typename B::Elem* bp) {                                                               \
    serial_body<B>(op, plan, ap, bp);                                                                         \
  }                                                                                                           \
  template <class B, class Op>                                                                                \
  target void pack_a_##isa(const Op& op, int64_t m_pad, int64_t b0, int64_t b1, typename B::Elem* a_all) {     \
    pack_a_blocks<B>(op, m_pad, b0, b1, a_all);                                                                \
  }                                                                                                           \
  template <class B, class Op>                                                                                \
  target void pack_b_##isa(const Op& op, int64_t pc, int64_t kc, int64_t jc, int64_t nc, int64_t p0, int64_t p1, \
                           typename B::Elem* bp) {                                                            \
    pack_b_panels<B>(op, pc, kc, jc, nc, p0, p1, bp);                                                          \
  }                                                                                                           \
  template <class B, class Op>                                                                                \
  target void block_##isa(const Op& op, const Plan<typename B::Elem>& plan, int64_t jc, int64_t nc, int64_t pc, \
                          int64_t kc, int64_t ic, int64_t mc, int64_t j0, int64_t j1, typename B::Elem* ap,    \
                          const typename B::Elem* bp) {                                                       \
    block_body<B>(op, plan, jc, nc, pc, kc, ic, mc, j0, j1, ap, bp);                                           \
  }                                                                                                           \
  template <class B, class Op>                                                                                \
  Path<typename B::Elem, Op> path_##isa() {                                                                   \
    return {run_##isa<B, Op>, pack_a_##isa<B, Op>, pack_b_##isa<B, Op>, block_##isa<B, Op>, B::a_elems,      \
            B::MR,          B::NR,               B::MC,               B::KC,             B::NC};               \
  }
PYKERN_GEMM_PATH(baseline, )
#if PYKERN_X86
PYKERN_GEMM_PATH(avx2, PYKERN_TARGET_AVX2)
PYKERN_GEMM_PATH(avx512, PYKERN_TARGET_AVX512)
#endif
#undef PYKERN_GEMM_PATH

// The "blocked" rung: the scalar 4 x 8 micro-kernel, baseline ISA.
template <class T, class Op>
Path<T, Op> blocked_path() { return path_baseline<typename Blockings<T>::Blocked, Op>(); }

// The "simd" rung: the active ISA's micro-kernel.
template <class T, class Op>
Path<T, Op> simd_path() {
#if PYKERN_X86
  switch (active_isa()) {
    case Isa::avx512: return path_avx512<typename Blockings<T>::Avx512, Op>();
    case Isa::avx2: return path_avx2<typename Blockings<T>::Avx2, Op>();
    default: break;
  }
#endif
  return path_baseline<typename Blockings<T>::Base, Op>();
}

// ------------------------------------------------------------------------------------------
// Drivers
// ------------------------------------------------------------------------------------------
// A packed once up front when it is small: then B's blocks can be narrow enough to stay in L2
// between being packed and being read (kL2BlockBytes), where a BLIS-size block (KC x NC,
// megabytes) goes to L3 and back, with no A repacking per block. What that buys is largest where
// A is short (conv2d's Kg rows, 64-512): B's packing is then shared by few rows. Measured (matmul
// simd, one thread, CPU time while other work loaded the machine): M, N, K = 128, 6272, 1152 (the
// 28x28x128 conv2d as a GEMM) 81 -> 91 GFLOP/s, 64, 25088, 576 70 -> 79; 1024^3 unchanged (97).
// One thread packs A up front only below kPrepackBytes: the 7x7x512 conv2d (A: 9.4 MB of
// filters, 392 columns) ran 21 ms the BLIS way and 26 ms prepacked. Threads do up to the L3's size
// (kPrepackThreadedBytes), where prepacking lets each pack its own B (run_parallel_prepacked), but
// past kPrepackBytes only where each thread's column tile holds kMinTilePanels panels or more: a
// tile meets every A block once, so A streams from L3 once per tile. matmul 2048^3 on 2 threads
// (A: 16 MB, 128-column tiles) ran 0.97x np.matmul prepacked and 0.80x sharing B the BLIS way
// (bench_cpu_ladder.py); the 7x7x512 layer (one 32-column panel a tile) 13.3-16 ms prepacked and
// 11.7-12.5 the BLIS way.
constexpr size_t kPrepackBytes = size_t(8) << 20;
constexpr size_t kPrepackThreadedBytes = size_t(32) << 20;
constexpr int64_t kMinTilePanels = 4;
constexpr size_t kL2BlockBytes = size_t(384) << 10;

// The plan of one call (a_all still to be packed into `a_all` when prepack is true).
template <class T, class Op>
Plan<T> plan(const Op& op, const Path<T, Op>& p, bool* prepack, size_t limit = kPrepackBytes) {
  Plan<T> pl{p.nc, nullptr, (op.M + p.mr - 1) / p.mr * p.mr};
  *prepack = op.K > 0 && size_t(pl.m_pad) * size_t(op.K) * sizeof(T) <= limit;
  if (*prepack) {
    int64_t nc = int64_t(kL2BlockBytes / (sizeof(T) * size_t(p.kc))) / p.nr * p.nr;
    if (nc < p.nr) nc = p.nr;
    if (nc < pl.nc) pl.nc = nc;
    // Evened out: as many blocks, of equal width, so no last block of a few columns pays a
    // whole pass over A (the 7x7x512 conv2d's 392 columns: 384 + 8 took 27 ms, 224 + 168 21).
    const int64_t blocks = (op.N + pl.nc - 1) / pl.nc;
    if (blocks > 0) pl.nc = ((op.N + blocks - 1) / blocks + p.nr - 1) / p.nr * p.nr;
  }
  return pl;
}

// The number of A blocks in (pc, ic) order (pack_a_blocks' numbering).
template <class T, class Op>
int64_t a_blocks(const Op& op, const Path<T, Op>& p) {
  return ((op.K + p.kc - 1) / p.kc) * ((op.M + p.mc - 1) / p.mc);
}

// The scratch of one-thread products, laid out as the prepacked A, A's block, B's block (each
// starting on a 64-byte line: Scratch's alignment carries over).
struct SerialScratch {
  size_t a_all, a, b;
  size_t total() const { return a_all + a + b; }
};
template <class T>
SerialScratch serial_layout(size_t a_all, size_t a, size_t b) {
  constexpr size_t line = 64 / sizeof(T);
  return {(a_all + line - 1) / line * line, (a + line - 1) / line * line, b};
}
// For products of M rows and at most k_most terms: room for A up front for any k <= k_most whose
// plan packs it so, and for the widest B block of either plan.
template <class T, class Op>
SerialScratch serial_scratch(const Path<T, Op>& p, int64_t M, int64_t k_most) {
  const size_t m_pad = size_t((M + p.mr - 1) / p.mr * p.mr), most = kPrepackBytes / sizeof(T);
  const size_t a_all = m_pad * size_t(k_most) < most ? m_pad * size_t(k_most) : most / m_pad * m_pad;
  return serial_layout<T>(a_all, p.a_elems, size_t(p.kc) * size_t(p.nc));
}

// One thread in `scratch` (s.total() elements of serial_scratch(p, op.M, k_most >= op.K)): for
// callers that run many products on threads of their own and allocate before they start.
template <class T, class Op>
void run_serial_in(const Op& op, const Path<T, Op>& p, T* scratch, const SerialScratch& s) {
  bool prepack;
  Plan<T> pl = plan(op, p, &prepack);
  if (prepack) {
    p.pack_a(op, pl.m_pad, 0, a_blocks(op, p), scratch);
    pl.a_all = scratch;
  }
  p.run(op, pl, scratch + s.a_all, scratch + s.a_all + s.a);
}

// One thread, with this call's own scratch (A up front only where its plan packs it so).
template <class T, class Op>
void run_serial(const Op& op, const Path<T, Op>& p) {
  bool prepack;
  const Plan<T> pl = plan(op, p, &prepack);
  const SerialScratch s = serial_layout<T>(prepack ? size_t(pl.m_pad) * size_t(op.K) : 0, p.a_elems,
                                           size_t(p.kc) * size_t(pl.nc));
  Scratch<T> scratch(s.total());
  run_serial_in(op, p, scratch.p, s);
}

// A reusable barrier for the threads of one call (C++17 has no std::barrier). It spins, then
// yields: a thread that slept on a condition variable would wait for the scheduler to preempt
// whatever else runs on its core (milliseconds on a busy machine), several times per call.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    const unsigned gen = gen_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      arrived_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    spin_until([&] { return gen_.load(std::memory_order_acquire) != gen; });
  }

 private:
  const int n_;
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> gen_{0};
};

// The column tile of run_parallel_prepacked: about eight a thread, whole NR panels, at most the
// plan's B block.
template <class T, class Op>
int64_t prepacked_tile(const Op& op, const Path<T, Op>& p, const Plan<T>& pl, int parts) {
  const int64_t want = 8 * int64_t(parts);
  int64_t tile = (op.N + want - 1) / want;
  tile = (tile + p.nr - 1) / p.nr * p.nr;
  return tile > pl.nc ? pl.nc : tile;
}

// With A packed up front (plan()), threads share nothing but A: C is cut into column tiles (whole
// NR panels, at most the plan's B block, about eight a thread) taken from a counter, and each
// thread packs its own tile's B panels and runs every row block over them. Sharing B's packing
// instead (run_parallel below) makes each core read the panels the other packed, from the other
// core's L2, for every micro-kernel: measured on the 56x56x64 conv2d (N=8), 2 threads ran no
// faster than one that way. Each output is summed by one thread in the one-thread order.
template <class T, class Op>
void run_parallel_prepacked(const Op& op, const Path<T, Op>& p, Plan<T> pl, int parts) {
  const int64_t tile = prepacked_tile(op, p, pl, parts);
  const int64_t tiles = (op.N + tile - 1) / tile;
  const int64_t a_count = a_blocks(op, p);
  Scratch<T> a_all(size_t(pl.m_pad) * size_t(op.K));
  pl.a_all = a_all.p;
  Scratch<T> own_b(size_t(p.kc) * size_t(tile) * size_t(parts));  // allocated here: a thread never throws
  // A's blocks and C's tiles both come from counters, and a part waits only for blocks that
  // another part has taken (never for a part to arrive): the parts are optional
  // (parallel_optional), so the caller alone does everything when no pool thread is awake in time.
  std::atomic<int64_t> next{0}, next_a{0}, packed{0};
  parallel_optional(parts, [&](int part, int) {
    for (int64_t blk; (blk = next_a.fetch_add(1)) < a_count;) {
      p.pack_a(op, pl.m_pad, blk, blk + 1, a_all.p);
      packed.fetch_add(1, std::memory_order_release);
    }
    spin_until([&] { return packed.load(std::memory_order_acquire) >= a_count; });
    T* bp = own_b.p + size_t(p.kc) * size_t(tile) * size_t(part);
    for (int64_t t; (t = next.fetch_add(1)) < tiles;) {
      const int64_t jc = t * tile, nc = op.N - jc < tile ? op.N - jc : tile;
      int64_t pc = 0;
      do {
        const int64_t kc = op.K - pc < p.kc ? op.K - pc : p.kc;
        p.pack_b(op, pc, kc, jc, nc, 0, (nc + p.nr - 1) / p.nr, bp);
        for (int64_t ic = 0; ic < op.M; ic += p.mc) {
          const int64_t mc = op.M - ic < p.mc ? op.M - ic : p.mc;
          p.block(op, pl, jc, nc, pc, kc, ic, mc, 0, nc, nullptr, bp);
        }
        pc += kc;
      } while (pc < op.K);
    }
  });
}

// `parts` threads over the BLIS loops where A is too big to pack up front: per (jc, pc) step they pack shares of B's block into one
// shared buffer, wait, then take tiles of C (an ic row block x a range of NR-column panels) from
// a counter, each packing its own A block, and wait again before B's buffer is refilled. Taking
// tiles as they come, not a fixed share, keeps every thread busy when another process takes a
// core for a while; about eight tiles a thread (four measured 0.85-0.91x np.matmul at 512 on
// 2 threads, eight 0.93). Row blocks are at most MC rows; column ranges split C only when it has
// too few row blocks (a wide, short C). Each output is still summed by one thread in the
// one-thread order.
template <class T, class Op>
void run_parallel(const Op& op, const Path<T, Op>& p, int parts) {
  bool prepack;
  Plan<T> pl = plan(op, p, &prepack, kPrepackThreadedBytes);
  if (prepack && (size_t(pl.m_pad) * size_t(op.K) * sizeof(T) <= kPrepackBytes ||
                  prepacked_tile(op, p, pl, parts) >= kMinTilePanels * p.nr)) {
    run_parallel_prepacked(op, p, pl, parts);
    return;
  }
  if (prepack) pl = plan(op, p, &prepack);  // the BLIS blocking (A is over kPrepackBytes: not prepacked)
  const int64_t mr = p.mr, want = 8 * int64_t(parts);
  int64_t rows = (op.M + want - 1) / want;
  rows = (rows + mr - 1) / mr * mr;
  if (rows > p.mc) rows = p.mc;
  if (rows < mr) rows = mr;
  const int64_t row_blocks = (op.M + rows - 1) / rows;
  const int64_t col_blocks = row_blocks >= want ? 1 : (want + row_blocks - 1) / row_blocks;
  const int64_t blocks = row_blocks * col_blocks;
  const int64_t steps_n = (op.N + pl.nc - 1) / pl.nc, steps_k = op.K == 0 ? 1 : (op.K + p.kc - 1) / p.kc;
  Scratch<T> shared_b(size_t(p.kc) * size_t(pl.nc));
  Scratch<T> own_a(p.a_elems * size_t(parts));  // allocated here: a thread never throws bad_alloc
  std::vector<std::atomic<int64_t>> next(size_t(steps_n * steps_k));
  for (auto& n : next) n = 0;
  Barrier barrier(parts);
  const bool ran = parallel_all(parts, [&](int part, int np) {
    T* ap = own_a.p + p.a_elems * size_t(part);
    int64_t step = 0;
    for (int64_t jc = 0; jc < op.N; jc += pl.nc) {
      const int64_t nc = op.N - jc < pl.nc ? op.N - jc : pl.nc;
      const int64_t panels = (nc + p.nr - 1) / p.nr;
      int64_t pc = 0;
      do {
        const int64_t kc = op.K - pc < p.kc ? op.K - pc : p.kc;
        p.pack_b(op, pc, kc, jc, nc, panels * part / np, panels * (part + 1) / np, shared_b.p);
        barrier.wait();
        for (int64_t b; (b = next[size_t(step)].fetch_add(1)) < blocks;) {
          const int64_t ic = b / col_blocks * rows, mc = op.M - ic < rows ? op.M - ic : rows;
          const int64_t cb = b % col_blocks, cuts = col_blocks < panels ? col_blocks : panels;
          if (cb >= cuts) continue;  // fewer panels than column blocks: these have none
          const int64_t j0 = panels * cb / cuts * p.nr, j1 = panels * (cb + 1) / cuts * p.nr;
          p.block(op, pl, jc, nc, pc, kc, ic, mc, j0, j1 < nc ? j1 : nc, ap, shared_b.p);
        }
        barrier.wait();
        pc += kc;
        ++step;
      } while (pc < op.K);
    }
  });
  if (!ran) run_serial(op, p);  // no threads to be had: the same sums on this one
}

// Below this many flops a thread costs more than it saves (starting one: ~20-50 us).
constexpr double kFlopsPerThread = 4e6;
// The same on a shared OpenMP runtime (sharing_openmp(): torch's threads, awake between ops): the
// small CNN's first Linear (32 x 64 x 512 and its two gradients, 2 MFLOP each) took 30-36 us on
// one thread and 22-25 on two, each beside a torch op as in a training step.
constexpr double kFlopsPerSharedThread = 5e5;

// The threads a product of this size pays for, at most `threads`.
inline int threads_for(double flops, int threads) {
  const double most = flops / (sharing_openmp() ? kFlopsPerSharedThread : kFlopsPerThread);
  return most < 1 ? 1 : most < threads ? int(most) : threads;
}

// The "threaded" rung: simd on as many threads as the size pays for.
template <class T, class Op>
void run_threaded(const Op& op, int threads) {
  const int parts = threads_for(2.0 * double(op.M) * double(op.N) * double(op.K), threads);
  if (parts <= 1)
    run_serial(op, simd_path<T, Op>());
  else
    run_parallel(op, simd_path<T, Op>(), parts);
}

}  // namespace gemm
}  // namespace cpu
}  // namespace pykern
