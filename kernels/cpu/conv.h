// What the compiled conv2d kernels (kernels/cpu/conv2d*.cpp) share: the geometry read from the
// spec's dims (GEOMETRY_FIELDS in pykern/ops/conv2d.py, the CUDA side's ConvShape), the element
// counts the binder checks, and the rule a direct call must meet.
//
// Vocabulary: x: (N, C, H, W), w: (K, Cg, R, S), y / dy: (N, K, P, Q); G groups of Cg = C/G input
// and Kg = K/G output channels; CRS = Cg*R*S, the implicit GEMM's reduction over a filter's taps.
#pragma once
#include <cstring>

#include "cpu.h"

namespace pykern {
namespace cpu {

struct ConvGeom {
  int64_t N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, G;
  int64_t Cg, Kg, CRS, PQ;

  // dims: the spec's GEOMETRY_FIELDS, in order (the forward op appends relu after them).
  explicit ConvGeom(const int64_t* d)
      : N(d[0]), C(d[1]), H(d[2]), W(d[3]), K(d[4]), R(d[5]), S(d[6]), P(d[7]), Q(d[8]), sh(d[9]), sw(d[10]),
        ph(d[11]), pw(d[12]), dh(d[13]), dw(d[14]), G(d[15]) {
    Cg = G > 0 ? C / G : 0;
    Kg = G > 0 ? K / G : 0;
    CRS = Cg * R * S;
    PQ = P * Q;
  }
  int64_t x_elems() const { return N * C * H * W; }
  int64_t w_elems() const { return K * Cg * R * S; }
  int64_t y_elems() const { return N * K * P * Q; }
  // The output size along one axis, as the spec computes it (pykern/ops/conv2d.py output_size).
  static int64_t out_size(int64_t in, int64_t pad, int64_t dil, int64_t taps, int64_t stride) {
    return (in + 2 * pad - dil * (taps - 1) - 1) / stride + 1;
  }
};

// The implicit GEMMs' gather (forward, dx) packs NR-column panels whose columns are pixels,
// j = n * per_image + row * width + col; a panel's columns fall into runs along one row of one
// image, each gathered with one contiguous read per tap.
struct PanelRun {
  int col, len;            // the run's first column within the panel, and its length
  int64_t n, row, first;   // its image, row, and first column within the row
};

// o[0, n) = s[0, n) for a run of a panel row (n <= NR): vectors of 8 (the last one overlapping
// the one before it) or two overlapping vectors of 4, scalars below 4. A run is short (8 pixels
// on the 8x8 layers), and the compiler's own loop for a copy of unknown length (alias checks,
// then a vector loop, then a tail) cost more than the micro-kernel's FMAs there (perf, the small
// CNN's 16->32 layer).
template <class T>
PYKERN_INLINE void copy_run(T* __restrict o, const T* __restrict s, int n) {
  typedef T V8 __attribute__((vector_size(8 * sizeof(T))));
  typedef T V4 __attribute__((vector_size(4 * sizeof(T))));
  if (n >= 8) {
    for (int i = 0; i + 8 < n; i += 8) {
      asm("");  // else GCC makes this loop a memmove call per run (-ftree-loop-distribute-patterns)
      V8 v;
      __builtin_memcpy(&v, s + i, sizeof v);
      __builtin_memcpy(o + i, &v, sizeof v);
    }
    V8 v;
    __builtin_memcpy(&v, s + n - 8, sizeof v);
    __builtin_memcpy(o + n - 8, &v, sizeof v);
  } else if (n >= 4) {
    V4 a, b;
    __builtin_memcpy(&a, s, sizeof a);
    __builtin_memcpy(&b, s + n - 4, sizeof b);
    __builtin_memcpy(o, &a, sizeof a);
    __builtin_memcpy(o + n - 4, &b, sizeof b);
  } else {
    for (int i = 0; i < n; ++i) {
      asm("");  // as above: GCC made this loop a memmove call, one per run of 1-3 elements
      o[i] = s[i];
    }
  }
}

// One run of a panel's gather from a padded copy at stride 1: columns [col, col + len) of every
// panel row, read from `base` plus the row's tap offset.
struct GatherRun {
  int col, len;
  int64_t base;
};

// One panel's gather from a padded copy at stride 1, run by run: panel row kk (dst + kk * NR)
// takes, for each run, len consecutive elements from src + tap[kk] + base into its columns; the
// columns past `cols` (a last, partial panel) are zeros. Run-major, so a run's length and base
// stay in registers over the kc rows.
template <int NR, class T>
PYKERN_INLINE void gather_runs(T* dst, int64_t kc, int cols, const T* src, const int64_t* tap, const GatherRun* runs,
                               int nruns) {
  for (int u = 0; u < nruns; ++u) {
    const T* s = src + runs[u].base;
    T* o = dst + runs[u].col;
    const int n = runs[u].len;
    if (n == 8) {  // the 8x8 layers' rows: one vector a row, in a loop with nothing else in it
      typedef T V8 __attribute__((vector_size(8 * sizeof(T))));
      for (int64_t kk = 0; kk < kc; ++kk) {
        V8 v;
        __builtin_memcpy(&v, s + tap[kk], sizeof v);
        __builtin_memcpy(o + kk * NR, &v, sizeof v);
      }
      continue;
    }
    // Each row's source is another tap's row or another channel's plane: a cache miss the
    // hardware prefetchers do not foresee. Fetched PD rows ahead, the copies cost about half (the
    // 56x56x64 conv2d on one thread: from 12% of its samples to 7%; on 2 threads 3% faster at
    // 56x56, 2-4% at 28x28, 1% at 14x14 and 7x7 (tap_gemm), alternating builds).
    constexpr int64_t PD = 24;
    for (int64_t kk = 0; kk < kc; ++kk) {
      if (kk + PD < kc) {
        __builtin_prefetch(s + tap[kk + PD]);
        __builtin_prefetch(s + tap[kk + PD] + n - 1);
      }
      copy_run(o + kk * NR, s + tap[kk], n);
    }
  }
  if (cols < NR)
    for (int64_t kk = 0; kk < kc; ++kk)
      for (int j = cols; j < NR; ++j) dst[kk * NR + j] = T(0);
}

// The runs of the panel's columns [j0, j0 + cols) into runs[] (room for cols); their count.
inline int panel_runs(int64_t j0, int cols, int64_t per_image, int64_t width, PanelRun* runs) {
  int count = 0;
  for (int col = 0; col < cols;) {
    const int64_t j = j0 + col, n = j / per_image, pix = j - n * per_image, row = pix / width, first = pix - row * width;
    const int len = int(cols - col < width - first ? cols - col : width - first);
    runs[count++] = {col, len, n, row, first};
    col += len;
  }
  return count;
}

// dst[0, n) = src[0, n): copy_run's inline vectors for a short row, memcpy for a long one.
template <class T>
PYKERN_INLINE void copy_long_run(T* __restrict dst, const T* __restrict src, int64_t n) {
  if (n < 64)
    copy_run(dst, src, int(n));
  else
    std::memcpy(dst, src, sizeof(T) * size_t(n));
}

// dst[0, n) = 0, inline for the few elements of a padding border (no libc call).
template <class T>
PYKERN_INLINE void zero_run(T* dst, int64_t n) {
  if (n > 32) {
    std::memset(dst, 0, sizeof(T) * size_t(n));
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    asm("");  // else GCC makes the loop a memset call
    dst[i] = T(0);
  }
}

// A zero-padded copy of `planes` planes of rows x cols (an activation, NCHW): the gathers of the
// implicit GEMMs read a padded copy so that every tap of a run lies inside it, and a run is one
// plain copy with no border test. Made only where it costs at most kPadGrowth times the
// source's size (plus 2^20 elements: a tiny layer's padding is cheap whatever its share); past
// that, `p` stays null and the gathers clip every run instead. Options (the window dot products
// of dw): `stride`, the distance between padded planes (zeros between; default their size),
// `slack`, zeros after the last plane, and `always`, a copy even where nothing is padded.
template <class T>
struct PaddedPlanes {
  static constexpr int64_t kPadGrowth = 2;
  // Threads share the copy from kThreadedBytes of padded planes on, taking chunks of about
  // kChunkBytes from a counter (for_chunks, so the caller never waits for a helper still waking).
  // From 2 MiB (and parallel) before: the 8x8 layer's dx (N=32, 16 <- 32 channels: 400 KiB of
  // padded dy) ran 198 -> 154 us on 2 threads, its forward 135 -> 122.
  static constexpr int64_t kThreadedBytes = int64_t(1) << 17, kChunkBytes = int64_t(1) << 15;
  const T* p = nullptr;  // (planes, top + rows + bottom, left + cols + right), or src unpadded, or null
  int64_t rows = 0, cols = 0, stride = 0;  // the padded plane's, and the distance between planes
  Scratch<T> buf;

  // src: (planes, r, c). threads: how many may share the copy (a small one runs on one).
  PaddedPlanes(const T* src, int64_t planes, int64_t r, int64_t c, int64_t top, int64_t bottom, int64_t left,
               int64_t right, int threads, int64_t plane_stride = 0, int64_t slack = 0, bool always = false)
      : rows(top + r + bottom),
        cols(left + c + right),
        stride(plane_stride > 0 ? plane_stride : rows * cols),
        buf(copies(r, c, always) && fits(planes, r, c, slack) ? size_t(planes * stride + slack) : 0) {
    if (!copies(r, c, always)) {
      p = src;
      return;
    }
    if (!fits(planes, r, c, slack)) return;
    T* dst0 = buf.p;
    const int64_t Hp = rows, Wp = cols, st = stride;
    const auto pad = [&](int64_t pl) {
      T* dst = dst0 + pl * st;  // (Hp, Wp): zero border around src's plane pl, then zeros to the next
      const T* from = src + pl * r * c;
      if (r == 0) {
        std::memset(dst, 0, sizeof(T) * size_t(st));
        return;
      }
      // The zeros between two rows (a row's right border, the next one's left) are one run:
      // three libc calls per row of a small image were 14% of the 8x8 layer's dx (perf).
      std::memset(dst, 0, sizeof(T) * size_t(top * Wp + left));
      for (int64_t h = 0; h < r; ++h) {
        T* row = dst + (top + h) * Wp + left;
        copy_long_run(row, from + h * c, c);
        zero_run(row + c, h + 1 < r ? right + left : right + bottom * Wp + st - Hp * Wp);
      }
    };
    const int64_t plane_bytes = st * int64_t(sizeof(T));
    for_chunks(planes, (kChunkBytes + plane_bytes - 1) / plane_bytes, planes * plane_bytes < kThreadedBytes ? 1 : threads,
               [&](int64_t lo, int64_t hi) {
                 for (int64_t pl = lo; pl < hi; ++pl) pad(pl);
               });
    std::memset(dst0 + planes * st, 0, sizeof(T) * size_t(slack));
    p = dst0;
  }

 private:
  bool copies(int64_t r, int64_t c, bool always) const { return always || rows != r || cols != c; }
  bool fits(int64_t planes, int64_t r, int64_t c, int64_t slack) const {
    return planes * stride + slack <= kPadGrowth * planes * r * c + (int64_t(1) << 20);
  }
};

// o[t] = src[start + t] for t < len where 0 <= start + t < width, else 0: one run of a gather
// whose window may leave the row at either end (src: the row, (width,)).
template <class T>
PYKERN_INLINE void copy_clipped(const T* src, int64_t start, int64_t width, int len, T* o) {
  int64_t lo = -start, hi = width - start;  // the run's elements inside the row
  lo = lo < 0 ? 0 : lo > len ? len : lo;
  hi = hi < lo ? lo : hi > len ? len : hi;
  for (int64_t t = 0; t < lo; ++t) o[t] = T(0);
  for (int64_t t = lo; t < hi; ++t) o[t] = src[start + t];
  for (int64_t t = hi; t < len; ++t) o[t] = T(0);
}

// The rule every conv table shares: what pykern's dispatch has already checked (strides and
// dilations >= 1, groups dividing both channel counts, P and Q the spec's output size); a direct
// call that breaks it would index past its operands or divide by zero.
inline std::string conv_unsupported(const int64_t* dims) {
  const ConvGeom g(dims);
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1) return "strides and dilations must be >= 1";
  if (g.G < 1 || g.C % g.G != 0 || g.K % g.G != 0)
    return "groups must be >= 1 and divide C and K, got groups=" + std::to_string(g.G);
  if (g.H + 2 * g.ph < g.dh * (g.R - 1) + 1 || g.W + 2 * g.pw < g.dw * (g.S - 1) + 1)
    return "the dilated filter is larger than the padded input";
  if (g.P != ConvGeom::out_size(g.H, g.ph, g.dh, g.R, g.sh) || g.Q != ConvGeom::out_size(g.W, g.pw, g.dw, g.S, g.sw))
    return "P, Q must be the output size the geometry gives";
  return "";
}

}  // namespace cpu
}  // namespace pykern
