// matmul on the CPU, compiled: c = op(a) @ op(b) (pykern/ops/matmul.py), float32 and float64.
//
// The ladder (the table at the bottom), each rung one technique more than the one before:
//   naive      i-k-j loops: c's row i gathers a[i, k] * b's row k, k in order; no blocking
//   blocked    the GotoBLAS/BLIS structure: B packed into KC x NR panels for L1/L3, A into
//              MR x KC panels for L2 (MC/KC/NC blocking as data), a 4 x 8 micro-kernel in plain
//              scalar C++ (what the compiler makes of it for the baseline ISA: SSE2 on x86-64)
//   simd       the same loops around a register-blocked SIMD micro-kernel for the active ISA:
//              AVX2+FMA 5 x 16 (f32) / 5 x 8 (f64), AVX-512 8 x 32 / 8 x 16, baseline 4 x 8 / 4 x 4
//   threaded   simd with the BLIS loops shared by threads: B's block packed once by all of them,
//              c's tiles (ic row blocks, and column ranges when c is short) taken from a counter
// Every rung takes both transpose flags at no cost: packing reads op(a) and op(b) through
// (row, column) strides, so a transposed operand is only another pair of strides.
//
// The loops, the micro-kernels, the threading and the summation order (accuracy: error_model
// "terms", independent of the thread count) are kernels/cpu/gemm.h's, shared with conv2d; this
// file says what a matmul's operands are.
#include "gemm.h"

namespace pykern {
namespace cpu {
namespace {

using gemm::Strided;

// ------------------------------------------------------------------------------------------
// Operands
// ------------------------------------------------------------------------------------------
// op(a)(i, k) = a[i * rsa + k * csa], op(b)(k, j) = b[k * rsb + j * csb], c row-major: a gemm.h Op.
template <class T>
struct Gemm : gemm::StridedA<T> {  // op(a) packed by StridedA
  Strided<T> b;
  T* c;
  int64_t M, N, K;
  gemm::Epilogue<T> epi;  // none

  template <class B>
  PYKERN_INLINE void pack_b(int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* bp) const {
    gemm::pack_columns<B>(b, pc, kc, jc, nc, bp);
  }
  PYKERN_INLINE T* c_run(int64_t i, int64_t j, int64_t* ldc, int64_t* run) const {
    *ldc = N;
    *run = N - j;
    return c + i * N + j;
  }
};

template <class T>
Gemm<T> operands(const Call& call) {
  const int64_t M = call.dims[0], N = call.dims[1], K = call.dims[2];
  const bool ta = call.dims[3] != 0, tb = call.dims[4] != 0;
  Gemm<T> g;
  g.a = {call.input<T>(0), ta ? 1 : K, ta ? M : 1};  // a: (M, K), or (K, M) with transpose_a
  g.b = {call.input<T>(1), tb ? 1 : N, tb ? K : 1};  // b: (K, N), or (N, K) with transpose_b
  g.c = call.output<T>();                             // c: (M, N)
  g.M = M;
  g.N = N;
  g.K = K;
  return g;
}

// ------------------------------------------------------------------------------------------
// Rung 1: naive
// ------------------------------------------------------------------------------------------
template <class T>
void naive(const Gemm<T>& g) {
  for (int64_t i = 0; i < g.M; ++i) {
    T* crow = g.c + i * g.N;  // c[i, :]: (N,)
    for (int64_t j = 0; j < g.N; ++j) crow[j] = T(0);
    for (int64_t k = 0; k < g.K; ++k) {
      const T aik = g.a.p[i * g.a.rs + k * g.a.cs];
      const T* brow = g.b.p + k * g.b.rs;  // op(b)[k, :], stride cs
      for (int64_t j = 0; j < g.N; ++j) crow[j] += aik * brow[j * g.b.cs];
    }
  }
}

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------
template <class T>
void run_naive(const Call& call) { naive(operands<T>(call)); }

template <class T>
void run_blocked(const Call& call) {
  gemm::run_serial(operands<T>(call), gemm::blocked_path<T, Gemm<T>>());
}

template <class T>
void run_simd(const Call& call) { gemm::run_serial(operands<T>(call), gemm::simd_path<T, Gemm<T>>()); }

template <class T>
void run_threaded(const Call& call) { gemm::run_threaded<T>(operands<T>(call), call.threads); }

std::vector<int64_t> sizes(const int64_t* d) { return {d[0] * d[2], d[2] * d[1], d[0] * d[1]}; }  // a, b, c

// ------------------------------------------------------------------------------------------
// Table
// ------------------------------------------------------------------------------------------
constexpr unsigned kTransposes = kTransposeA | kTransposeB;
const Variant kVariants[] = {
    // name        dtypes       launcher
    {"naive", kF32 | kF64, by_dtype<run_naive<float>, run_naive<double>>,
     "i-k-j loops, k in order; no blocking (baseline ISA)", kTransposes},
    {"blocked", kF32 | kF64, by_dtype<run_blocked<float>, run_blocked<double>>,
     "GotoBLAS loops: packed A (MCxKC) and B (KCxNC) panels, 4x8 plain C++ micro-kernel (baseline ISA)", kTransposes},
    {"simd", kF32 | kF64, by_dtype<run_simd<float>, run_simd<double>>,
     "packed panels + register-blocked SIMD micro-kernel (AVX-512 8x32, AVX2+FMA 5x16, SSE 4x8 f32)",
     kTransposes},
    {"threaded", kF32 | kF64, by_dtype<run_threaded<float>, run_threaded<double>>,
     "simd on threads sharing packed B, c's tiles from a counter; as many threads as BLAS may use", kTransposes},
};

}  // namespace

PYKERN_CPU_TABLE(matmul, "M, N, K, transpose_a, transpose_b", "a, b", kVariants, sizes);

}  // namespace cpu
}  // namespace pykern
