// relu on the CPU, compiled: y = x where x >= 0 or NaN, else 0 (pykern/ops/relu.py).
//
// Variants (the table at the bottom):
//   simd      one pass, vectorized for the active ISA (AVX-512 / AVX2 / baseline), threaded over
//             chunks from a counter where the size pays for a thread
//
// The select `x < 0 ? 0 : x` is the spec's np.where, written so that the compiler's vector
// compare-and-blend keeps NaN (a NaN is not < 0: it passes through, payload and all). max(x, 0)
// is not the same: x86's maxps returns its second operand when either is NaN. In place (y == x)
// is allowed: each element is read before it is written, by the same thread.
#include "cpu.h"

namespace pykern {
namespace cpu {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------
template <class T>
PYKERN_INLINE void relu_body(const T* x, T* y, int64_t n) {
  // x, y: (n,), possibly the same buffer.
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    y[i] = v < T(0) ? T(0) : v;
  }
}

PYKERN_ISA_WRAPPERS(relu_f32, relu_body<float>, (const float* x, float* y, int64_t n), (x, y, n))
PYKERN_ISA_WRAPPERS(relu_f64, relu_body<double>, (const double* x, double* y, int64_t n), (x, y, n))

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------
template <class T, void (*kernel)(const T*, T*, int64_t)>
void run(const Call& call) {
  const int64_t n = call.dims[0];
  const T* x = call.input<T>(0);
  T* y = call.output<T>();
  const int threads = n * int64_t(sizeof(T)) < elementwise_threaded_bytes() ? 1 : call.threads;
  for_chunks(n, kElementwiseChunkBytes / int64_t(sizeof(T)), threads, [&](int64_t lo, int64_t hi) { kernel(x + lo, y + lo, hi - lo); });
}

void launch_simd(const Call& call) {
  if (call.dtype == DType::f32)
    run<float, relu_f32>(call);
  else
    run<double, relu_f64>(call);
}

std::vector<int64_t> sizes(const int64_t* dims) { return {dims[0], dims[0]}; }  // x, y

// ------------------------------------------------------------------------------------------
// Table
// ------------------------------------------------------------------------------------------
const Variant kVariants[] = {
    // name    dtypes       launcher      technique
    {"simd", kF32 | kF64, launch_simd,
     "one vectorized select pass (AVX-512/AVX2/baseline chosen at run time), threaded from 2 MiB "
     "(128 KiB on torch's shared threads)"},
};

}  // namespace

PYKERN_CPU_TABLE(relu, "n", "x", kVariants, sizes);

}  // namespace cpu
}  // namespace pykern
