// conv2d's gradient with respect to its input (the spec: pykern/ops/conv2d_backward.py):
// dy: (N, K, P, Q), w: (K, Cg, R, S) -> dx: (N, C, H, W), any stride, padding, dilation, groups.
//
// Variants:
//   direct  one thread per element of dx, gathering its terms: for each tap (r, s), the output
//           (p, q) that read this input element through it, if any (p*sh = h + ph - r*dh must
//           divide by the stride and land inside dy), times w over the group's Kg channels
//
// Abbreviations: Cg = C/groups, Kg = K/groups channels per group. The weight gradient is in
// kernels/conv2d_backward_weight.cu: one variant table per file, named by the file, is what
// csrc/variant_tables.py reads, and each gradient is its own registered op.
//
// Indexing is 64-bit throughout: this is the first rung, written for clarity, and the spec's
// shapes are bounded only by memory.
#include <stdexcept>
#include <string>

#include "conv2d_backward.h"
#include "dispatch.cuh"
#include "launch.cuh"

namespace pykern {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxGridX = 2147483647;

template <typename T>
__global__ void __launch_bounds__(kBlock)
conv2d_backward_input_direct_kernel(ConvShape s, const T* __restrict__ dy, const T* __restrict__ w,
                                    T* __restrict__ dx) {
  // dy: (N, K, P, Q), w: (K, Cg, R, S), dx: (N, C, H, W).
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= s.N * s.C * s.H * s.W) return;
  // The column varies fastest across threads, so a warp writes dx contiguously.
  const int64_t col = i % s.W;
  i /= s.W;
  const int64_t h = i % s.H;
  i /= s.H;
  const int64_t c = i % s.C;
  const int64_t n = i / s.C;
  const int64_t cg = s.C / s.groups, kg = s.K / s.groups;
  const int64_t g = c / cg, ci = c - g * cg;
  T acc = T(0);
  for (int64_t r = 0; r < s.R; ++r) {
    const int64_t hp = h + s.ph - r * s.dh;  // = p * sh for the output row p reading this row through tap r
    if (hp < 0) break;                       // and for every later r
    if (hp % s.sh != 0 || hp / s.sh >= s.P) continue;
    const int64_t p = hp / s.sh;
    for (int64_t t = 0; t < s.S; ++t) {
      const int64_t wp = col + s.pw - t * s.dw;
      if (wp < 0) break;
      if (wp % s.sw != 0 || wp / s.sw >= s.Q) continue;
      const int64_t q = wp / s.sw;
      for (int64_t k = g * kg; k < g * kg + kg; ++k)
        acc += dy[((n * s.K + k) * s.P + p) * s.Q + q] * w[((k * cg + ci) * s.R + r) * s.S + t];
    }
  }
  dx[((n * s.C + c) * s.H + h) * s.W + col] = acc;
}

void launch_direct(DType dt, const ConvShape& s, const void* dy, const void* w, void* dx, cudaStream_t stream) {
  constexpr const char* what = "conv2d_backward_input_direct";
  const int64_t total = checked_product(std::string(what) + ": dx (N*C*H*W)", {s.N, s.C, s.H, s.W});
  if ((total + kBlock - 1) / kBlock > kMaxGridX)
    throw std::domain_error(std::string(what) + ": dx needs more than 2^31 blocks of one thread per element");
  dispatch_dtype<float, double>(dt, what, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PYKERN_LAUNCH(ceil_div(total, kBlock), kBlock, 0, stream, conv2d_backward_input_direct_kernel<T>)(
        s, static_cast<const T*>(dy), static_cast<const T*>(w), static_cast<T*>(dx));
    check_launch(what);
  });
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Variant table, in registration order; pykern/cuda/conv2d_backward.py registers each row
// ------------------------------------------------------------------------------------------

constexpr Variant<ConvBackwardLauncher> kVariants[] = {
    // name     dtypes       default  launcher
    {"direct",  kF32 | kF64, true,    launch_direct,
     "Direct gather, one thread per element of dx: taps whose output position divides by the "
     "stride."},
};

VariantTable<ConvBackwardLauncher> conv2d_backward_input_variants() { return table_of(kVariants); }

}  // namespace pykern
