// conv2d on the CPU, compiled (torch.nn.functional.conv2d semantics, pykern/ops/conv2d.py):
// y = act(conv(x, w) + bias), NCHW in and out, any stride / padding / dilation / groups,
// float32 and float64, the fused bias + ReLU epilogue of the CUDA rungs.
//
// The ladder (the table at the bottom), each rung one technique more than the one before:
//   direct         the seven loops: each output's taps summed in (c, r, s) order, a padded tap
//                  read as a zero, then bias, then ReLU; plain scalar C++, baseline ISA
//   direct_blocked register blocking: a KB output channels x QB output pixels accumulator tile
//                  in vector registers (per ISA), each x vector loaded once per tile and tap and
//                  each filter tap broadcast; x padded and split by stride phase per image and
//                  group first, so every tap of a tile is QB contiguous elements whatever the
//                  stride / dilation; pixels run across output rows (narrow images fill the
//                  lanes); depthwise-like groups (Kg small) take a 1-channel, wider tile; one thread
//   implicit_gemm  per group, the GEMM y_g (Kg x N*P*Q) = w_g (Kg x CRS) * im2col(x_g) (CRS x N*P*Q)
//                  on matmul's packed loops and SIMD micro-kernel (kernels/cpu/gemm.h): the im2col
//                  operand is never stored; each KC x NR panel of it is gathered from x as the
//                  loops pack it (one contiguous copy per output-row run at stride 1), and the
//                  micro-kernel writes y in NCHW directly, bias and ReLU applied after the last
//                  KC block; one thread
//   threaded       implicit_gemm with the loops shared by threads (gemm.h run_parallel: the
//                  gathered panels packed once by all of them, tiles of output channels x pixels
//                  taken from a counter), as many threads as the size pays for
//
// Accuracy (error_model "terms"): every output sums its own w * x terms in the input dtype, taps
// in (c, r, s) order (the GEMM rungs: in order within a KC block, and the blocks in order), then
// the bias, then ReLU; threads split outputs, never a sum. Spatial padding is read or packed as
// zeros that multiply like values (0 * Inf = NaN reaches exactly the outputs whose window holds
// the Inf, as in torch's float64 path; oneDNN's float32 path skips padded taps, see
// bench/conv2d_padding_cost.py). Lanes and channels a tile computes past the real ones are discarded.
#include <optional>

#include "conv.h"
#include "gemm.h"

namespace pykern {
namespace cpu {
namespace {

using gemm::Strided;

// ------------------------------------------------------------------------------------------
// Rung 1: direct
// ------------------------------------------------------------------------------------------
// The spec's loops as written: a tap outside the input reads a zero, which multiplies like one
// (0 * Inf = NaN, as in the spec and torch).
template <class T>
void direct(const ConvGeom& g, const T* x, const T* w, const T* bias, T* y, bool relu) {
  // x: (N, C, H, W), w: (K, Cg, R, S), bias: (K,) or null, y: (N, K, P, Q)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t k = 0; k < g.K; ++k) {
      const T* xg = x + (n * g.C + k / g.Kg * g.Cg) * g.H * g.W;  // k's group of image n: (Cg, H, W)
      const T* wk = w + k * g.CRS;                                 // (Cg, R, S)
      T* yk = y + (n * g.K + k) * g.PQ;                            // (P, Q)
      for (int64_t p = 0; p < g.P; ++p)
        for (int64_t q = 0; q < g.Q; ++q) {
          T acc = T(0);
          for (int64_t c = 0; c < g.Cg; ++c)
            for (int64_t r = 0; r < g.R; ++r) {
              const int64_t ih = p * g.sh - g.ph + r * g.dh;
              for (int64_t s = 0; s < g.S; ++s) {
                const int64_t iw = q * g.sw - g.pw + s * g.dw;
                const bool inside = uint64_t(ih) < uint64_t(g.H) && uint64_t(iw) < uint64_t(g.W);
                acc += wk[(c * g.R + r) * g.S + s] * (inside ? xg[(c * g.H + ih) * g.W + iw] : T(0));
              }
            }
          if (bias != nullptr) acc += bias[k];
          yk[p * g.Q + q] = relu && acc < T(0) ? T(0) : acc;
        }
    }
}

// ------------------------------------------------------------------------------------------
// Rung 2: direct_blocked
// ------------------------------------------------------------------------------------------
// The register tile of one ISA, as data: KB output channels x NV vectors of W output pixels
// (QB = NV * W), the accumulators held in KB * NV vector registers. REGS: the ISA's vector
// registers (16 for SSE2 and AVX2, 32 for AVX-512).
template <class T, class V, int KB_, int NV_, int REGS>
struct DirectBlocking {
  using Elem = T;
  using Vec = V;
  static constexpr int W = int(sizeof(V) / sizeof(T));
  static constexpr int KB = KB_, NV = NV_, QB = NV_ * W;
  // A tile that spills its accumulators to the stack loses what register blocking buys. Live per
  // tap: the accumulators, the tap's NV x vectors (only when KB > 1 reuses them; with KB = 1 each
  // feeds one FMA as its memory operand) and the broadcast filter tap.
  static_assert(KB * NV + (KB > 1 ? NV : 0) + 1 <= REGS, "the tile must fit in the ISA's vector registers");
  // An FMA's result is ready ~4 cycles later on each of 2 units: fewer than 8 independent
  // accumulators leave the units idle.
  static_assert(KB * NV >= 8, "at least 8 independent accumulator chains to cover the FMA latency");
};

// Per ISA and dtype: Wide, for groups with several output channels (each x vector serves KB of
// them), and Narrow, for depthwise-like groups (Kg = 1: nothing to share an x vector with, so the
// tile is all pixels and the loads go straight into the FMAs). Baseline (SSE2) has no FMA: the
// product takes a register, hence its smaller wide tile.
template <class T, Isa I>
struct DirectBlockings;
template <>
struct DirectBlockings<float, Isa::baseline> {
  using Wide = DirectBlocking<float, f32x4, 4, 2, 15>;
  using Narrow = DirectBlocking<float, f32x4, 1, 8, 15>;
};
template <>
struct DirectBlockings<double, Isa::baseline> {
  using Wide = DirectBlocking<double, f64x2, 4, 2, 15>;
  using Narrow = DirectBlocking<double, f64x2, 1, 8, 15>;
};
template <>
struct DirectBlockings<float, Isa::avx2> {
  using Wide = DirectBlocking<float, f32x8, 4, 3, 16>;
  using Narrow = DirectBlocking<float, f32x8, 1, 8, 16>;
};
template <>
struct DirectBlockings<double, Isa::avx2> {
  using Wide = DirectBlocking<double, f64x4, 4, 3, 16>;
  using Narrow = DirectBlocking<double, f64x4, 1, 8, 16>;
};
template <>
struct DirectBlockings<float, Isa::avx512> {
  using Wide = DirectBlocking<float, f32x16, 6, 4, 32>;
  using Narrow = DirectBlocking<float, f32x16, 1, 8, 32>;
};
template <>
struct DirectBlockings<double, Isa::avx512> {
  using Wide = DirectBlocking<double, f64x8, 6, 4, 32>;
  using Narrow = DirectBlocking<double, f64x8, 1, 8, 32>;
};

// One image's group of input channels, zero-padded and split by stride phase (space to depth):
// padded element (c, hp, wp) of x (hp = ih + ph, wp = iw + pw) lies at
//   c * chan + ((hp % sh) * Fw + wp % sw) * plane + (hp / sh) * Wph + wp / sw.
// Output (p, q)'s tap (r, s) reads padded (p*sh + r*dh, q*sw + s*dw), which is tap_offset(r, s) +
// v with v = p * Wph + q: numbering the outputs by these "virtual pixels" (Wph >= Q a row, the
// last Wph - Q of each row computed and discarded) makes every tap of a run of outputs one
// contiguous run of the split input, at any stride, dilation and padding, and lets a tile run on
// into the next output row, so a narrow image still fills the vector lanes.
struct Split {
  int64_t Fh, Fw;        // the phases a padded row / column index takes: min(stride, padded size)
  int64_t Hph, Wph;      // a phase's rows and columns: ceil(padded size / stride)
  int64_t plane, chan;   // elements in a phase; in a channel (Fh * Fw phases)
  int64_t elems;         // in the buffer, with the slack the last tile reads past the last channel

  Split(const ConvGeom& g, int64_t tile) {
    const int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw;
    Fh = g.sh < Hp ? g.sh : Hp;
    Fw = g.sw < Wp ? g.sw : Wp;
    Hph = (Hp + g.sh - 1) / g.sh;
    Wph = (Wp + g.sw - 1) / g.sw;
    plane = Hph * Wph;
    chan = Fh * Fw * plane;
    // A tile starting below P * Wph reads at most tap_offset + v < chan + Wph + tile of a channel.
    elems = g.Cg * chan + Wph + tile;
  }
  int64_t tap_offset(const ConvGeom& g, int64_t r, int64_t s) const {
    const int64_t hr = r * g.dh, ws = s * g.dw;  // < the padded size: the geometry's rule
    return ((hr % g.sh) * Fw + ws % g.sw) * plane + hr / g.sh * Wph + ws / g.sw;
  }
};

// dst[0, n) = src[0, n) in vectors, the last one overlapping the one before it: rows are short
// (a depthwise layer's are 7-56 elements), and a libc memcpy call per row was a third of its time
// (perf). The empty asm keeps GCC from turning the loops back into memcpy calls
// (-ftree-loop-distribute-patterns).
template <class V, class T>
PYKERN_INLINE void copy_row(T* __restrict dst, const T* __restrict src, int64_t n) {
  constexpr int W = int(sizeof(V) / sizeof(T));
  if (n < W) {
    for (int64_t i = 0; i < n; ++i) {
      asm("");
      dst[i] = src[i];
    }
    return;
  }
  for (int64_t i = 0; i + W < n; i += W) {
    asm("");
    gemm::store<V>(dst + i, gemm::load<V>(src + i));
  }
  gemm::store<V>(dst + n - W, gemm::load<V>(src + n - W));
}

// Copies x's values into their places in xs. The places of padding, of the phases' ragged ends
// and of the slack are the same for every image and group: xs is zeroed once, and they keep it.
template <class V, class T>
PYKERN_INLINE void split_input(const ConvGeom& g, const Split& sp, const T* xg, T* xs) {
  // xg: the group's channels of one image, (Cg, H, W); xs: Split's layout
  const int64_t phase0 = g.pw % g.sw, col0 = g.pw / g.sw;  // where wp = pw (iw = 0) lies
  for (int64_t c = 0; c < g.Cg; ++c)
    // hp = ih + ph = row * sh + rphase, stepped without a division per row (a depthwise layer
    // splits a few dozen rows a channel)
    for (int64_t ih = 0, rphase = g.ph % g.sh, row = g.ph / g.sh; ih < g.H; ++ih) {
      T* dst = xs + c * sp.chan + rphase * sp.Fw * sp.plane + row * sp.Wph;
      if (++rphase == g.sh) {
        rphase = 0;
        ++row;
      }
      const T* src = xg + (c * g.H + ih) * g.W;  // (W,)
      if (g.sw == 1) {
        copy_row<V>(dst + g.pw, src, g.W);
        continue;
      }
      int64_t phase = phase0, col = col0;
      for (int64_t iw = 0; iw < g.W; ++iw) {
        dst[phase * sp.plane + col] = src[iw];
        if (++phase == g.sw) {
          phase = 0;
          ++col;
        }
      }
    }
}

// Every image's channels zero-padded and split by stride phase, in Split's layout one channel
// after another (channel c of image n at (n * C + c) * chan), for the implicit GEMM's gathers:
// there every tap of a run of outputs is one contiguous run, at any stride. At stride 1 that
// layout is PaddedPlanes' (x itself unpadded). None (p null) where the copy would cost more than
// PaddedPlanes allows (kPadGrowth times x, plus 2^20 elements): the gathers then clip each run.
template <class T>
struct SplitPlanes {
  Split sp;
  std::optional<PaddedPlanes<T>> padded;  // stride 1
  Scratch<T> buf;                         // stride > 1
  const T* p = nullptr;

  SplitPlanes(const ConvGeom& g, const T* x, int threads)
      : sp(g, 0), buf(!unit(g) && fits(g) ? size_t(g.N * g.C * sp.chan) : 0) {
    if (unit(g)) {
      p = padded.emplace(x, g.N * g.C, g.H, g.W, g.ph, g.ph, g.pw, g.pw, threads).p;
      return;
    }
    if (!fits(g)) return;
    using V = typename gemm::Blockings<T>::Base::Vec;  // copy_row's rows: any x86-64 (or arm64) runs it
    const int64_t parts_of = g.N * g.G, each = g.Cg * sp.chan;  // split_input: one image's group
    T* xs = buf.p;
    // Threads and chunks as PaddedPlanes' (for_chunks: the caller never waits for a late helper).
    const int64_t part_bytes = each * int64_t(sizeof(T));
    const bool threaded = parts_of * part_bytes >= PaddedPlanes<T>::kThreadedBytes;
    for_chunks(parts_of, (PaddedPlanes<T>::kChunkBytes + part_bytes - 1) / part_bytes, threaded ? threads : 1,
               [&](int64_t lo, int64_t hi) {
                 std::memset(xs + lo * each, 0, sizeof(T) * size_t((hi - lo) * each));
                 for (int64_t i = lo; i < hi; ++i) split_input<V>(g, sp, x + i * g.Cg * g.H * g.W, xs + i * each);
               });
    p = xs;
  }

 private:
  static bool unit(const ConvGeom& g) { return g.sh == 1 && g.sw == 1; }
  bool fits(const ConvGeom& g) const {
    return g.N * g.C * sp.chan <= PaddedPlanes<T>::kPadGrowth * g.N * g.C * g.H * g.W + (int64_t(1) << 20);
  }
};

// Where a tile's outputs go and what happens to them after their last term.
template <class T>
struct TileOut {
  T* y;            // output channel k0's plane of image n: (P, Q); channel k0 + kk at y + kk * PQ
  const T* bias;   // bias[k0]: (kn,), or null
  int kn;          // the tile's real channels (a group's last block may have fewer than KB)
  bool relu;
  // 1-channel tiles only: the channel's virtual plane (P * Wph, rounded up to whole tiles), which
  // takes whole vectors; its rows are copied to y after the last tile. (A depthwise output has
  // only R*S terms: storing a row-crossing vector lane by lane would cost more than its FMAs.)
  T* rows;
};

// An output after its last term: + bias, then ReLU as the spec's select (which keeps NaN). (A
// function, not a lambda: a lambda would not take the ISA wrapper's target.)
template <class V, class T>
PYKERN_INLINE V finish(V v, const TileOut<T>& out, int kk) {
  if (out.bias != nullptr) v += out.bias[kk];
  return out.relu ? (v < T(0) ? V{} : v) : v;
}

// One tile: channels [k0, k0 + kn) x virtual pixels [v0, v0 + QB) of one image's group. xs: the
// split input at v0; off: (R*S,) tap offsets; wp: the block's filters, (Cg*R*S, KB) taps-major,
// zero past kn.
template <class B>
PYKERN_INLINE void direct_tile(const ConvGeom& g, const Split& sp, const typename B::Elem* __restrict xs,
                               const int64_t* __restrict off, const typename B::Elem* __restrict wp,
                               const TileOut<typename B::Elem>& out, int64_t v0) {
  using T = typename B::Elem;
  using V = typename B::Vec;
  constexpr int KB = B::KB, NV = B::NV, W = B::W;
  const int64_t RS = g.R * g.S;
  V acc[KB][NV];
#pragma GCC unroll 32
  for (int kk = 0; kk < KB; ++kk)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[kk][j] = V{};
  for (int64_t c = 0; c < g.Cg; ++c) {
    const T* xc = xs + c * sp.chan;
    const T* wc = wp + c * RS * KB;
    for (int64_t t = 0; t < RS; ++t) {  // taps in (r, s) order
      const T* xt = xc + off[t];
      V xv[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) xv[j] = gemm::load<V>(xt + j * W);
#pragma GCC unroll 32
      for (int kk = 0; kk < KB; ++kk) {
        const T wv = wc[t * KB + kk];
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[kk][j] += wv * xv[j];
      }
    }
  }
  if constexpr (KB == 1) {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) gemm::store<V>(out.rows + v0 + j * W, finish(acc[0][j], out, 0));
    return;
  }
  // Each vector to its output row: straight when its W pixels are real columns of one row (or of
  // the plane, where rows have no discarded columns: Wph = Q, an unpadded 1x1 layer), lane by
  // lane when it holds a row's end (discarded columns, the start of the next row).
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    const int64_t vj = v0 + j * W;
    const int64_t p = vj / sp.Wph, q = vj - p * sp.Wph;
    if (p >= g.P) break;
    const bool whole = q + W <= g.Q || (sp.Wph == g.Q && vj + W <= g.PQ);
#pragma GCC unroll 32
    for (int kk = 0; kk < KB; ++kk) {
      if (kk >= out.kn) break;
      const V v = finish(acc[kk][j], out, kk);
      T* yk = out.y + kk * g.PQ;
      if (whole) {
        gemm::store<V>(yk + p * g.Q + q, v);
        continue;
      }
      alignas(64) T lanes[W];
      gemm::store<V>(lanes, v);
      for (int64_t u = 0, pu = p, qu = q; u < W; ++u, ++qu) {
        if (qu == sp.Wph) {
          qu = 0;
          if (++pu == g.P) break;
        }
        if (qu < g.Q) yk[pu * g.Q + qu] = lanes[u];
      }
    }
  }
}

// The whole convolution with tile B: filters packed once into (G, blocks, Cg*R*S, KB) panels,
// then per image and group: split the input, then every channel block x pixel tile.
template <class B>
PYKERN_INLINE void direct_blocked_with(const ConvGeom& g, const typename B::Elem* x, const typename B::Elem* w,
                                       const typename B::Elem* bias, typename B::Elem* y, bool relu) {
  using T = typename B::Elem;
  constexpr int KB = B::KB;
  const Split sp(g, B::QB);
  const int64_t blocks = (g.Kg + KB - 1) / KB, RS = g.R * g.S;
  Scratch<T> xs(size_t(sp.elems));
  std::memset(xs.p, 0, sizeof(T) * size_t(sp.elems));
  Scratch<T> wp(size_t(g.G * blocks * g.CRS * KB));
  for (int64_t grp = 0; grp < g.G; ++grp)
    for (int64_t b = 0; b < blocks; ++b) {
      T* dst = wp.p + (grp * blocks + b) * g.CRS * KB;
      for (int64_t t = 0; t < g.CRS; ++t)
        for (int kk = 0; kk < KB; ++kk) {
          const int64_t k = b * KB + kk;
          dst[t * KB + kk] = k < g.Kg ? w[(grp * g.Kg + k) * g.CRS + t] : T(0);
        }
    }
  std::vector<int64_t> off(size_t(RS > 0 ? RS : 1));
  for (int64_t r = 0; r < g.R; ++r)
    for (int64_t s = 0; s < g.S; ++s) off[size_t(r * g.S + s)] = sp.tap_offset(g, r, s);
  const int64_t tiles = (g.P * sp.Wph + B::QB - 1) / B::QB;
  Scratch<T> rows(size_t(KB == 1 ? tiles * B::QB : 0));
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t grp = 0; grp < g.G; ++grp) {
      split_input<typename B::Vec>(g, sp, x + (n * g.C + grp * g.Cg) * g.H * g.W, xs.p);
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t k0 = grp * g.Kg + b * KB;
        const int kn = int(g.Kg - b * KB < KB ? g.Kg - b * KB : KB);
        const TileOut<T> out{y + (n * g.K + k0) * g.PQ, bias != nullptr ? bias + k0 : nullptr, kn, relu, rows.p};
        const T* wb = wp.p + (grp * blocks + b) * g.CRS * KB;
        for (int64_t t = 0; t < tiles; ++t) direct_tile<B>(g, sp, xs.p + t * B::QB, off.data(), wb, out, t * B::QB);
        if (KB == 1)
          for (int64_t p = 0; p < g.P; ++p) copy_row<typename B::Vec>(out.y + p * g.Q, rows.p + p * sp.Wph, g.Q);
      }
    }
}

// Narrow when a wide block would be at most half full (Kg = 1, 2, ...): reloading the tile's x
// vectors (in L1) per channel costs less than the FMA lanes a half-empty block wastes.
template <class T, Isa I>
PYKERN_INLINE void direct_blocked_body(const ConvGeom& g, const T* x, const T* w, const T* bias, T* y, bool relu) {
  using Bs = DirectBlockings<T, I>;
  if (2 * g.Kg <= Bs::Wide::KB)
    direct_blocked_with<typename Bs::Narrow>(g, x, w, bias, y, relu);
  else
    direct_blocked_with<typename Bs::Wide>(g, x, w, bias, y, relu);
}

// direct_blocked_<isa><T>: the body compiled for that ISA.
#define PYKERN_DIRECT_BLOCKED(isa, target)                                                                     \
  template <class T>                                                                                          \
  target void direct_blocked_##isa(const ConvGeom& g, const T* x, const T* w, const T* bias, T* y, bool relu) { \
    direct_blocked_body<T, Isa::isa>(g, x, w, bias, y, relu);                                                  \
  }
PYKERN_DIRECT_BLOCKED(baseline, )
#if PYKERN_X86
PYKERN_DIRECT_BLOCKED(avx2, PYKERN_TARGET_AVX2)
PYKERN_DIRECT_BLOCKED(avx512, PYKERN_TARGET_AVX512)
#endif
#undef PYKERN_DIRECT_BLOCKED

// ------------------------------------------------------------------------------------------
// The implicit GEMM of one group (a gemm.h Op)
// ------------------------------------------------------------------------------------------
// Rows: the group's Kg output channels. Columns: every output pixel of every image, j = n*PQ + pix
// (so small images share panels and tiles). Reduction: the group's CRS filter taps.
template <class T>
struct ConvForward : gemm::StridedA<T> {  // a: the group's filters, (Kg, CRS) rows of w
  ConvGeom g;
  const T* x;  // x: (N, C, H, W)
  T* y;        // y: (N, K, P, Q)
  // x zero-padded and split by stride phase (SplitPlanes: x itself at stride 1 unpadded), or null
  // where that copy would be too big: then the gather tests every tap against the borders.
  const T* xs = nullptr;
  const Split* sp = nullptr;
  int64_t group;
  int64_t M, N, K;
  gemm::Epilogue<T> epi;

  ConvForward(const ConvGeom& geom, const T* x_, const T* w, const T* bias, T* y_, int64_t grp, bool relu)
      : g(geom), x(x_), y(y_), group(grp) {
    this->a = {w + grp * geom.Kg * geom.CRS, geom.CRS, 1};
    M = g.Kg;
    N = g.N * g.PQ;
    K = g.CRS;
    epi.bias = bias != nullptr ? bias + grp * g.Kg : nullptr;
    epi.relu = relu;
  }

  // Gathers im2col(x)'s rows [pc, pc+kc) x columns [jc, jc+nc) into NR-column panels. A panel's
  // columns fall into runs that share one output row of one image. From the split copy (xs),
  // output (p, q)'s tap (c, r, s) lies at c * chan + tap_offset(r, s) + p * Wph + q at any stride
  // and dilation: a run is one plain copy per tap (a vector load and store for a short row) with
  // no border test, and row kk's offset is the same for every run, so the block's offsets are
  // computed once and each panel is gather_runs' copies. (Most of a small image's gather was
  // border tests, runs of Q = 8 outputs on the 8x8 layers; at stride 2, before the split, a
  // strided copy element by element was a quarter of the 7x7 stride-2 layer's time.) Without
  // it, each tap's run is clipped to the input and the rest zero-filled.
  template <class B>
  PYKERN_INLINE void pack_b(int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* bp) const {
    constexpr int NR = B::NR;
    const int64_t RS = g.R * g.S;
    int64_t tap[B::KC];
    if (xs != nullptr)
      for (int64_t k = 0, c = pc / RS, r = pc / g.S % g.R, s = pc % g.S; k < kc; ++k) {
        tap[k] = c * sp->chan + sp->tap_offset(g, r, s);
        if (++s == g.S) {
          s = 0;
          if (++r == g.R) {
            r = 0;
            ++c;
          }
        }
      }
    for (int64_t jr = 0; jr < nc; jr += NR) {
      T* dst = bp + jr * kc;
      const int cols = int(nc - jr < NR ? nc - jr : NR);
      PanelRun pr[NR];
      const int nruns = panel_runs(jc + jr, cols, g.PQ, g.Q, pr);
      if (xs != nullptr) {
        GatherRun gr[NR];
        for (int u = 0; u < nruns; ++u)
          gr[u] = {pr[u].col, pr[u].len, (pr[u].n * g.C + group * g.Cg) * sp->chan + pr[u].row * sp->Wph + pr[u].first};
        gather_runs<NR>(dst, kc, cols, xs, tap, gr, nruns);
        continue;
      }
      int64_t c = pc / RS, r = pc / g.S % g.R, s = pc % g.S;
      for (int64_t k = 0; k < kc; ++k) {
        T* d = dst + k * NR;
        for (int u = 0; u < nruns; ++u)
          gather_clipped((pr[u].n * g.C + group * g.Cg) * g.H * g.W, pr[u].row * g.sh - g.ph,
                         pr[u].first * g.sw - g.pw, pr[u].len, c, r, s, d + pr[u].col);
        for (int j = cols; j < NR; ++j) d[j] = T(0);
        if (++s == g.S) {
          s = 0;
          if (++r == g.R) {
            r = 0;
            ++c;
          }
        }
      }
    }
  }

  // One run of `len` outputs for tap (c, r, s) straight from x: o[t] = x[.., ih, iw0 + t*sw],
  // zero where that lies outside the input.
  PYKERN_INLINE void gather_clipped(int64_t base, int64_t ih0, int64_t iw0, int len, int64_t c, int64_t r, int64_t s,
                                    T* o) const {
    const int64_t ih = ih0 + r * g.dh, iw = iw0 + s * g.dw;
    if (uint64_t(ih) >= uint64_t(g.H)) {
      for (int t = 0; t < len; ++t) o[t] = T(0);
      return;
    }
    const T* row = x + base + (c * g.H + ih) * g.W;  // x[n, group*Cg + c, ih, :]: (W,)
    if (g.sw == 1) {
      copy_clipped(row, iw, g.W, len, o);
    } else {
      for (int t = 0; t < len; ++t) {
        const int64_t col = iw + t * g.sw;
        o[t] = uint64_t(col) < uint64_t(g.W) ? row[col] : T(0);
      }
    }
  }

  // C's rows are unit stride up to the image's last pixel.
  PYKERN_INLINE T* c_run(int64_t i, int64_t j, int64_t* ldc, int64_t* run) const {
    const int64_t n = j / g.PQ, pix = j - n * g.PQ;
    *ldc = g.PQ;
    *run = g.PQ - pix;
    return y + (n * g.K + group * g.Kg + i) * g.PQ + pix;
  }
};

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------
// f(op) for the Op of each group in turn, after x is padded and split by stride phase once for all
// of them (SplitPlanes, on `threads` threads, images split between them).
template <class T, class F>
void each_group(const Call& call, int threads, F&& f) {
  const ConvGeom g(call.dims);
  const bool relu = call.dims[16] != 0;
  const T* x = call.input<T>(0);
  const SplitPlanes<T> xs(g, x, threads);
  for (int64_t grp = 0; grp < g.G; ++grp) {
    ConvForward<T> op(g, x, call.input<T>(1), call.input<T>(2), call.output<T>(), grp, relu);
    if (xs.p != nullptr) {
      op.xs = xs.p;
      op.sp = &xs.sp;
    }
    f(op);
  }
}

template <class T>
void run_direct(const Call& call) {
  direct(ConvGeom(call.dims), call.input<T>(0), call.input<T>(1), call.input<T>(2), call.output<T>(),
         call.dims[16] != 0);
}

template <class T>
void run_direct_blocked(const Call& call) {
  const ConvGeom g(call.dims);
  const T *x = call.input<T>(0), *w = call.input<T>(1), *bias = call.input<T>(2);
  T* y = call.output<T>();
  const bool relu = call.dims[16] != 0;
#if PYKERN_X86
  switch (active_isa()) {
    case Isa::avx512: return direct_blocked_avx512(g, x, w, bias, y, relu);
    case Isa::avx2: return direct_blocked_avx2(g, x, w, bias, y, relu);
    default: break;
  }
#endif
  direct_blocked_baseline(g, x, w, bias, y, relu);
}

template <class T>
void run_implicit_gemm(const Call& call) {
  each_group<T>(call, 1, [](const ConvForward<T>& op) { gemm::run_serial(op, gemm::simd_path<T, ConvForward<T>>()); });
}

template <class T>
void run_threaded(const Call& call) {
  each_group<T>(call, call.threads, [&](const ConvForward<T>& op) { gemm::run_threaded<T>(op, call.threads); });
}

std::vector<int64_t> sizes(const int64_t* dims) {  // x, w, bias, y
  const ConvGeom g(dims);
  return {g.x_elems(), g.w_elems(), g.K, g.y_elems()};
}

// ------------------------------------------------------------------------------------------
// Table
// ------------------------------------------------------------------------------------------
const Variant kVariants[] = {
    // name            dtypes       launcher
    {"direct", kF32 | kF64, by_dtype<run_direct<float>, run_direct<double>>,
     "the seven loops, taps in (c, r, s) order, padding read as zeros; scalar C++, baseline ISA, one thread"},
    {"direct_blocked", kF32 | kF64, by_dtype<run_direct_blocked<float>, run_direct_blocked<double>>,
     "register tile of output channels x pixels (AVX-512 6x64, AVX2 4x24 f32; 1-channel tiles for depthwise) "
     "on a padded, stride-phase-split copy of x; one thread"},
    {"implicit_gemm", kF32 | kF64, by_dtype<run_implicit_gemm<float>, run_implicit_gemm<double>>,
     "implicit GEMM per group on matmul's SIMD micro-kernel: im2col panels gathered from x as packed, "
     "no column buffer; bias+ReLU fused; one thread"},
    {"threaded", kF32 | kF64, by_dtype<run_threaded<float>, run_threaded<double>>,
     "implicit_gemm on threads sharing the gathered panels, channel x pixel tiles from a counter"},
};

}  // namespace

PYKERN_CPU_TABLE(conv2d, "N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, relu", "x, w, bias?", kVariants,
                 sizes, conv_unsupported);

}  // namespace cpu
}  // namespace pykern
