// relu_backward on the CPU, compiled: dx = 0 where x <= 0, else dy (pykern/ops/relu_backward.py).
//
// Variants (the table at the bottom):
//   simd      one pass, vectorized for the active ISA (AVX-512 / AVX2 / baseline), threaded over
//             chunks from a counter where the size pays for a thread
//
// Exact: dx is +0.0 or dy's own bits (a blend, not arithmetic), and a NaN in x is not <= 0, so it
// passes dy, as torch's threshold_backward does. dx may be dy or x (in place): each element of
// both is read before that element of dx is written, by the same thread.
#include "cpu.h"

namespace pykern {
namespace cpu {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------
template <class T>
PYKERN_INLINE void relu_backward_body(const T* dy, const T* x, T* dx, int64_t n) {
  // dy, x, dx: (n,); dx may be dy or x.
  for (int64_t i = 0; i < n; ++i) {
    const T g = dy[i];
    dx[i] = x[i] <= T(0) ? T(0) : g;
  }
}

PYKERN_ISA_WRAPPERS(relu_backward_f32, relu_backward_body<float>,
                    (const float* dy, const float* x, float* dx, int64_t n), (dy, x, dx, n))
PYKERN_ISA_WRAPPERS(relu_backward_f64, relu_backward_body<double>,
                    (const double* dy, const double* x, double* dx, int64_t n), (dy, x, dx, n))

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------
template <class T, void (*kernel)(const T*, const T*, T*, int64_t)>
void run(const Call& call) {
  const int64_t n = call.dims[0];
  const T* dy = call.input<T>(0);
  const T* x = call.input<T>(1);
  T* dx = call.output<T>();
  const int threads = n * int64_t(sizeof(T)) < elementwise_threaded_bytes() ? 1 : call.threads;
  for_chunks(n, kElementwiseChunkBytes / int64_t(sizeof(T)), threads, [&](int64_t lo, int64_t hi) { kernel(dy + lo, x + lo, dx + lo, hi - lo); });
}

void launch_simd(const Call& call) {
  if (call.dtype == DType::f32)
    run<float, relu_backward_f32>(call);
  else
    run<double, relu_backward_f64>(call);
}

std::vector<int64_t> sizes(const int64_t* dims) { return {dims[0], dims[0], dims[0]}; }  // dy, x, dx

// ------------------------------------------------------------------------------------------
// Table
// ------------------------------------------------------------------------------------------
const Variant kVariants[] = {
    // name    dtypes       launcher      technique
    {"simd", kF32 | kF64, launch_simd,
     "one vectorized blend pass (AVX-512/AVX2/baseline chosen at run time), threaded from 2 MiB "
     "(128 KiB on torch's shared threads)"},
};

}  // namespace

PYKERN_CPU_TABLE(relu_backward, "n", "dy, x", kVariants, sizes);

}  // namespace cpu
}  // namespace pykern
