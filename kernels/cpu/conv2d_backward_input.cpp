// conv2d's input gradient on the CPU, compiled (pykern/ops/conv2d_backward.py, the spec):
// dx = d conv2d / dx applied to dy, NCHW, any stride / padding / dilation / groups, float32 and
// float64.
//
// The ladder (the table at the bottom):
//   implicit_gemm  per group and output phase, the GEMM dx_g (Cg x N*Ha*Wb) = w_g^T (Cg x Kg*taps)
//                  * B on matmul's packed loops and SIMD micro-kernel (kernels/cpu/gemm.h), B
//                  gathered from dy as the loops pack it (B[(k,r,s), (n,h,w)] = dy[n, k, p, q] with
//                  p*sh = h + ph - r*dh, q*sw = w + pw - s*dw; one contiguous copy per run of
//                  pixels), so no column buffer and no col2im scatter; one thread
//   threaded       implicit_gemm with each GEMM's loops shared by threads (gemm.h run_parallel),
//                  as many threads as the size pays for
//
// Stride > 1: split by output phase. The pixels h with the same (h + ph) mod sh meet the same
// taps r (r*dh = h + ph mod sh), and along one phase p steps by one as h steps by sh: each of the
// sh*sw phases is a dense stride-1 problem over only its own taps (3x3 stride 2: 4, 2, 2 and 1
// taps), where multiplying the whole filter by the stride's structural zeros would do sh*sw
// times the work. A phase meeting no tap (1x1 stride 2: three of four) is zeros, written directly.
// Phases write every sw-th column of dx: gemm.h's c_stride.
//
// Accuracy (error_model "terms"): every dx element sums its own w * dy terms in the input dtype,
// (k, r, s) ascending within a KC block and the blocks in order; threads split outputs, never a
// sum. The GEMM also multiplies w by zeros that are no terms (a tap whose p or q falls outside
// dy, at the edges): exact while w is finite, but 0 * Inf = NaN where the spec forms no product.
// So a call whose w holds a non-finite value takes the direct loop instead, which forms exactly
// the spec's products (w scanned once: K*Cg*R*S reads against N*P*Q times as many FMAs).
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "conv.h"
#include "gemm.h"

namespace pykern {
namespace cpu {
namespace {

// ------------------------------------------------------------------------------------------
// Output phases
// ------------------------------------------------------------------------------------------
// One axis of one phase: the dx rows first, first + stride, ... (count of them) and the taps
// they meet, each with its offset: tap t[i] reaches dy row (phase row index) + off[i].
struct Phase {
  int64_t first, count, stride;
  std::vector<int64_t> tap, off;
};

// The phase of dx rows starting at `first` (< stride) along an axis of `in` rows, `out` dy rows,
// `taps` filter taps: the taps whose dy rows are whole (p*stride = h + pad - t*dil) and reach
// dy at all for some row of the phase; the others meet only structural zeros and are left out.
inline Phase phase(int64_t first, int64_t in, int64_t out, int64_t taps, int64_t stride, int64_t pad, int64_t dil) {
  Phase ph{first, (in - first + stride - 1) / stride, stride, {}, {}};
  for (int64_t t = 0; t < taps; ++t) {
    const int64_t d = first + pad - t * dil;
    if (d % stride != 0) continue;
    const int64_t off = d / stride;  // exact, negative included
    if (off < out && off + ph.count > 0) {
      ph.tap.push_back(t);
      ph.off.push_back(off);
    }
  }
  return ph;
}

// ------------------------------------------------------------------------------------------
// The implicit GEMM of one group and phase (a gemm.h Op)
// ------------------------------------------------------------------------------------------
// Rows: the group's Cg input channels. Columns: the phase's pixels of every image,
// j = (n*Ha + hi)*Wb + wi for dx[n, c, hp.first + hi*sh, wp.first + wi*sw]. Reduction: the group's
// Kg output channels times the phase's taps, (k, r, s) ascending.
template <class T>
struct ConvBackwardInput {
  ConvGeom g;
  const T* dy;  // dy: (N, K, P, Q)
  const T* w;   // w: (K, Cg, R, S)
  T* dx;        // dx: (N, C, H, W)
  // dy zero-padded (N, K, Pp, Qp), Pp = top + P + bottom rows, Qp = left + Q + right columns, so
  // that every tap of every phase reads inside it (dy itself where no tap leaves it), or null
  // where that copy would be too big: then the gather clips every run to dy.
  const T* dyp = nullptr;
  int64_t Pp = 0, Qp = 0, top = 0, left = 0;
  int64_t group;
  const Phase *hp, *wp;
  int64_t M, N, K;
  int64_t c_stride;
  gemm::Epilogue<T> epi;  // none

  ConvBackwardInput(const ConvGeom& geom, const T* dy_, const T* w_, T* dx_, int64_t grp, const Phase& h,
                    const Phase& wph)
      : g(geom), dy(dy_), w(w_), dx(dx_), group(grp), hp(&h), wp(&wph) {
    M = g.Cg;
    N = g.N * h.count * wph.count;
    K = g.Kg * int64_t(h.tap.size() * wph.tap.size());
    c_stride = g.sw;
  }

  // A is the group's filters as (Cg, Kg*taps): A[c, (k, ri, si)] = w[group*Kg + k, c, tap_r, tap_s],
  // packed straight from w into MR-row micro-panels (zero rows past mc). Packing it here, not
  // into a transposed copy first, puts the work where threads share it (gemm.h packs A's
  // blocks in parallel): the copy ran on one thread before every GEMM (9.4 MB for 7x7x512).
  template <class B>
  PYKERN_INLINE void pack_a(int64_t ic, int64_t mc, int64_t pc, int64_t kc, T* ap) const {
    constexpr int MR = B::MR;
    const int64_t nh = int64_t(hp->tap.size()), nw = int64_t(wp->tap.size()), taps = nh * nw;
    const int64_t RS = g.R * g.S;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      T* dst = ap + ir * kc;
      const int rows = int(mc - ir < MR ? mc - ir : MR);
      int64_t k = pc / taps, ri = pc / nw % nh, si = pc % nw;
      for (int64_t kk = 0; kk < kc; ++kk) {
        // w[group*Kg + k, ic + ir + i, tap_r, tap_s] for the micro-panel's rows i
        const T* f = w + ((group * g.Kg + k) * g.Cg + ic + ir) * RS + hp->tap[size_t(ri)] * g.S + wp->tap[size_t(si)];
        for (int i = 0; i < rows; ++i) dst[kk * MR + i] = f[i * RS];
        for (int i = rows; i < MR; ++i) dst[kk * MR + i] = T(0);
        if (++si == nw) {
          si = 0;
          if (++ri == nh) {
            ri = 0;
            ++k;
          }
        }
      }
    }
  }

  // B's rows [pc, pc+kc) x columns [jc, jc+nc) into NR-column panels. A panel's columns fall into
  // runs along one phase row of one image; for each (k, r, s) a run reads one dy row
  // contiguously. From the padded copy (dyp) that is a plain copy with no border test (on 8x8
  // images a run is 8 pixels, and the tests and clipping were most of the gather); without it,
  // each run is clipped to dy and the rest zero-filled.
  template <class B>
  PYKERN_INLINE void pack_b(int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* bp) const {
    constexpr int NR = B::NR;
    struct Run {
      int col, len;
      int64_t dybase;  // dy's offset of (image, the group's first channel)
      int64_t hi, wi;  // the phase row and column of the run's first pixel
    };
    const int64_t nh = int64_t(hp->tap.size()), nw = int64_t(wp->tap.size()), taps = nh * nw;
    if (taps == 0) return;  // K = 0 (each_gemm zeroes such phases itself): nothing to pack, no division
    const bool padded = dyp != nullptr;
    const int64_t PQ = padded ? Pp * Qp : g.P * g.Q, HW = hp->count * wp->count;
    // From the padded copy, row kk's (k, r, s) is one offset for every run: the block's offsets
    // once, then each panel is gather_runs' plain copies.
    int64_t tap[B::KC];
    if (padded)
      for (int64_t kk = 0, k = pc / taps, ri = pc / nw % nh, si = pc % nw; kk < kc; ++kk) {
        tap[kk] = k * PQ + (top + hp->off[size_t(ri)]) * Qp + left + wp->off[size_t(si)];
        if (++si == nw) {
          si = 0;
          if (++ri == nh) {
            ri = 0;
            ++k;
          }
        }
      }
    for (int64_t jr = 0; jr < nc; jr += NR) {
      T* dst = bp + jr * kc;
      const int cols = int(nc - jr < NR ? nc - jr : NR);
      PanelRun pr[NR];
      Run runs[NR];
      const int nruns = panel_runs(jc + jr, cols, HW, wp->count, pr);
      for (int u = 0; u < nruns; ++u)
        runs[u] = {pr[u].col, pr[u].len, (pr[u].n * g.K + group * g.Kg) * PQ, pr[u].row, pr[u].first};
      if (padded) {
        GatherRun gr[NR];
        for (int u = 0; u < nruns; ++u)
          gr[u] = {runs[u].col, runs[u].len, runs[u].dybase + runs[u].hi * Qp + runs[u].wi};
        gather_runs<NR>(dst, kc, cols, dyp, tap, gr, nruns);
        continue;
      }
      int64_t k = pc / taps, ri = pc / nw % nh, si = pc % nw;
      for (int64_t kk = 0; kk < kc; ++kk) {
        T* d = dst + kk * NR;
        const int64_t hoff = hp->off[size_t(ri)], woff = wp->off[size_t(si)];
        for (int u = 0; u < nruns; ++u) {
          const Run& run = runs[u];
          T* o = d + run.col;
          const int64_t p = run.hi + hoff, q0 = run.wi + woff;
          if (uint64_t(p) >= uint64_t(g.P)) {
            for (int t = 0; t < run.len; ++t) o[t] = T(0);
            continue;
          }
          const T* row = dy + run.dybase + (k * g.P + p) * g.Q;  // dy[n, group*Kg + k, p, :]: (Q,)
          copy_clipped(row, q0, g.Q, run.len, o);  // the run's pixels whose q lies in dy
        }
        for (int j = cols; j < NR; ++j) d[j] = T(0);
        if (++si == nw) {
          si = 0;
          if (++ri == nh) {
            ri = 0;
            ++k;
          }
        }
      }
    }
  }

  // A phase row is a run of dx's row (every sw-th element); at stride 1 the whole image is one.
  PYKERN_INLINE T* c_run(int64_t i, int64_t j, int64_t* ldc, int64_t* run) const {
    const int64_t HW = hp->count * wp->count, n = j / HW, pix = j - n * HW, hi = pix / wp->count,
                  wi = pix - hi * wp->count;
    *ldc = g.H * g.W;
    *run = g.sh == 1 && g.sw == 1 ? HW - pix : wp->count - wi;
    return dx + ((n * g.C + group * g.Cg + i) * g.H + hp->first + hi * g.sh) * g.W + wp->first + wi * g.sw;
  }
};

// ------------------------------------------------------------------------------------------
// The direct loop: for a w holding Inf or NaN
// ------------------------------------------------------------------------------------------
// Forms only the spec's products: each dx element sums w * dy over its taps that land in dy,
// (k, r, s) ascending, in the input dtype. Scalar, one thread: it runs only on such inputs.
template <class T>
void direct(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  std::fill(dx, dx + g.x_elems(), T(0));
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t c = 0; c < g.C; ++c) {
      const int64_t grp = c / g.Cg, cg = c - grp * g.Cg;
      T* img = dx + (n * g.C + c) * g.H * g.W;  // dx[n, c]: (H, W)
      for (int64_t k = grp * g.Kg; k < (grp + 1) * g.Kg; ++k)
        for (int64_t r = 0; r < g.R; ++r)
          for (int64_t s = 0; s < g.S; ++s) {
            const T wv = w[((k * g.Cg + cg) * g.R + r) * g.S + s];
            const T* d = dy + (n * g.K + k) * g.P * g.Q;  // dy[n, k]: (P, Q)
            for (int64_t p = 0; p < g.P; ++p) {
              const int64_t h = p * g.sh + r * g.dh - g.ph;
              if (uint64_t(h) >= uint64_t(g.H)) continue;
              for (int64_t q = 0; q < g.Q; ++q) {
                const int64_t x = q * g.sw + s * g.dw - g.pw;
                if (uint64_t(x) < uint64_t(g.W)) img[h * g.W + x] += wv * d[p * g.Q + q];
              }
            }
          }
    }
}

// The pixels of a phase that no tap reaches, in every channel: zeros, written directly (a GEMM
// with no terms would store them a tile at a time through its strided path).
template <class T>
void zero_phase(const ConvGeom& g, const Phase& hp, const Phase& wp, T* dx) {
  for (int64_t img = 0; img < g.N * g.C; ++img)
    for (int64_t hi = 0; hi < hp.count; ++hi) {
      T* row = dx + (img * g.H + hp.first + hi * hp.stride) * g.W + wp.first;  // dx[n, c, h, wp.first::sw]
      for (int64_t wi = 0; wi < wp.count; ++wi) row[wi * wp.stride] = T(0);
    }
}

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------
// How far the taps of an axis's phases reach past dy: (before, after) its `out` rows.
inline std::pair<int64_t, int64_t> reach(const std::vector<Phase>& phases, int64_t out) {
  int64_t lo = 0, hi = out - 1;
  for (const Phase& ph : phases)
    for (int64_t off : ph.off) {  // phase row i reads dy row i + off, i in [0, count)
      lo = std::min(lo, off);
      hi = std::max(hi, ph.count - 1 + off);
    }
  return {-lo, hi - (out - 1)};
}

// run(op) for the Op of each group and phase in turn, after dy is padded once for all of them (on
// `threads` threads, planes split between them); the direct loop where w is not finite.
template <class T, class F>
void each_gemm(const Call& call, int threads, F&& run) {
  const ConvGeom g(call.dims);
  const T* dy = call.input<T>(0);
  const T* w = call.input<T>(1);  // w: (K, Cg, R, S)
  T* dx = call.output<T>();
  for (int64_t i = 0; i < g.w_elems(); ++i)
    if (!std::isfinite(w[i])) return direct(g, dy, w, dx);
  std::vector<Phase> hps, wps;
  for (int64_t h0 = 0; h0 < g.sh && h0 < g.H; ++h0) hps.push_back(phase(h0, g.H, g.P, g.R, g.sh, g.ph, g.dh));
  for (int64_t w0 = 0; w0 < g.sw && w0 < g.W; ++w0) wps.push_back(phase(w0, g.W, g.Q, g.S, g.sw, g.pw, g.dw));
  const auto [top, bottom] = reach(hps, g.P);
  const auto [left, right] = reach(wps, g.Q);
  const PaddedPlanes<T> dyp(dy, g.N * g.K, g.P, g.Q, top, bottom, left, right, threads);
  for (const Phase& hp : hps)
    for (const Phase& wp : wps) {
      const size_t nh = hp.tap.size(), nw = wp.tap.size();
      if (nh * nw == 0) {  // no tap reaches these pixels (1x1 stride 2: three phases of four): dx = 0
        zero_phase(g, hp, wp, dx);
        continue;
      }
      for (int64_t grp = 0; grp < g.G; ++grp) {
        ConvBackwardInput<T> op(g, dy, w, dx, grp, hp, wp);
        if (dyp.p != nullptr) {
          op.dyp = dyp.p;
          op.Pp = dyp.rows;
          op.Qp = dyp.cols;
          op.top = top;
          op.left = left;
        }
        run(op);
      }
    }
}

template <class T>
void run_implicit_gemm(const Call& call) {
  each_gemm<T>(call, 1, [](const ConvBackwardInput<T>& op) {
    gemm::run_serial(op, gemm::simd_path<T, ConvBackwardInput<T>>());
  });
}

template <class T>
void run_threaded(const Call& call) {
  each_gemm<T>(call, call.threads, [&](const ConvBackwardInput<T>& op) { gemm::run_threaded<T>(op, call.threads); });
}

std::vector<int64_t> sizes(const int64_t* dims) {  // dy, w, dx
  const ConvGeom g(dims);
  return {g.y_elems(), g.w_elems(), g.x_elems()};
}

// ------------------------------------------------------------------------------------------
// Table
// ------------------------------------------------------------------------------------------
const Variant kVariants[] = {
    // name            dtypes       launcher
    {"implicit_gemm", kF32 | kF64, by_dtype<run_implicit_gemm<float>, run_implicit_gemm<double>>,
     "implicit GEMM w^T * dy per group and stride phase on matmul's SIMD micro-kernel: dy gathered as "
     "packed, no column buffer, no col2im; one thread"},
    {"threaded", kF32 | kF64, by_dtype<run_threaded<float>, run_threaded<double>>,
     "implicit_gemm on threads sharing the gathered panels, channel x pixel tiles from a counter"},
};

}  // namespace

PYKERN_CPU_TABLE(conv2d_backward_input, "N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups", "dy, w",
                 kVariants, sizes, conv_unsupported);

}  // namespace cpu
}  // namespace pykern
