// conv2d's first rung (the variants: kernels/conv2d/table.cu):
//   direct  one thread per output element, loops over (c, r, s); float32/64, all features
#include "conv2d/conv.cuh"

namespace pykern {
namespace conv2d {
namespace {

constexpr int kDirectBlock = 256;

template <typename T>
__global__ void __launch_bounds__(kDirectBlock)
conv2d_direct_kernel(Geom g, const T* __restrict__ x, const T* __restrict__ w,
                     const T* __restrict__ bias, T* __restrict__ y) {
  // x: (N, C, H, W), w: (K, Cg, R, S), bias: (K,) or null, y: (N, K, P, Q).
  // One thread per element of y, q fastest: a warp reads neighbouring x columns (coalesced
  // for stride 1) and mostly one filter (broadcast). 64-bit: N*K*P*Q may exceed 2^31.
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(g.N) * g.K * g.PQ) return;
  const int q = static_cast<int>(i % g.Q);
  int64_t rest = i / g.Q;
  const int p = static_cast<int>(rest % g.P);
  rest /= g.P;
  const int k = static_cast<int>(rest % g.K);
  const int n = static_cast<int>(rest / g.K);
  const int grp = k / g.Kg;
  const T* xg = x + (static_cast<int64_t>(n) * g.C + static_cast<int64_t>(grp) * g.Cg) * g.HW;  // (Cg, H, W)
  const T* wk = w + static_cast<int64_t>(k) * g.CRS;  // (Cg, R, S)
  const int ih0 = p * g.sh - g.ph, iw0 = q * g.sw - g.pw;
  T acc = T(0);
  for (int c = 0; c < g.Cg; ++c) {
    for (int r = 0; r < g.R; ++r) {
      const int ih = ih0 + r * g.dh;
      // Unsigned compare: one test covers both ih < 0 (wraps to huge) and ih >= H.
      const bool row_in = static_cast<unsigned>(ih) < static_cast<unsigned>(g.H);
      for (int s = 0; s < g.S; ++s) {
        const int iw = iw0 + s * g.dw;
        // Padding is zeros that multiply like any value (0 * Inf is NaN, as in the spec and
        // torch), so padded taps are not skipped.
        T v = T(0);
        if (row_in && static_cast<unsigned>(iw) < static_cast<unsigned>(g.W)) v = xg[c * g.HW + ih * g.W + iw];
        acc += v * wk[(c * g.R + r) * g.S + s];
      }
    }
  }
  y[i] = epilogue(acc, bias, k, g.relu);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launcher and rule

void launch_direct(const Call& c) {
  const Geom g = make_geom(c.dims_as<ConvShape>());
  const int64_t total = static_cast<int64_t>(g.N) * g.K * g.PQ;
  dispatch_dtype<float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PYKERN_LAUNCH(ceil_div(total, kDirectBlock), kDirectBlock, 0, c.stream, conv2d_direct_kernel<T>)(
        g, c.input<T>(0), c.input<T>(1), c.input<T>(2), c.output<T>());
    check_launch(c.name);
  });
}

// Its grid: one thread per output, in blocks of kDirectBlock along gridDim.x.
std::string direct_problem(DType, const ConvShape& s) {
  if (static_cast<double>(s.N) * s.K * s.P * s.Q / kDirectBlock > kIndex32Max)
    return "N*K*P*Q needs more than 2^31 blocks of one thread per output";
  return "";
}

const Rung kDirectRung{launch_direct, direct_problem, nullptr};

}  // namespace conv2d
}  // namespace pykern
