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
// Indexing: kernels/pykern.h's 64-bit policy (this is the first rung, written for clarity, and
// the spec's shapes are bounded only by memory); the launcher splits dx into launches of at most
// 2^31 - 1 blocks, so the table's rule checks only the sizes and the geometry.
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
conv2d_backward_input_direct_kernel(ConvGradShape s, int64_t first, const T* __restrict__ dy,
                                    const T* __restrict__ w, T* __restrict__ dx) {
  // dy: (N, K, P, Q), w: (K, Cg, R, S), dx: (N, C, H, W); this launch's threads start at dx's
  // flat element `first`.
  int64_t i = first + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
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

// The table's rule, for its one row: dx's size, then the geometry.
std::string unsupported(const Variant&, const Call& c) {
  const ConvGradShape s = c.dims_as<ConvGradShape>();
  int64_t total = 0;
  std::string why = size64_problem("dx (N*C*H*W)", {s.N, s.C, s.H, s.W}, &total);
  return why.empty() ? grad_geometry_problem(s) : why;
}

void launch_direct(const Call& c) {
  const ConvGradShape s = c.dims_as<ConvGradShape>();
  const int64_t total = s.N * s.C * s.H * s.W;  // fits: unsupported() checked
  // One launch per kChunk elements: one thread per element of dx has no grid limit then.
  constexpr int64_t kChunk = kMaxGridX * kBlock;
  dispatch_dtype<float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t first = 0; first < total; first += kChunk) {
      const int64_t count = total - first < kChunk ? total - first : kChunk;
      PYKERN_LAUNCH(ceil_div(count, kBlock), kBlock, 0, c.stream, conv2d_backward_input_direct_kernel<T>)(
          s, first, c.input<T>(0), c.input<T>(1), c.output<T>());
      check_launch(c.name);
    }
  });
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Variant table, in registration order; pykern/cuda/ registers each row
// ------------------------------------------------------------------------------------------

constexpr Variant kVariants[] = {
    // name     dtypes       default  launcher
    {"direct",  kF32 | kF64, true,    launch_direct,
     "Direct gather, one thread per element of dx: taps whose output position divides by the "
     "stride."},
};

PYKERN_TABLE(conv2d_backward_input, ConvGradShape, "dy, w", kVariants, unsupported);

}  // namespace pykern
