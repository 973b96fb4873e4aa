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
//   tap_gemm       one GEMM per filter tap over only the outputs whose tap lies inside x: the
//                  padded taps threaded multiplies by zero are skipped (where every weight is
//                  finite), x read in place; threaded, tiles of output rows x channels
//   blocked_direct no GEMM: x reordered into 16-channel blocks, each tile of output pixels x
//                  channels summed in registers over all of its terms (oneDNN's structure),
//                  padded filter rows and row-end columns skipped (finite weights); float32
//
// Accuracy (error_model "terms"): every output sums its own w * x terms in the input dtype, taps
// in (c, r, s) order (the GEMM rungs: in order within a KC block, and the blocks in order; tap_gemm
// tap by tap, blocked_direct by channel block, see there), then the bias, then ReLU; threads split outputs, never a sum. Spatial padding is read or packed as
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
// Rung 5: tap_gemm
// ------------------------------------------------------------------------------------------
// One implicit GEMM per filter tap (r, s), over only the outputs whose tap lies inside x: per
// group, y_g[:, outputs of tap t] += w_g[:, :, r, s] (Kg x Cg) * x_g shifted by the tap (Cg x those
// outputs). A padded tap is never multiplied, which is what oneDNN's float32 path does (about 18%
// of a 3x3 pad-1 layer's terms at 7x7, 9% at 14x14, bench/conv2d_padding_cost.py), and x is read
// in place, never padded. Valid only where every weight is finite: a skipped padded tap would
// have multiplied a zero by its weight, and 0 * Inf = NaN must reach the output, so a call whose
// filters hold an Inf or NaN (found while they are packed) runs the threaded rung instead.
//
// Order of each output's terms: the taps that reach every output first (the centre of a 3x3
// pad-1 filter), then the rest in (r, s) order, each over its input channels in KC blocks; the
// same on any thread count (threads split outputs, never a sum).

// The outputs [lo, hi) along one axis whose tap at offset `off` (r * dh) reads inside the input:
// 0 <= o * stride - pad + off < in.
inline void tap_range(int64_t out, int64_t in, int64_t stride, int64_t pad, int64_t off, int64_t* lo, int64_t* hi) {
  const int64_t a = pad - off, b = in - 1 + pad - off;  // o * stride in [a, b]
  int64_t l = a <= 0 ? 0 : (a + stride - 1) / stride, h = b < 0 ? 0 : b / stride + 1;
  l = l > out ? out : l;
  h = h > out ? out : h;
  *lo = l;
  *hi = h < l ? l : h;
}

struct Tap {
  int64_t t;               // r * S + s: the tap's column of a filter row (Cg, R*S)
  int64_t r, s;
  int64_t p0, p1, q0, q1;  // its outputs: rows [p0, p1) x columns [q0, q1) of every image
  bool whole(const ConvGeom& g) const { return p0 == 0 && p1 == g.P && q0 == 0 && q1 == g.Q; }
};

// The taps in the order their terms are summed: those that reach every output first, then the
// rest in (r, s) order; taps that reach no output are left out.
inline std::vector<Tap> tap_order(const ConvGeom& g) {
  std::vector<Tap> whole, part;
  for (int64_t r = 0; r < g.R; ++r)
    for (int64_t s = 0; s < g.S; ++s) {
      Tap tp{r * g.S + s, r, s, 0, 0, 0, 0};
      tap_range(g.P, g.H, g.sh, g.ph, r * g.dh, &tp.p0, &tp.p1);
      tap_range(g.Q, g.W, g.sw, g.pw, s * g.dw, &tp.q0, &tp.q1);
      if (tp.p0 < tp.p1 && tp.q0 < tp.q1) (tp.whole(g) ? whole : part).push_back(tp);
    }
  whole.insert(whole.end(), part.begin(), part.end());
  return whole;
}

// The columns of one tap's GEMM within a slab of output rows: global rows [ga, gb) (g = n*P + p),
// each valid row's columns [q0, q1), in order. Per column: where its output lies in y (image n's
// plane of the group's first channel, + p*Q + q), where its input lies in x (image n's plane of
// the group's first channel, + ih*W + iw), and how many columns from it on lie contiguously in
// both: a run, which the gather copies and the micro-kernel stores in one piece (a row's rest;
// whole rows where the tap spans whole rows of both, as a "same" layer's middle column does;
// one column where x is strided).
struct TapColumns {
  std::vector<int64_t> yoff, xoff;
  std::vector<int32_t> left;
  int64_t count = 0;

  explicit TapColumns(int64_t most) : yoff(size_t(most)), xoff(size_t(most)), left(size_t(most)) {}

  void build(const ConvGeom& g, const Tap& tp, int64_t ga, int64_t gb) {
    count = 0;
    for (int64_t gr = ga; gr < gb; ++gr) {
      const int64_t n = gr / g.P, p = gr - n * g.P;
      if (p < tp.p0 || p >= tp.p1) continue;
      const int64_t ih = p * g.sh - g.ph + tp.r * g.dh;
      const int64_t ybase = n * g.K * g.PQ + p * g.Q, xbase = n * g.C * g.H * g.W + ih * g.W;
      for (int64_t q = tp.q0; q < tp.q1; ++q) {
        yoff[size_t(count)] = ybase + q;
        xoff[size_t(count)] = xbase + q * g.sw - g.pw + tp.s * g.dw;
        ++count;
      }
    }
    int32_t run = 0;
    for (int64_t j = count - 1; j >= 0; --j) {
      const bool next = j + 1 < count && yoff[size_t(j + 1)] == yoff[size_t(j)] + 1 &&
                        xoff[size_t(j + 1)] == xoff[size_t(j)] + 1;
      run = next ? run + 1 : 1;
      left[size_t(j)] = run;
    }
  }
};

// One tap's GEMM over one slab's columns, as the micro-kernel sees it (gemm.h's Op: c_run).
template <class T>
struct TapOp {
  T* y;                     // y at the group's first channel of image 0: (N, K, P, Q) from there
  const TapColumns* cols;
  int64_t PQ;
  gemm::Epilogue<T> epi;    // none: the epilogue is its own pass, after the last tap
  PYKERN_INLINE T* c_run(int64_t i, int64_t j, int64_t* ldc, int64_t* run) const {
    *ldc = PQ;
    *run = cols->left[size_t(j)];
    return y + cols->yoff[size_t(j)] + i * PQ;
  }
};

// Input channels [pc, pc + kc) x columns [jc, jc + nc) of one tap's GEMM into NR-column panels
// (gemm.h's pack_b), from x in place: a stride-1 run is one contiguous read per channel.
template <class B>
PYKERN_INLINE void pack_tap_b(const ConvGeom& g, const typename B::Elem* xg, const TapColumns& cols, int64_t pc,
                              int64_t kc, int64_t jc, int64_t nc, const int64_t* chan, typename B::Elem* bp) {
  using T = typename B::Elem;
  constexpr int NR = B::NR;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    T* dst = bp + jr * kc;
    const int cols_n = int(nc - jr < NR ? nc - jr : NR);
    GatherRun gr[NR];
    int nruns = 0;
    for (int col = 0; col < cols_n;) {
      const int64_t j = jc + jr + col;
      int len = cols.left[size_t(j)];
      len = len < cols_n - col ? len : cols_n - col;
      gr[nruns++] = {col, len, cols.xoff[size_t(j)]};
      col += len;
    }
    if (B::NV % 2 == 0 && cols_n <= NR / 2)  // a last panel of at most half the columns: half-width
      gather_runs<NR / 2>(dst, kc, cols_n, xg, chan + pc, gr, nruns);
    else
      gather_runs<NR>(dst, kc, cols_n, xg, chan + pc, gr, nruns);
  }
}

// The filters of one MR micro-panel, rows [m0, m1) of the group (whole MR micro-panels; rows past
// Kg zeros), packed tap by tap: filter element (c, t) (t = r * S + s) of the panel's rows goes to
// dst(c, t) (MR consecutive values, row m at + m % MR), or nowhere where dst gives null (a tap
// that is never summed). Read in w's order. False where a weight is Inf or NaN.
template <class B, class Dst>
PYKERN_INLINE bool pack_filters_by_tap(const ConvGeom& g, const typename B::Elem* __restrict wg, int64_t m0, int64_t m1,
                                       Dst&& dst) {
  using T = typename B::Elem;
  constexpr int MR = B::MR;
  const int64_t RS = g.R * g.S;
  T finite = T(0);  // stays 0 unless some w * 0 is NaN (w Inf or NaN)
  if constexpr (std::is_same<T, float>::value && MR == 8) {
    // A whole micro-panel of real rows in 8 x 8 blocks transposed in registers (gemm.h): each
    // block's column k is the panel's 8 values of filter element k = c * R*S + t, one vector
    // store into tap t's panel. The scalar walk below took 18% of the 7x7x512 layer (perf).
    if (m1 - m0 == MR && m1 <= g.Kg) {
      alignas(32) float blk[64];
      f32x8 bad{};
      int64_t k = 0;
      for (int64_t c = 0, t = 0; k + 8 <= g.CRS; k += 8) {
        gemm::transpose_8x8(wg + m0 * g.CRS + k, g.CRS, blk, 8);
        for (int kk = 0; kk < 8; ++kk) {
          f32x8 v;
          std::memcpy(&v, blk + kk * 8, sizeof v);
          bad += v * 0.0f;
          if (T* d = dst(c, t)) std::memcpy(d, &v, sizeof v);
          if (++t == RS) {
            t = 0;
            ++c;
          }
        }
      }
      for (int kk = 0; kk < 8; ++kk) finite += bad[kk];
      // the last CRS % 8 elements: the walk below, from element k on
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t e = k; e < g.CRS; ++e) {
          const T v = wg[m * g.CRS + e];
          finite += v * T(0);
          if (T* d = dst(e / RS, e % RS)) d[m % MR] = v;
        }
      return finite == T(0);
    }
  }
  for (int64_t m = m0; m < m1; ++m) {
    const bool real = m < g.Kg;
    const T* src = wg + (real ? m : 0) * g.CRS;  // the row's filter: (Cg, R*S)
    for (int64_t c = 0; c < g.Cg; ++c)
      for (int64_t t = 0; t < RS; ++t) {
        const T v = real ? src[c * RS + t] : T(0);
        finite += v * T(0);
        if (T* d = dst(c, t)) d[m % MR] = v;
      }
  }
  return finite == T(0);
}

// Every tap's filters, w[:, :, r, s] for the group (Kg x Cg), packed as gemm.h's prepacked A
// (block (ic, pc) of the i-th tap summed at i * m_pad * Cg + pc * m_pad + ic * kc), rows [m0, m1)
// (slot[t]: the tap's place in the order, -1 for a tap that reaches no output). False where a
// weight is Inf or NaN.
template <class B>
PYKERN_INLINE bool pack_tap_a(const ConvGeom& g, const typename B::Elem* __restrict wg, const int64_t* slot,
                              int64_t m_pad, int64_t m0, int64_t m1, typename B::Elem* __restrict a_all) {
  using T = typename B::Elem;
  constexpr int MR = B::MR, KC = B::KC;
  const int64_t plane = m_pad * g.Cg;
  return pack_filters_by_tap<B>(g, wg, m0, m1, [&](int64_t c, int64_t t) -> T* {
    if (slot[t] < 0) return nullptr;
    const int64_t pc = c / KC * KC, kc = g.Cg - pc < KC ? g.Cg - pc : KC;
    return a_all + slot[t] * plane + pc * m_pad + m0 * kc + (c - pc) * MR;
  });
}

// One call's plan: the taps in order, how the outputs are cut into tiles (a slab of output rows x
// a part of the group's output channels, per group), and every group's packed filters.
template <class T>
struct TapPlan {
  explicit TapPlan(const int64_t* dims) : g(dims) {}
  ConvGeom g;
  const T *x, *w, *bias;
  T* y;
  bool relu;
  std::vector<Tap> taps;      // in summation order
  std::vector<int64_t> slot;  // (R*S,): tap t's place in `taps`, or -1
  std::vector<int64_t> chan;  // (Cg,): input channel c's plane, c * H * W
  int64_t m_pad = 0, slab_rows = 0, slabs = 0, part_rows = 0, row_parts = 0, most_cols = 0;
  bool init_by_tap = false;  // taps[0] reaches every output: its first block writes y
  int64_t tiles() const { return g.G * slabs * row_parts; }
  size_t a_elems() const { return size_t(g.G) * taps.size() * size_t(m_pad * g.Cg); }
};

// Zero (before the first tap, where no tap reaches every output) or finish (bias, then ReLU,
// after the last) the outputs of one tile: channels [ia, ib) of the group x global output rows
// [ga, gb).
template <class T>
PYKERN_INLINE void tap_tile_outputs(const TapPlan<T>& pl, T* yg, int64_t ia, int64_t ib, int64_t ga, int64_t gb,
                                    bool finish_them, const T* bias) {
  const ConvGeom& g = pl.g;
  for (int64_t gr = ga; gr < gb; ++gr) {
    const int64_t n = gr / g.P, p = gr - n * g.P;
    for (int64_t m = ia; m < ib; ++m) {
      T* row = yg + n * g.K * g.PQ + m * g.PQ + p * g.Q;  // (Q,)
      if (!finish_them) {
        zero_run(row, g.Q);
        continue;
      }
      const T b = bias != nullptr ? bias[m] : T(0);
      for (int64_t q = 0; q < g.Q; ++q) {
        const T v = row[q] + b;
        row[q] = pl.relu && v < T(0) ? T(0) : v;
      }
    }
  }
}

// One tile, every tap: per tap its columns in the slab, then per KC block of input channels and
// B block of columns, B packed from x and multiplied by every A block of the tile's channels.
// cols, bp: this thread's (most_cols columns; KC x NCB).
template <class B>
PYKERN_INLINE void tap_tile_body(const TapPlan<typename B::Elem>& pl, int64_t tile, const typename B::Elem* a_all,
                                 TapColumns& cols, typename B::Elem* bp, int64_t ncb) {
  using T = typename B::Elem;
  constexpr int MR = B::MR, NR = B::NR, MC = B::MC, KC = B::KC;
  const ConvGeom& g = pl.g;
  const int64_t grp = tile / (pl.slabs * pl.row_parts), rest = tile - grp * pl.slabs * pl.row_parts;
  const int64_t sl = rest / pl.row_parts, rp = rest - sl * pl.row_parts;
  const int64_t ga = sl * pl.slab_rows, gb = ga + pl.slab_rows < g.N * g.P ? ga + pl.slab_rows : g.N * g.P;
  const int64_t ia = rp * pl.part_rows, ib = ia + pl.part_rows < g.Kg ? ia + pl.part_rows : g.Kg;
  if (ga >= gb || ia >= ib) return;
  T* yg = pl.y + grp * g.Kg * g.PQ;
  const T* xg = pl.x + grp * g.Cg * g.H * g.W;
  const T* bias = pl.bias != nullptr ? pl.bias + grp * g.Kg : nullptr;
  const T* a_grp = a_all + size_t(grp) * pl.taps.size() * size_t(pl.m_pad * g.Cg);
  if (!pl.init_by_tap) tap_tile_outputs(pl, yg, ia, ib, ga, gb, false, bias);
  for (size_t ti = 0; ti < pl.taps.size(); ++ti) {
    cols.build(g, pl.taps[ti], ga, gb);
    if (cols.count == 0) continue;
    const TapOp<T> op{yg, &cols, g.PQ, {}};
    const T* a_tap = a_grp + ti * size_t(pl.m_pad * g.Cg);
    for (int64_t pc = 0; pc < g.Cg; pc += KC) {
      const int64_t kc = g.Cg - pc < KC ? g.Cg - pc : KC;
      const bool first = ti == 0 && pl.init_by_tap && pc == 0;
      for (int64_t jc = 0; jc < cols.count; jc += ncb) {
        const int64_t nc = cols.count - jc < ncb ? cols.count - jc : ncb;
        pack_tap_b<B>(g, xg, cols, pc, kc, jc, nc, pl.chan.data(), bp);
        for (int64_t ic = ia; ic < ib; ic += MC) {
          const int64_t mc = ib - ic < MC ? ib - ic : MC;
          const T* a = a_tap + pc * pl.m_pad + ic * kc;
          for (int64_t jr = 0; jr < nc; jr += NR) {
            const int nr = int(nc - jr < NR ? nc - jr : NR);
            if constexpr (B::NV % 2 == 0) {
              if (nr <= NR / 2) {  // pack_tap_b packed it half-width: half the FMAs
                using Half = gemm::Blocking<T, typename B::Vec, MR, B::NV / 2, MC, KC, B::NC>;
                for (int64_t ir = 0; ir < mc; ir += MR) {
                  const int mr = int(mc - ir < MR ? mc - ir : MR);
                  gemm::micro_kernel<Half>(op, kc, a + ir * kc, bp + jr * kc, ic + ir, jc + jr, first, false, mr, nr);
                }
                continue;
              }
            }
            for (int64_t ir = 0; ir < mc; ir += MR) {
              const int mr = int(mc - ir < MR ? mc - ir : MR);
              gemm::micro_kernel<B>(op, kc, a + ir * kc, bp + jr * kc, ic + ir, jc + jr, first, false, mr, nr);
            }
          }
        }
      }
    }
  }
  if (bias != nullptr || pl.relu) tap_tile_outputs(pl, yg, ia, ib, ga, gb, true, bias);
}

// The per-ISA functions of the rung (target functions: a thread's lambda never inherits a target).
template <class T>
struct TapPath {
  bool (*pack_a)(const ConvGeom& g, const T* wg, const int64_t* slot, int64_t m_pad, int64_t m0, int64_t m1, T* a_all);
  void (*tile)(const TapPlan<T>& pl, int64_t tile, const T* a_all, TapColumns& cols, T* bp, int64_t ncb);
  int mr, nr, mc, kc;
};
#define PYKERN_TAP_PATH(isa, target)                                                                          \
  template <class B>                                                                                          \
  target bool tap_pack_a_##isa(const ConvGeom& g, const typename B::Elem* wg, const int64_t* slot, int64_t m_pad, \
                               int64_t m0, int64_t m1, typename B::Elem* a_all) {                              \
    return pack_tap_a<B>(g, wg, slot, m_pad, m0, m1, a_all);                                                   \
  }                                                                                                           \
  template <class B>                                                                                          \
  target void tap_tile_##isa(const TapPlan<typename B::Elem>& pl, int64_t tile, const typename B::Elem* a_all,  \
                             TapColumns& cols, typename B::Elem* bp, int64_t ncb) {                           \
    tap_tile_body<B>(pl, tile, a_all, cols, bp, ncb);                                                          \
  }                                                                                                           \
  template <class B>                                                                                          \
  TapPath<typename B::Elem> tap_path_##isa() {                                                                \
    return {tap_pack_a_##isa<B>, tap_tile_##isa<B>, B::MR, B::NR, B::MC, B::KC};                               \
  }
PYKERN_TAP_PATH(baseline, )
#if PYKERN_X86
PYKERN_TAP_PATH(avx2, PYKERN_TARGET_AVX2)
PYKERN_TAP_PATH(avx512, PYKERN_TARGET_AVX512)
#endif
#undef PYKERN_TAP_PATH

template <class T>
TapPath<T> tap_path() {
#if PYKERN_X86
  switch (active_isa()) {
    case Isa::avx512: return tap_path_avx512<typename gemm::Blockings<T>::Avx512>();
    case Isa::avx2: return tap_path_avx2<typename gemm::Blockings<T>::Avx2>();
    default: break;
  }
#endif
  return tap_path_baseline<typename gemm::Blockings<T>::Base>();
}

template <class T>
void run_threaded(const Call& call);

// A tile: a slab of about kTapSlabColumns output columns (whole output rows, across images) x a
// part of the group's output channels. Slabs as wide as that, not one B block (kL2BlockBytes):
// every slab meets all of A (the 7x7x512 layer's filters are 9.4 MB) and rounds each tap's
// columns up to whole panels, and C's slab staying in L2 between taps bought less than that
// (measured, 2 threads, 14x14x256, before a tap's last panel could be half-width: 266-column
// slabs 1.12-1.17x torch, 784-column 1.06x; since then 400 and 800 columns measure alike). One
// tile per thread where there are slabs enough (a whole round of them), else the channels cut
// into parts: the 7x7x512 layer's 392 columns run as 2 x 256 channels on 2 threads (a B packed
// once per part: 4 parts ran 1.30x torch, 2 parts 1.14x).
constexpr int64_t kTapSlabColumns = 800;

template <class T>
void run_tap_gemm(const Call& call) {
  TapPlan<T> pl(call.dims);
  const ConvGeom& g = pl.g;
  pl.x = call.input<T>(0);
  pl.w = call.input<T>(1);
  pl.bias = call.input<T>(2);
  pl.y = call.output<T>();
  pl.relu = call.dims[16] != 0;
  const TapPath<T> path = tap_path<T>();
  if (g.y_elems() == 0) return;
  pl.taps = tap_order(g);
  pl.slot.assign(size_t(g.R * g.S > 0 ? g.R * g.S : 1), -1);
  for (size_t i = 0; i < pl.taps.size(); ++i) pl.slot[size_t(pl.taps[i].t)] = int64_t(i);
  pl.init_by_tap = !pl.taps.empty() && pl.taps[0].whole(g) && g.Cg > 0;  // (no channels: no blocks to write y)
  pl.chan.resize(size_t(g.Cg > 0 ? g.Cg : 1));
  for (int64_t c = 0; c < g.Cg; ++c) pl.chan[size_t(c)] = c * g.H * g.W;
  pl.m_pad = (g.Kg + path.mr - 1) / path.mr * path.mr;
  const int parts = gemm::threads_for(2.0 * double(g.K) * double(g.CRS) * double(g.N * g.PQ), call.threads);
  const int64_t rows = g.N * g.P;
  const int64_t ncb = int64_t(gemm::kL2BlockBytes / (sizeof(T) * size_t(path.kc))) / path.nr * path.nr;
  pl.slabs = (rows * g.Q + kTapSlabColumns - 1) / kTapSlabColumns;
  if (pl.slabs * g.G >= parts) {
    pl.slabs = (pl.slabs * g.G + parts - 1) / parts * parts / g.G;  // whole rounds of tiles
    pl.row_parts = 1;
  } else {
    pl.row_parts = (parts + pl.slabs * g.G - 1) / (pl.slabs * g.G);
  }
  pl.slabs = pl.slabs < 1 ? 1 : pl.slabs > rows ? rows : pl.slabs;
  pl.slab_rows = (rows + pl.slabs - 1) / pl.slabs;  // evened out, so that no slab is a sliver
  pl.slabs = (rows + pl.slab_rows - 1) / pl.slab_rows;
  pl.part_rows = ((g.Kg + pl.row_parts - 1) / pl.row_parts + path.mr - 1) / path.mr * path.mr;
  pl.row_parts = (g.Kg + pl.part_rows - 1) / pl.part_rows;
  pl.most_cols = pl.slab_rows * g.Q;
  Scratch<T> a_all(pl.a_elems());
  std::vector<TapColumns> cols(size_t(parts), TapColumns(pl.most_cols));
  Scratch<T> bps(size_t(path.kc) * size_t(ncb) * size_t(parts));
  // A's micro-panels and the tiles from counters; a part waits only for A panels another part
  // has taken (the parts are optional: the caller alone does everything if no thread wakes).
  const int64_t panels = g.G * (pl.m_pad / path.mr), chunk = 8;
  const int64_t chunks = (panels + chunk - 1) / chunk, tiles = pl.tiles();
  std::atomic<int64_t> next_a{0}, packed{0}, next{0};
  std::atomic<bool> finite{true};
  const size_t grp_a = pl.taps.size() * size_t(pl.m_pad * g.Cg);
  parallel_optional(parts, [&](int part, int) {
    for (int64_t c; (c = next_a.fetch_add(1)) < chunks;) {
      for (int64_t p = c * chunk; p < panels && p < (c + 1) * chunk; ++p) {
        const int64_t grp = p / (pl.m_pad / path.mr), m0 = (p - grp * (pl.m_pad / path.mr)) * path.mr;
        if (!path.pack_a(g, pl.w + grp * g.Kg * g.CRS, pl.slot.data(), pl.m_pad, m0, m0 + path.mr,
                         a_all.p + size_t(grp) * grp_a))
          finite.store(false, std::memory_order_relaxed);
      }
      packed.fetch_add(1, std::memory_order_release);
    }
    spin_until([&] { return packed.load(std::memory_order_acquire) >= chunks; });
    if (!finite.load(std::memory_order_relaxed)) return;
    T* bp = bps.p + size_t(path.kc) * size_t(ncb) * size_t(part);
    for (int64_t t; (t = next.fetch_add(1)) < tiles;) path.tile(pl, t, a_all.p, cols[size_t(part)], bp, ncb);
  });
  if (!finite.load()) run_threaded<T>(call);  // an Inf or NaN weight: padding must multiply it
}

// ------------------------------------------------------------------------------------------
// Rung 6: blocked_direct
// ------------------------------------------------------------------------------------------
// oneDNN's structure for float32: x reordered once per call into zero-padded channel blocks,
// [n][group][C/16][H + 2ph][W + 2pw][16 channels], the filters into [group][output block]
// [C/16][r][s][16 input channels][OB output channels]; then each tile, UR output pixels of one
// row x OB output channels, keeps its sums in UR x OB/W vector registers over all of its terms:
// per term step two filter vectors (OB channels) and UR broadcasts of x, one FMA each pair. No
// B panel is packed and C is written once, straight into NCHW y with bias and ReLU. Where every
// weight is finite (0 * Inf must stay NaN, as in tap_gemm) the filter rows that fall in padding
// for an output row are skipped, and so are the padded columns of a tile's first or last pixel
// (a row's ends); other padded columns are multiplied as the zeros they hold. Order of each output's
// terms: (input-channel block, r, s, channel within the block); one tile sums an output, so the
// bits are the same on any thread count.
constexpr int kBdChannels = 16;  // input channels per block of the reordered x

struct BdPlan {
  explicit BdPlan(const int64_t* dims) : g(dims) {}
  ConvGeom g;
  int64_t cbs = 0, obs = 0, Hp = 0, Wpp = 0, ob_width = 0;
  int64_t x_group() const { return cbs * Hp * Wpp * kBdChannels; }  // one image's group in the reordered x
  int64_t w_block() const { return cbs * g.R * g.S * kBdChannels * ob_width; }  // one output block's filters
};

// Image n's group grp's channel block cb of x into the reordered buffer (its padding zeros).
PYKERN_INLINE void bd_reorder_x(const BdPlan& pl, const float* x, float* xb, int64_t n, int64_t grp, int64_t cb) {
  const ConvGeom& g = pl.g;
  float* dst = xb + ((n * g.G + grp) * pl.cbs + cb) * pl.Hp * pl.Wpp * kBdChannels;  // (Hp, Wpp, 16)
  const int64_t c0 = grp * g.Cg + cb * kBdChannels, cn = g.Cg - cb * kBdChannels < kBdChannels ? g.Cg - cb * kBdChannels : kBdChannels;
  const int64_t line = pl.Wpp * kBdChannels;  // one padded row
  // the padding only (the rest is written below): whole rows above and below, the ends of the others
  std::memset(dst, 0, sizeof(float) * size_t(g.ph * line));
  std::memset(dst + (g.ph + g.H) * line, 0, sizeof(float) * size_t((pl.Hp - g.ph - g.H) * line));
  for (int64_t ih = 0; ih < g.H; ++ih) {
    float* row = dst + ((ih + g.ph) * pl.Wpp + g.pw) * kBdChannels;  // (W, 16)
    std::memset(row - g.pw * kBdChannels, 0, sizeof(float) * size_t(g.pw * kBdChannels));
    std::memset(row + g.W * kBdChannels, 0, sizeof(float) * size_t((pl.Wpp - g.pw - g.W) * kBdChannels));
    if (cn < kBdChannels) std::memset(row, 0, sizeof(float) * size_t(g.W * kBdChannels));
    const float* src = x + ((n * g.C + c0) * g.H + ih) * g.W;         // channel c at + c * H * W
    int64_t iw = 0;
    if (cn == kBdChannels)  // 8 channels x 8 pixels at a time, transposed in registers
      for (; iw + 8 <= g.W; iw += 8)
        for (int c = 0; c < kBdChannels; c += 8) gemm::transpose_8x8(src + c * g.H * g.W + iw, g.H * g.W, row + iw * kBdChannels + c, kBdChannels);
    for (; iw < g.W; ++iw)
      for (int64_t c = 0; c < cn; ++c) row[iw * kBdChannels + c] = src[c * g.H * g.W + iw];
  }
}

// One filter tap's 16 input channels into the tile's sums, pixels [LO, HI) only.
template <class V, int UR, int NV, int LO, int HI>
PYKERN_INLINE void bd_step(V (&acc)[UR][NV], const float* __restrict xs, const float* __restrict ws, int64_t px) {
  constexpr int W = int(sizeof(V) / sizeof(float)), OB = NV * W;
#pragma GCC unroll 2
  for (int ic = 0; ic < kBdChannels; ++ic) {
    V wv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) std::memcpy(&wv[j], ws + ic * OB + j * W, sizeof(V));
#pragma GCC unroll 16
    for (int p = LO; p < HI; ++p) {
      const float xv = xs[p * px + ic];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[p][j] += xv * wv[j];
    }
  }
}

// One tile: pixels [ow0, ow0 + UR) of output row oh x output channels [oc0, oc0 + noc) of the
// group. xg: the image's group in the reordered x; wo: the output block's filters; yg: y at the
// group's first channel of the image; filter rows [r0, r1).
template <class V, int UR, int NV, bool UNIT>
PYKERN_INLINE void bd_tile(const BdPlan& pl, const float* __restrict xg, const float* __restrict wo, float* yg,
                           const float* bias, bool relu, int64_t oh, int64_t ow0, int64_t oc0, int noc, int64_t r0,
                           int64_t r1, bool skip) {
  constexpr int W = int(sizeof(V) / sizeof(float)), OB = NV * W;
  const ConvGeom& g = pl.g;
  V acc[UR][NV];
#pragma GCC unroll 16
  for (int p = 0; p < UR; ++p)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[p][j] = V{};
  // from one output pixel's input to the next: a constant at stride 1, so that the broadcasts'
  // addresses are one register plus immediates (with a variable stride GCC kept 14 offsets in
  // registers and reloaded the loop's bounds from the stack)
  const int64_t px = UNIT ? kBdChannels : g.sw * kBdChannels;
  for (int64_t cb = 0; cb < pl.cbs; ++cb)
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = xg + ((cb * pl.Hp + oh * g.sh + r * g.dh) * pl.Wpp + ow0 * g.sw) * kBdChannels;
      const float* wr = wo + (cb * g.R + r) * g.S * kBdChannels * OB;
      for (int64_t s = 0; s < g.S; ++s) {
        const float* xs = xr + s * g.dw * kBdChannels;
        const float* ws = wr + s * kBdChannels * OB;
        if (!skip) {
          bd_step<V, UR, NV, 0, UR>(acc, xs, ws, px);
          continue;
        }
        // The tile's pixels whose column s lies inside x: [lo, hi). A padded column is skipped
        // where it is the first or the last pixel (a 3x3 pad-1 layer's row ends), else
        // multiplied as the zero it holds.
        const int64_t a = g.pw - s * g.dw - ow0 * g.sw, b = g.W + g.pw - s * g.dw - ow0 * g.sw;
        const int64_t lo = a <= 0 ? 0 : (a + g.sw - 1) / g.sw, hi = b <= 0 ? 0 : (b + g.sw - 1) / g.sw;
        if (lo >= hi || lo >= UR) continue;  // no pixel of the tile: every term a padded one
        if (lo == 0 && hi >= UR)
          bd_step<V, UR, NV, 0, UR>(acc, xs, ws, px);
        else if (lo == 1 && hi >= UR)
          bd_step<V, UR, NV, 1, UR>(acc, xs, ws, px);
        else if (lo == 0 && hi == UR - 1)
          bd_step<V, UR, NV, 0, UR - 1>(acc, xs, ws, px);
        else if (lo == 1 && hi == UR - 1)
          bd_step<V, UR, NV, 1, UR - 1>(acc, xs, ws, px);
        else
          bd_step<V, UR, NV, 0, UR>(acc, xs, ws, px);
      }
    }
  alignas(64) float buf[UR * OB];  // (UR, OB): pixel p's channels
#pragma GCC unroll 16
  for (int p = 0; p < UR; ++p)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) std::memcpy(buf + p * OB + j * W, &acc[p][j], sizeof(V));
  for (int o = 0; o < noc; ++o) {
    float* yo = yg + (oc0 + o) * g.PQ + oh * g.Q + ow0;  // (UR,)
    const float b = bias != nullptr ? bias[oc0 + o] : 0.0f;
    for (int p = 0; p < UR; ++p) {
      const float v = buf[p * OB + o] + b;
      yo[p] = relu && v < 0.0f ? 0.0f : v;
    }
  }
}

// Every tile of one output row: UR pixels each, then one of UR / 2, then pairs, then one pixel,
// so that no tile computes a pixel past the row.
template <class V, int UR, int NV, bool UNIT>
PYKERN_INLINE void bd_tiles(const BdPlan& pl, const float* xg, const float* wo, float* yg, const float* bg, bool relu,
                            int64_t oh, int64_t oc0, int noc, int64_t r0, int64_t r1, bool skip) {
  const ConvGeom& g = pl.g;
  int64_t ow = 0;
  for (; ow + UR <= g.Q; ow += UR) bd_tile<V, UR, NV, UNIT>(pl, xg, wo, yg, bg, relu, oh, ow, oc0, noc, r0, r1, skip);
  if (g.Q - ow >= UR / 2) {
    bd_tile<V, UR / 2, NV, UNIT>(pl, xg, wo, yg, bg, relu, oh, ow, oc0, noc, r0, r1, skip);
    ow += UR / 2;
  }
  // The rest two pixels at a time, then one: a whole tile over a rest of 10 pixels (the 24x24
  // layers) computed 40% more than it kept, and ran 20% slower than threaded.
  for (; ow + 2 <= g.Q; ow += 2) bd_tile<V, 2, NV, UNIT>(pl, xg, wo, yg, bg, relu, oh, ow, oc0, noc, r0, r1, skip);
  if (ow < g.Q) bd_tile<V, 1, NV, UNIT>(pl, xg, wo, yg, bg, relu, oh, ow, oc0, noc, r0, r1, skip);
}

// One work item: output row oh of image n, group grp, output block ob: every pixel of the row.
template <class V, int UR, int NV>
PYKERN_INLINE void bd_row(const BdPlan& pl, const float* xb, const float* wb, float* y, const float* bias, bool relu,
                          bool skip_rows, int64_t item) {
  constexpr int OB = NV * int(sizeof(V) / sizeof(float));
  const ConvGeom& g = pl.g;
  const int64_t oh = item % g.P, rest = item / g.P, ob = rest % pl.obs, ng = rest / pl.obs, grp = ng % g.G, n = ng / g.G;
  int64_t r0 = 0, r1 = skip_rows ? 0 : g.R;
  if (skip_rows)  // the filter rows inside x for this output row (an interval)
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ih = oh * g.sh - g.ph + r * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      if (r1 == 0) r0 = r;
      r1 = r + 1;
    }
  const float* xg = xb + (n * g.G + grp) * pl.x_group();
  const float* wo = wb + (grp * pl.obs + ob) * pl.w_block();
  float* yg = y + (n * g.K + grp * g.Kg) * g.PQ;
  const float* bg = bias != nullptr ? bias + grp * g.Kg : nullptr;
  const int64_t oc0 = ob * OB;
  const int noc = int(g.Kg - oc0 < OB ? g.Kg - oc0 : OB);
  if (g.sw == 1)
    bd_tiles<V, UR, NV, true>(pl, xg, wo, yg, bg, relu, oh, oc0, noc, r0, r1, skip_rows);
  else
    bd_tiles<V, UR, NV, false>(pl, xg, wo, yg, bg, relu, oh, oc0, noc, r0, r1, skip_rows);
}

// Filters of 8 output channels (gemm.h's 8 x 8 transposes through pack_filters_by_tap).
struct BdOctet {
  using Elem = float;
  static constexpr int MR = 8;
};

// The per-ISA pieces: the row, filter-packing and x-reordering functions, and the output block.
struct BdPath {
  void (*row)(const BdPlan& pl, const float* xb, const float* wb, float* y, const float* bias, bool relu,
              bool skip_rows, int64_t item);
  bool (*pack_w)(const BdPlan& pl, const float* w, float* wb, int64_t octet);
  void (*reorder_x)(const BdPlan& pl, const float* x, float* xb, int64_t n, int64_t grp, int64_t cb);
  int ob;  // output channels per block
};

// Octet o of the call's filters (group o / (obs * OB / 8)) into its output block; false where a
// weight is Inf or NaN.
PYKERN_INLINE bool bd_pack_w(const BdPlan& pl, const float* w, float* wb, int64_t octet) {
  const ConvGeom& g = pl.g;
  const int64_t per_group = pl.obs * pl.ob_width / 8, grp = octet / per_group, m0 = (octet - grp * per_group) * 8;
  const int64_t ob = m0 / pl.ob_width, o0 = m0 - ob * pl.ob_width;
  float* blk = wb + (grp * pl.obs + ob) * pl.w_block();
  const int64_t RS = g.R * g.S, OB = pl.ob_width;
  return pack_filters_by_tap<BdOctet>(g, w + grp * g.Kg * g.CRS, m0, m0 + 8, [&](int64_t c, int64_t t) -> float* {
    const int64_t cb = c / kBdChannels, ic = c - cb * kBdChannels;
    return blk + ((cb * RS + t) * kBdChannels + ic) * OB + o0;
  });
}

#define PYKERN_BD_PATH(isa, target, V, UR, NV)                                                                     \
  target void bd_row_##isa(const BdPlan& pl, const float* xb, const float* wb, float* y, const float* bias, bool relu, \
                           bool skip_rows, int64_t item) {                                                         \
    bd_row<V, UR, NV>(pl, xb, wb, y, bias, relu, skip_rows, item);                                                 \
  }                                                                                                                \
  target bool bd_pack_w_##isa(const BdPlan& pl, const float* w, float* wb, int64_t octet) {                        \
    return bd_pack_w(pl, w, wb, octet);                                                                            \
  }                                                                                                                \
  target void bd_reorder_x_##isa(const BdPlan& pl, const float* x, float* xb, int64_t n, int64_t grp, int64_t cb) { \
    bd_reorder_x(pl, x, xb, n, grp, cb);                                                                           \
  }                                                                                                                \
  BdPath bd_path_##isa() {                                                                                         \
    return {bd_row_##isa, bd_pack_w_##isa, bd_reorder_x_##isa, NV * int(sizeof(V) / sizeof(float))};                \
  }
// Registers: AVX-512 28 of 32 zmm accumulators (14 pixels x 32 channels), AVX2 12 of 16 ymm
// (6 x 16), baseline 8 of 16 xmm (4 x 8).
PYKERN_BD_PATH(baseline, , f32x4, 4, 2)
#if PYKERN_X86
PYKERN_BD_PATH(avx2, PYKERN_TARGET_AVX2, f32x8, 6, 2)
PYKERN_BD_PATH(avx512, PYKERN_TARGET_AVX512, f32x16, 14, 2)
#endif
#undef PYKERN_BD_PATH

inline BdPath bd_path() {
#if PYKERN_X86
  switch (active_isa()) {
    case Isa::avx512: return bd_path_avx512();
    case Isa::avx2: return bd_path_avx2();
    default: break;
  }
#endif
  return bd_path_baseline();
}

void run_blocked_direct(const Call& call) {
  BdPlan pl(call.dims);
  const ConvGeom& g = pl.g;
  const float* x = call.input<float>(0);
  const float* w = call.input<float>(1);
  const float* bias = call.input<float>(2);
  float* y = call.output<float>();
  const bool relu = call.dims[16] != 0;
  if (g.y_elems() == 0) return;
  const BdPath path = bd_path();
  pl.ob_width = path.ob;
  pl.cbs = (g.Cg + kBdChannels - 1) / kBdChannels;
  pl.obs = (g.Kg + path.ob - 1) / path.ob;
  pl.Hp = g.H + 2 * g.ph;
  pl.Wpp = g.W + 2 * g.pw;  // no tile computes a pixel past Q: every read lies inside the padded row
  const int parts = gemm::threads_for(2.0 * double(g.K) * double(g.CRS) * double(g.N * g.PQ), call.threads);
  // A reordered x over PaddedPlanes' bound (twice x, plus 2^20 elements: wide padding, or few
  // channels in each 16-channel block): the threaded rung, which clips its gathers instead.
  if (double(g.N * g.G) * double(pl.cbs) * double(pl.Hp) * double(pl.Wpp) * kBdChannels >
      double(PaddedPlanes<float>::kPadGrowth) * double(g.x_elems()) + double(int64_t(1) << 20)) {
    run_threaded<float>(call);
    return;
  }
  Scratch<float> xb(size_t(g.N * g.G) * size_t(pl.x_group()));
  Scratch<float> wb(size_t(g.G * pl.obs) * size_t(pl.w_block()));
  if (g.Cg % kBdChannels != 0 || g.Cg == 0)  // the channels past Cg in the last block: zeros
    std::memset(wb.p, 0, sizeof(float) * size_t(g.G * pl.obs) * size_t(pl.w_block()));
  const int64_t x_items = g.N * g.G * pl.cbs, octets = g.G * pl.obs * pl.ob_width / 8;
  const int64_t pack_items = x_items + octets, rows = g.N * g.G * pl.obs * g.P;
  std::atomic<int64_t> next_pack{0}, packed{0}, next{0};
  std::atomic<bool> finite{true};
  parallel_optional(parts, [&](int, int) {
    for (int64_t i; (i = next_pack.fetch_add(1)) < pack_items;) {
      if (i < x_items) {
        const int64_t cb = i % pl.cbs, ng = i / pl.cbs;
        path.reorder_x(pl, x, xb.p, ng / g.G, ng % g.G, cb);
      } else if (!path.pack_w(pl, w, wb.p, i - x_items)) {
        finite.store(false, std::memory_order_relaxed);
      }
      packed.fetch_add(1, std::memory_order_release);
    }
    spin_until([&] { return packed.load(std::memory_order_acquire) >= pack_items; });
    const bool skip = finite.load(std::memory_order_relaxed);  // padded filter rows: only with finite weights
    for (int64_t t; (t = next.fetch_add(1)) < rows;) path.row(pl, xb.p, wb.p, y, bias, relu, skip, t);
  });
}

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
    {"tap_gemm", kF32 | kF64, by_dtype<run_tap_gemm<float>, run_tap_gemm<double>>,
     "one implicit GEMM per filter tap over the outputs it reaches inside x: padded taps skipped, x read "
     "in place (threaded; an Inf/NaN weight runs threaded)"},
    {"blocked_direct", kF32, run_blocked_direct,
     "direct convolution on x reordered into 16-channel blocks: a tile of output pixels x channels summed in "
     "registers over all its terms, padded filter rows and row-end columns skipped (finite weights); float32, "
     "threaded; where that copy of x would pass twice x's size (wide padding, few channels), threaded"},
};

}  // namespace

PYKERN_CPU_TABLE(conv2d, "N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, relu", "x, w, bias?", kVariants,
                 sizes, conv_unsupported);

}  // namespace cpu
}  // namespace pykern
