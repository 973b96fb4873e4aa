// conv2d's gradient with respect to its filter (the spec: pykern/ops/conv2d_backward.py):
// x: (N, C, H, W), dy: (N, K, P, Q) -> dw: (K, Cg, R, S), any stride, padding, dilation, groups.
// Padded taps multiply as zeros (0 * Inf is NaN), as in the spec and torch.
//
// Variants:
//   direct        one thread per element of dw, summing x_pad * dy over N, P and Q from global
//                 memory: only K*Cg*R*S threads, each with N*P*Q terms; correct, not fast
//   block_reduce  one block per element of dw: up to kReduceThreads threads split the N*P*Q
//                 terms (consecutive threads take consecutive q, so reads of dy coalesce), then
//                 a fixed tree reduction in shared memory; enough blocks to fill the GPU even
//                 when dw is small and N*P*Q large, the usual shape of a weight gradient
//
// Abbreviations: Cg = C/groups, Kg = K/groups channels per group. The input gradient is in
// kernels/conv2d_backward_input.cu (one variant table per file, named by the file).
// Indexing: kernels/pykern.h's 64-bit policy (the spec's shapes are bounded only by memory); the
// table's rule checks the sizes, the geometry and each row's grid.
#include <stdexcept>
#include <string>

#include "conv2d_backward.h"
#include "dispatch.cuh"
#include "launch.cuh"

namespace pykern {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxGridX = 2147483647;
constexpr int kReduceThreads = 128;  // at most this many threads share one element's sum
// ... and each gets at least this many terms (the launcher picks the power of two): below that
// the reduction tree and the idle lanes cost more than the sums.
constexpr int64_t kMinTermsPerThread = 8;
static_assert((kReduceThreads & (kReduceThreads - 1)) == 0, "the tree reduction halves the active threads each step");
static_assert(kReduceThreads % 32 == 0 && kReduceThreads <= 1024, "whole warps, within one block's 1024 threads");

// The (k, ci, r, t) of dw's flat index i and the input channel c it reads.
struct Tap {
  int64_t k, ci, r, t, c;
};
__device__ __forceinline__ Tap tap_of(const ConvGradShape& s, int64_t i) {
  const int64_t cg = s.C / s.groups;
  Tap a;
  a.t = i % s.S;
  i /= s.S;
  a.r = i % s.R;
  i /= s.R;
  a.ci = i % cg;
  a.k = i / cg;
  a.c = (a.k / (s.K / s.groups)) * cg + a.ci;
  return a;
}

// One term of dw[k, ci, r, t]: x_pad[n, c, ...] * dy[n, k, p, q].
template <typename T>
__device__ __forceinline__ T term(const ConvGradShape& s, const Tap& a, const T* x, const T* dy, int64_t n, int64_t p,
                                  int64_t q) {
  const int64_t ih = p * s.sh - s.ph + a.r * s.dh;
  const int64_t iw = q * s.sw - s.pw + a.t * s.dw;
  // Padding is zeros that multiply like any value (0 * Inf is NaN, as in the spec).
  const T v = (0 <= ih && ih < s.H && 0 <= iw && iw < s.W) ? x[((n * s.C + a.c) * s.H + ih) * s.W + iw] : T(0);
  return v * dy[((n * s.K + a.k) * s.P + p) * s.Q + q];
}

template <typename T>
__global__ void __launch_bounds__(kBlock)
conv2d_backward_weight_direct_kernel(ConvGradShape s, const T* __restrict__ x, const T* __restrict__ dy,
                                     T* __restrict__ dw) {
  // x: (N, C, H, W), dy: (N, K, P, Q), dw: (K, Cg, R, S).
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= s.K * (s.C / s.groups) * s.R * s.S) return;
  const Tap a = tap_of(s, i);
  T acc = T(0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t q = 0; q < s.Q; ++q) acc += term(s, a, x, dy, n, p, q);
  dw[i] = acc;
}

template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
conv2d_backward_weight_block_reduce_kernel(ConvGradShape s, const T* __restrict__ x, const T* __restrict__ dy,
                                           T* __restrict__ dw) {
  // x: (N, C, H, W), dy: (N, K, P, Q), dw: (K, Cg, R, S); block b computes dw.flat[b] with
  // blockDim.x threads, a power of two <= kReduceThreads.
  PYKERN_SHARED(T, part, [kReduceThreads]);  // one partial sum per thread
  const Tap a = tap_of(s, blockIdx.x);
  const int t = threadIdx.x, nt = blockDim.x;
  T acc = T(0);
  for (int64_t e = t; e < s.N * s.P * s.Q; e += nt) {
    const int64_t q = e % s.Q, j = e / s.Q;
    acc += term(s, a, x, dy, j / s.P, j % s.P, q);
  }
  part[t] = acc;
  __syncthreads();
  for (int half = nt / 2; half > 0; half /= 2) {  // a fixed tree: the same order on every run
    if (t < half) part[t] += part[t + half];
    __syncthreads();
  }
  if (t == 0) dw[blockIdx.x] = part[0];
}

// The threads one dw element's sum is split over: a power of two <= kReduceThreads, each with
// at least kMinTermsPerThread of the N*P*Q terms.
int reduce_threads(int64_t terms) {
  int threads = 1;
  while (threads < kReduceThreads && threads * 2 * kMinTermsPerThread <= terms) threads *= 2;
  return threads;
}

void launch_direct(const Call& c) {
  const ConvGradShape s = c.dims_as<ConvGradShape>();
  const int64_t total = s.K * (s.C / s.groups) * s.R * s.S;  // fits: unsupported() checked
  dispatch_dtype<float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PYKERN_LAUNCH(ceil_div(total, kBlock), kBlock, 0, c.stream, conv2d_backward_weight_direct_kernel<T>)(
        s, c.input<T>(0), c.input<T>(1), c.output<T>());
    check_launch(c.name);
  });
}

void launch_block_reduce(const Call& c) {
  const ConvGradShape s = c.dims_as<ConvGradShape>();
  const int64_t blocks = s.K * (s.C / s.groups) * s.R * s.S;  // fits: unsupported() checked
  const int threads = reduce_threads(s.N * s.P * s.Q);
  dispatch_dtype<float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PYKERN_LAUNCH(static_cast<unsigned int>(blocks), threads, 0, c.stream,
                  conv2d_backward_weight_block_reduce_kernel<T>)(
        s, c.input<T>(0), c.input<T>(1), c.output<T>());
    check_launch(c.name);
  });
}

// The table's rule: dw's and dy's sizes, and each row's grid (direct: one thread per element of
// dw; block_reduce: one block per element).
std::string unsupported(const Variant& row, const Call& c) {
  const ConvGradShape s = c.dims_as<ConvGradShape>();
  int64_t total = 0, terms = 0;
  // C/groups, or C for a groups below 1 (which grad_geometry_problem then refuses): no division
  // by zero before the geometry is checked.
  std::string why = size64_problem("dw (K*C/groups*R*S)", {s.K, s.groups >= 1 ? s.C / s.groups : s.C, s.R, s.S},
                                    &total);
  if (why.empty()) why = size64_problem("dy (N*P*Q)", {s.N, s.P, s.Q}, &terms);
  if (why.empty()) why = grad_geometry_problem(s);
  if (!why.empty()) return why;
  if (row.launch == launch_direct && (total + kBlock - 1) / kBlock > kMaxGridX)
    return "dw needs more than 2^31 blocks of one thread per element";
  if (row.launch == launch_block_reduce && total > kMaxGridX)
    return "dw has " + std::to_string(total) + " elements, one block each; gridDim.x is limited to 2^31 - 1";
  return "";
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Variant table, in registration order; pykern/cuda/ registers each row
// ------------------------------------------------------------------------------------------

constexpr Variant kVariants[] = {
    // name           dtypes       default  launcher
    {"direct",        kF32 | kF64, false,   launch_direct,
     "Direct reduction, one thread per element of dw over N*P*Q terms from global memory."},
    {"block_reduce",  kF32 | kF64, true,    launch_block_reduce,
     "One block per element of dw: threads split the N*P*Q terms, then a shared-memory tree "
     "reduction."},
};

PYKERN_TABLE(conv2d_backward_weight, ConvGradShape, "x, dy", kVariants, unsupported);

}  // namespace pykern
