// The CPU's ceilings, measured on this machine: the roofline that `pykern bench` puts each CPU
// ladder against (pykern/benchmark/ceilings.py), instead of datasheet constants. Not variants:
// plain functions (kernels/cpu/ceilings.h), bound by csrc/cpu/module.cpp, timed from Python.
//
//   fma_peak      compute: independent fused multiply-add chains on the active ISA's widest
//                 vectors (AVX-512 / AVX2+FMA / baseline), one set per thread, nothing loaded or
//                 stored in the loop: the most floating-point operations per second the cores do
//   stream_copy   memory: STREAM's Copy, c = a, on arrays far larger than the last-level cache
//   stream_triad  memory: STREAM's Triad, a = b + s * c, likewise
//
// The arrays and the work per call are the caller's, so a test runs each in microseconds and a
// benchmark in a fraction of a second on hundreds of MiB.
#include "ceilings.h"

namespace pykern {
namespace cpu {
namespace {

// ------------------------------------------------------------------------------------------
// Peak FMA throughput
// ------------------------------------------------------------------------------------------
// The vector types are cpu.h's: each ISA wrapper compiles the one body below to its own
// registers; -ffp-contract=fast makes `acc * m + a` one FMA where the ISA has it (AVX2, AVX-512,
// NEON); the baseline x86 path (SSE2) has none and does a multiply and an add: the same 2
// operations per lane, the peak that path can reach.

// One ISA's chains, as data. An FMA's result is ready 4-5 cycles after it starts and a core
// starts up to 2 a cycle (Zen 4, Skylake-SP, Neoverse): at least 10 independent chains keep
// both units busy. The chains and the two operands (m, a) must all stay in registers, or the
// loop would measure loads and stores instead.
template <class T, class V, int Chains, int Registers>
struct FmaPath {
  using Elem = T;
  using Vec = V;
  static constexpr int kLanes = int(sizeof(V) / sizeof(T));
  static constexpr int kChains = Chains;
  static_assert(sizeof(V) % sizeof(T) == 0, "a vector holds whole elements");
  static_assert(Chains >= 10, "fewer chains than FMA latency x FMA units: the loop would wait on results");
  static_assert(Chains + 2 <= Registers, "the chains and both operands must fit in the vector registers");
};
// Registers: x86-64 has 16 xmm / ymm and 32 zmm (AVX-512); arm64 has 32 NEON registers.
using FmaF32Base = FmaPath<float, f32x4, 12, 16>;
using FmaF64Base = FmaPath<double, f64x2, 12, 16>;
using FmaF32Avx2 = FmaPath<float, f32x8, 12, 16>;
using FmaF64Avx2 = FmaPath<double, f64x4, 12, 16>;
using FmaF32Avx512 = FmaPath<float, f32x16, 24, 32>;
using FmaF64Avx512 = FmaPath<double, f64x8, 24, 32>;

// acc <- acc * m + a, kChains times per iteration. With 0 < m < 1 every chain converges to
// a / (1 - m): no overflow, no subnormal, whatever the iteration count. m and a come from the
// caller at run time, so the compiler cannot fold the loop away; the checksum keeps it alive.
template <class P>
PYKERN_INLINE double fma_body(int64_t iterations, typename P::Elem m, typename P::Elem a) {
  using T = typename P::Elem;
  using V = typename P::Vec;
  V acc[P::kChains];
  const V vm = m - V{}, va = a - V{};  // broadcasts
#pragma GCC unroll 32
  for (int c = 0; c < P::kChains; ++c) acc[c] = va * T(c + 1);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 32  // every chain in its own register: the loop body is kChains FMAs
    for (int c = 0; c < P::kChains; ++c) acc[c] = acc[c] * vm + va;
  }
  double sum = 0;
  for (int c = 0; c < P::kChains; ++c)
    for (int l = 0; l < P::kLanes; ++l) sum += double(acc[c][l]);
  return sum;
}

template <class T>
using FmaFn = double (*)(int64_t iterations, T m, T a);

template <class T>
struct FmaChoice {
  FmaFn<T> run;
  int lanes, chains;
};

#define PYKERN_FMA_PATH(name, P, target)                                                     \
  target double name(int64_t iterations, typename P::Elem m, typename P::Elem a) {          \
    return fma_body<P>(iterations, m, a);                                                    \
  }                                                                                          \
  constexpr FmaChoice<typename P::Elem> name##_choice{name, P::kLanes, P::kChains};
PYKERN_FMA_PATH(fma_f32_baseline, FmaF32Base, )
PYKERN_FMA_PATH(fma_f64_baseline, FmaF64Base, )
#if PYKERN_X86
PYKERN_FMA_PATH(fma_f32_avx2, FmaF32Avx2, PYKERN_TARGET_AVX2)
PYKERN_FMA_PATH(fma_f64_avx2, FmaF64Avx2, PYKERN_TARGET_AVX2)
PYKERN_FMA_PATH(fma_f32_avx512, FmaF32Avx512, PYKERN_TARGET_AVX512)
PYKERN_FMA_PATH(fma_f64_avx512, FmaF64Avx512, PYKERN_TARGET_AVX512)
#endif
#undef PYKERN_FMA_PATH

// Each dtype's paths indexed by Isa (baseline, avx2, avx512): the active one runs.
#if PYKERN_X86
constexpr FmaChoice<float> kFmaF32[] = {fma_f32_baseline_choice, fma_f32_avx2_choice, fma_f32_avx512_choice};
constexpr FmaChoice<double> kFmaF64[] = {fma_f64_baseline_choice, fma_f64_avx2_choice, fma_f64_avx512_choice};
#else
constexpr FmaChoice<float> kFmaF32[] = {fma_f32_baseline_choice};
constexpr FmaChoice<double> kFmaF64[] = {fma_f64_baseline_choice};
#endif

template <class T, size_t N>
const FmaChoice<T>& active(const FmaChoice<T> (&paths)[N]) {
  const size_t i = size_t(active_isa());
  return paths[i < N ? i : N - 1];
}

template <class T>
FmaRun fma_run(const FmaChoice<T>& choice, int64_t iterations, int threads) {
  // Read at run time through volatiles: constants the compiler could see might let it
  // evaluate the chains while compiling.
  volatile T m = T(1) - T(1) / T(1 << 20), a = T(1) / T(1 << 10);
  const T mm = m, aa = a;
  std::vector<double> sums(size_t(threads), 0.0);  // before the threads start
  parallel(threads, [&](int p, int) { sums[size_t(p)] = choice.run(iterations, mm, aa); });
  double checksum = 0;
  for (double s : sums) checksum += s;
  return FmaRun{2.0 * double(iterations) * choice.chains * choice.lanes * threads, checksum, choice.lanes,
                choice.chains, isa_name(active_isa())};
}

// ------------------------------------------------------------------------------------------
// STREAM
// ------------------------------------------------------------------------------------------
// Plain loops, as STREAM writes them. GCC turns the copy loop into a call to memmove: glibc's,
// which picks its own instructions and, on arrays larger than the caches, non-temporal stores;
// it is the copy every C program and np.copyto get, the "copy bandwidth" a relu is held to. The
// triad is vectorized for the active ISA, with ordinary stores, as pykern's kernels have.
PYKERN_INLINE void copy_body(const double* __restrict a, double* __restrict c, int64_t n) {
  // a, c: (n,)
  for (int64_t i = 0; i < n; ++i) c[i] = a[i];
}
PYKERN_INLINE void triad_body(double* __restrict a, const double* __restrict b, const double* __restrict c, double s,
                              int64_t n) {
  // a, b, c: (n,)
  for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}
PYKERN_ISA_WRAPPERS(copy_f64, copy_body, (const double* a, double* c, int64_t n), (a, c, n))
PYKERN_ISA_WRAPPERS(triad_f64, triad_body, (double* a, const double* b, const double* c, double s, int64_t n),
                    (a, b, c, s, n))

// Thread p's slice [lo, hi) of n elements, in multiples of 64 elements (whole cache lines and
// vectors per thread).
struct Slice {
  int64_t lo, hi;
};
Slice slice_of(int64_t n, int p, int parts) {
  const int64_t lo = (n * p / parts) & ~int64_t(63);
  const int64_t hi = p + 1 == parts ? n : (n * (p + 1) / parts) & ~int64_t(63);
  return {lo, hi};
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Entry points (kernels/cpu/ceilings.h)
// ------------------------------------------------------------------------------------------
FmaRun fma_peak(DType dtype, int64_t iterations, int threads) {
  return dtype == DType::f32 ? fma_run(active(kFmaF32), iterations, threads)
                             : fma_run(active(kFmaF64), iterations, threads);
}

void stream_copy(const double* a, double* c, int64_t n, int threads) {
  parallel(threads, [&](int p, int parts) {
    const Slice s = slice_of(n, p, parts);
    copy_f64(a + s.lo, c + s.lo, s.hi - s.lo);
  });
}

void stream_triad(double* a, const double* b, const double* c, double s, int64_t n, int threads) {
  parallel(threads, [&](int p, int parts) {
    const Slice sl = slice_of(n, p, parts);
    triad_f64(a + sl.lo, b + sl.lo, c + sl.lo, s, sl.hi - sl.lo);
  });
}

}  // namespace cpu
}  // namespace pykern
