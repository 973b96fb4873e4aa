// conv2d on the CPU, compiled (torch.nn.functional.conv2d semantics, pykern/ops/conv2d.py):
// y = act(conv(x, w) + bias), NCHW in and out, any stride / padding / dilation / groups,
// float32 and float64, the fused bias + ReLU epilogue of the CUDA rungs.
//
// The ladder (the table at the bottom):
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
// in (c, r, s) order within a KC block and the blocks in order, then the bias, then ReLU; threads
// split outputs, never a sum. Spatial padding is packed as zeros that multiply like values
// (0 * Inf = NaN reaches exactly the outputs whose window holds the Inf, as in torch).
#include "conv.h"
#include "gemm.h"

namespace pykern {
namespace cpu {
namespace {

using gemm::Strided;

// ------------------------------------------------------------------------------------------
// The implicit GEMM of one group (a gemm.h Op)
// ------------------------------------------------------------------------------------------
// Rows: the group's Kg output channels. Columns: every output pixel of every image, j = n*PQ + pix
// (so small images share panels and tiles). Reduction: the group's CRS filter taps.
template <class T>
struct ConvForward {
  ConvGeom g;
  const T* x;  // x: (N, C, H, W)
  T* y;        // y: (N, K, P, Q)
  int64_t group;
  Strided<T> a;  // the group's filters: (Kg, CRS) rows of w
  int64_t M, N, K;
  gemm::Epilogue<T> epi;

  ConvForward(const ConvGeom& geom, const T* x_, const T* w, const T* bias, T* y_, int64_t grp, bool relu)
      : g(geom), x(x_), y(y_), group(grp), a{w + grp * geom.Kg * geom.CRS, geom.CRS, 1} {
    M = g.Kg;
    N = g.N * g.PQ;
    K = g.CRS;
    epi.bias = bias != nullptr ? bias + grp * g.Kg : nullptr;
    epi.relu = relu;
  }

  template <class B>
  PYKERN_INLINE void pack_a(int64_t ic, int64_t mc, int64_t pc, int64_t kc, T* ap) const {
    gemm::pack_rows<B>(a, ic, mc, pc, kc, ap);
  }

  // Gathers im2col(x)'s rows [pc, pc+kc) x columns [jc, jc+nc) into NR-column panels. A panel's
  // columns fall into runs that share one output row of one image; for each tap a run reads one
  // input row, contiguously at stride 1, and gets zeros where its window leaves the input.
  template <class B>
  PYKERN_INLINE void pack_b(int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* bp) const {
    constexpr int NR = B::NR;
    struct Run {
      int col, len;
      int64_t xbase;     // x's offset of (image, the group's first channel)
      int64_t ih0, iw0;  // the input row and column of tap (0, 0) for the run's first output
    };
    for (int64_t jr = 0; jr < nc; jr += NR) {
      T* dst = bp + jr * kc;
      const int cols = int(nc - jr < NR ? nc - jr : NR);
      Run runs[NR];
      int nruns = 0;
      for (int col = 0; col < cols;) {
        const int64_t j = jc + jr + col, n = j / g.PQ, pix = j - n * g.PQ, p = pix / g.Q, q = pix - p * g.Q;
        const int len = int(cols - col < g.Q - q ? cols - col : g.Q - q);
        runs[nruns++] = {col, len, (n * g.C + group * g.Cg) * g.H * g.W, p * g.sh - g.ph, q * g.sw - g.pw};
        col += len;
      }
      const int64_t RS = g.R * g.S;
      int64_t c = pc / RS, r = pc / g.S % g.R, s = pc % g.S;
      for (int64_t k = 0; k < kc; ++k) {
        T* d = dst + k * NR;
        for (int u = 0; u < nruns; ++u) {
          const Run& run = runs[u];
          T* o = d + run.col;
          const int64_t ih = run.ih0 + r * g.dh, iw0 = run.iw0 + s * g.dw;
          if (uint64_t(ih) >= uint64_t(g.H)) {
            for (int t = 0; t < run.len; ++t) o[t] = T(0);
            continue;
          }
          const T* row = x + run.xbase + (c * g.H + ih) * g.W;  // x[n, group*Cg + c, ih, :]: (W,)
          if (g.sw == 1) {
            int64_t lo = -iw0, hi = g.W - iw0;  // the run's outputs whose column lies in the input
            lo = lo < 0 ? 0 : lo > run.len ? run.len : lo;
            hi = hi < lo ? lo : hi > run.len ? run.len : hi;
            for (int64_t t = 0; t < lo; ++t) o[t] = T(0);
            for (int64_t t = lo; t < hi; ++t) o[t] = row[iw0 + t];
            for (int64_t t = hi; t < run.len; ++t) o[t] = T(0);
          } else {
            for (int t = 0; t < run.len; ++t) {
              const int64_t iw = iw0 + t * g.sw;
              o[t] = uint64_t(iw) < uint64_t(g.W) ? row[iw] : T(0);
            }
          }
        }
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
// f(op) for the Op of each group in turn.
template <class T, class F>
void each_group(const Call& call, F&& f) {
  const ConvGeom g(call.dims);
  const bool relu = call.dims[16] != 0;
  for (int64_t grp = 0; grp < g.G; ++grp)
    f(ConvForward<T>(g, call.input<T>(0), call.input<T>(1), call.input<T>(2), call.output<T>(), grp, relu));
}

template <class T>
void run_implicit_gemm(const Call& call) {
  each_group<T>(call, [](const ConvForward<T>& op) { gemm::run_serial(op, gemm::simd_path<T, ConvForward<T>>()); });
}

template <class T>
void run_threaded(const Call& call) {
  each_group<T>(call, [&](const ConvForward<T>& op) { gemm::run_threaded<T>(op, call.threads); });
}

template <void (*f32)(const Call&), void (*f64)(const Call&)>
void by_dtype(const Call& call) {
  if (call.dtype == DType::f32)
    f32(call);
  else
    f64(call);
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
