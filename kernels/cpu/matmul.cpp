// matmul on the CPU, compiled: c = op(a) @ op(b) (pykern/ops/matmul.py), float32 and float64.
//
// The ladder (the table at the bottom), each rung one technique more than the one before:
//   naive      i-k-j loops: c's row i gathers a[i, k] * b's row k, k in order; no blocking
//   blocked    the GotoBLAS/BLIS structure: B packed into KC x NR panels for L1/L3, A into
//              MR x KC panels for L2 (MC/KC/NC blocking as data), a 4 x 8 micro-kernel in plain
//              scalar C++ (what the compiler makes of it for the baseline ISA: SSE2 on x86-64)
//   simd       the same loops around a register-blocked SIMD micro-kernel for the active ISA:
//              AVX2+FMA 6 x 16 (f32) / 6 x 8 (f64), AVX-512 8 x 32 / 8 x 16, baseline 4 x 8 / 4 x 4
//   threaded   simd with the BLIS loops shared by threads: B's block packed once by all of them,
//              c's tiles (ic row blocks, and column ranges when c is short) taken from a counter
// Every rung takes both transpose flags at no cost: packing reads op(a) and op(b) through
// (row, column) strides, so a transposed operand is only another pair of strides.
//
// Accuracy (error_model "terms"): each output sums its own terms in the input dtype in a fixed
// order: k ascending within a KC block, the blocks' sums added to c in ascending order. Threads
// split outputs, never a sum, so the result does not depend on the thread count. Edge panels are
// padded with zeros; a padded row or column only ever meets outputs that are discarded, so an Inf
// in a real input never meets a padding zero (0 * Inf) in a kept output.
#include "cpu.h"

namespace pykern {
namespace cpu {
namespace {

// ------------------------------------------------------------------------------------------
// Operands
// ------------------------------------------------------------------------------------------
// op(a)(i, k) = a[i * rsa + k * csa], op(b)(k, j) = b[k * rsb + j * csb], c row-major.
template <class T>
struct Gemm {
  const T* a;
  int64_t rsa, csa;
  const T* b;
  int64_t rsb, csb;
  T* c;
  int64_t ldc;
  int64_t M, N, K;
};

template <class T>
Gemm<T> operands(const Call& call) {
  const int64_t M = call.dims[0], N = call.dims[1], K = call.dims[2];
  const bool ta = call.dims[3] != 0, tb = call.dims[4] != 0;
  Gemm<T> g;
  g.a = call.input<T>(0);  // a: (M, K), or (K, M) with transpose_a
  g.rsa = ta ? 1 : K;
  g.csa = ta ? M : 1;
  g.b = call.input<T>(1);  // b: (K, N), or (N, K) with transpose_b
  g.rsb = tb ? 1 : N;
  g.csb = tb ? K : 1;
  g.c = call.output<T>();  // c: (M, N)
  g.ldc = N;
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
    T* crow = g.c + i * g.ldc;  // c[i, :]: (N,)
    for (int64_t j = 0; j < g.N; ++j) crow[j] = T(0);
    for (int64_t k = 0; k < g.K; ++k) {
      const T aik = g.a[i * g.rsa + k * g.csa];
      const T* brow = g.b + k * g.rsb;  // op(b)[k, :], stride csb
      for (int64_t j = 0; j < g.N; ++j) crow[j] += aik * brow[j * g.csb];
    }
  }
}

// ------------------------------------------------------------------------------------------
// Rungs 2-4: packed panels around a register-blocked micro-kernel
// ------------------------------------------------------------------------------------------
// Vector types (GCC/Clang vector extensions): plain C++ arithmetic that each ISA wrapper compiles
// to its own registers, so one micro-kernel serves every ISA and the arm64 build.
typedef float f32x4 __attribute__((vector_size(16)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));
typedef double f64x2 __attribute__((vector_size(16)));
typedef double f64x4 __attribute__((vector_size(32)));
typedef double f64x8 __attribute__((vector_size(64)));

// The blocking of one rung on one ISA, as data. V: the vector type (T itself for the scalar
// micro-kernel). The micro-kernel keeps an MR x NR tile of c in MR * NV registers.
template <class T, class V, int MR_, int NV_, int MC_, int KC_, int NC_>
struct Blocking {
  using Elem = T;
  using Vec = V;
  static constexpr int W = int(sizeof(V) / sizeof(T));  // lanes
  static constexpr int MR = MR_, NV = NV_, NR = NV_ * W;
  static constexpr int MC = MC_, KC = KC_, NC = NC_;
  static_assert(sizeof(V) % sizeof(T) == 0, "a vector holds whole elements");
  static_assert(MC % MR == 0, "an A block is whole MR-row micro-panels (packing and the ir loop step MR)");
  static_assert(NC % NR == 0, "a B block is whole NR-column micro-panels (packing and the jr loop step NR)");
  // Why these sizes: the B micro-panel (KC x NR) stays in L1 while the ir loop sweeps the A
  // block; the A block (MC x KC) stays in L2; the B block (KC x NC) in L3.
  static constexpr size_t a_elems = size_t(MC) * KC;
  static constexpr size_t b_elems = size_t(KC) * NC;
};

// blocked: 4 x 8 plain scalars, no ISA dispatch; GCC's SLP vectorizer packs each row's 8 into
// SSE2 registers (4 x 4 it left scalar: 6 GFLOP/s against 37 for 4 x 8 at 512, one thread).
using BlockedF32 = Blocking<float, float, 4, 8, 128, 256, 2048>;
using BlockedF64 = Blocking<double, double, 4, 8, 128, 256, 2048>;
// simd, per ISA. Accumulators: baseline 8 of 16 xmm; AVX2 12 of 16 ymm (2 for B, 1 broadcast);
// AVX-512 16 of 32 zmm: enough independent FMA chains to cover the FMA latency x units.
using SimdF32Base = Blocking<float, f32x4, 4, 2, 128, 256, 4096>;
using SimdF64Base = Blocking<double, f64x2, 4, 2, 128, 256, 2048>;
using SimdF32Avx2 = Blocking<float, f32x8, 6, 2, 144, 256, 4096>;
using SimdF64Avx2 = Blocking<double, f64x4, 6, 2, 96, 256, 2048>;
using SimdF32Avx512 = Blocking<float, f32x16, 8, 2, 128, 256, 4096>;
using SimdF64Avx512 = Blocking<double, f64x8, 8, 2, 128, 128, 2048>;

template <class V, class T>
PYKERN_INLINE V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V, class T>
PYKERN_INLINE void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// ap: MR x kc micro-panel, k-major (ap[k * MR + i]); bp: kc x NR, k-major (bp[k * NR + j]);
// c: the MR x NR tile at its corner, row stride ldc, of which mr x nr are real. first: this is
// the first KC block, so c is written, not added to (it holds garbage before).
template <class B>
PYKERN_INLINE void micro_kernel(int64_t kc, const typename B::Elem* __restrict ap,
                                const typename B::Elem* __restrict bp, typename B::Elem* __restrict c,
                                int64_t ldc, bool first, int mr, int nr) {
  using T = typename B::Elem;
  using V = typename B::Vec;
  constexpr int MR = B::MR, NV = B::NV, NR = B::NR, W = B::W;
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = load<V>(bp + k * NR + j * W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const T av = ap[k * MR + i];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
    }
  }
  if (mr == MR && nr == NR) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        T* p = c + i * ldc + j * W;
        store<V>(p, first ? acc[i][j] : load<V>(p) + acc[i][j]);
      }
    return;
  }
  alignas(64) T tile[MR * NR];  // an edge tile: only its mr x nr corner is real
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) store<V>(tile + i * NR + j * W, acc[i][j]);
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = first ? tile[i * NR + j] : c[i * ldc + j] + tile[i * NR + j];
}

// A's rows [ic, ic + mc) x columns [pc, pc + kc) into MR-row micro-panels, zero rows past mc.
template <class B>
PYKERN_INLINE void pack_a(const Gemm<typename B::Elem>& g, int64_t ic, int64_t mc, int64_t pc, int64_t kc,
                          typename B::Elem* __restrict ap) {
  using T = typename B::Elem;
  constexpr int MR = B::MR;
  for (int64_t ir = 0; ir < mc; ir += MR) {
    T* dst = ap + ir * kc;
    const int rows = int(mc - ir < MR ? mc - ir : MR);
    const T* src = g.a + (ic + ir) * g.rsa + pc * g.csa;
    for (int64_t k = 0; k < kc; ++k) {
      for (int i = 0; i < rows; ++i) dst[k * MR + i] = src[i * g.rsa + k * g.csa];
      for (int i = rows; i < MR; ++i) dst[k * MR + i] = T(0);
    }
  }
}

// B's rows [pc, pc + kc) x columns [jc, jc + nc) into NR-column micro-panels, zero columns past nc.
template <class B>
PYKERN_INLINE void pack_b(const Gemm<typename B::Elem>& g, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                          typename B::Elem* __restrict bp) {
  using T = typename B::Elem;
  constexpr int NR = B::NR;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    T* dst = bp + jr * kc;
    const int cols = int(nc - jr < NR ? nc - jr : NR);
    const T* src = g.b + pc * g.rsb + (jc + jr) * g.csb;
    for (int64_t k = 0; k < kc; ++k) {
      if (g.csb == 1 && cols == NR) {
        std::memcpy(dst + k * NR, src + k * g.rsb, sizeof(T) * NR);
        continue;
      }
      for (int j = 0; j < cols; ++j) dst[k * NR + j] = src[k * g.rsb + j * g.csb];
      for (int j = cols; j < NR; ++j) dst[k * NR + j] = T(0);
    }
  }
}

// The ic block [ic, ic + mc) x columns [j0, j1) (j0 a multiple of NR) of one (jc, pc) step, B's
// block already packed in bp: pack A's block into ap, then the jr and ir loops around the
// micro-kernel.
template <class B>
PYKERN_INLINE void block_body(const Gemm<typename B::Elem>& g, int64_t jc, int64_t nc, int64_t pc, int64_t kc,
                              int64_t ic, int64_t mc, int64_t j0, int64_t j1, typename B::Elem* ap,
                              const typename B::Elem* bp) {
  pack_a<B>(g, ic, mc, pc, kc, ap);
  for (int64_t jr = j0; jr < j1; jr += B::NR) {
    const int nr = int(nc - jr < B::NR ? nc - jr : B::NR);
    for (int64_t ir = 0; ir < mc; ir += B::MR) {
      const int mr = int(mc - ir < B::MR ? mc - ir : B::MR);
      micro_kernel<B>(kc, ap + ir * kc, bp + jr * kc, g.c + (ic + ir) * g.ldc + jc + jr, g.ldc, pc == 0, mr, nr);
    }
  }
}

// B's panels [p0, p1) (in NR-column units) of the (jc, pc) block: threads pack shares of it.
template <class B>
PYKERN_INLINE void pack_b_panels(const Gemm<typename B::Elem>& g, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                                 int64_t p0, int64_t p1, typename B::Elem* bp) {
  const int64_t lo = p0 * B::NR, hi = p1 * B::NR < nc ? p1 * B::NR : nc;
  if (hi > lo) pack_b<B>(g, pc, kc, jc + lo, hi - lo, bp + lo * kc);
}

// The five loops around the micro-kernel (BLIS's jc, pc, ic, jr, ir) on one thread. ap, bp:
// B::a_elems and B::b_elems of scratch, this call's own.
template <class B>
PYKERN_INLINE void packed_body(const Gemm<typename B::Elem>& g, typename B::Elem* ap, typename B::Elem* bp) {
  for (int64_t jc = 0; jc < g.N; jc += B::NC) {
    const int64_t nc = g.N - jc < B::NC ? g.N - jc : B::NC;
    for (int64_t pc = 0; pc < g.K; pc += B::KC) {
      const int64_t kc = g.K - pc < B::KC ? g.K - pc : B::KC;
      pack_b<B>(g, pc, kc, jc, nc, bp);
      for (int64_t ic = 0; ic < g.M; ic += B::MC) {
        const int64_t mc = g.M - ic < B::MC ? g.M - ic : B::MC;
        block_body<B>(g, jc, nc, pc, kc, ic, mc, 0, nc, ap, bp);
      }
    }
  }
}

// One compiled path: a blocking compiled for one ISA, as functions (each a target function: a
// lambda or std::thread body never inherits a target, so threads call these), and its sizes.
template <class T>
struct Path {
  void (*run)(const Gemm<T>& g, T* ap, T* bp);  // the whole product, one thread
  void (*pack_b)(const Gemm<T>& g, int64_t pc, int64_t kc, int64_t jc, int64_t nc, int64_t p0, int64_t p1, T* bp);
  void (*block)(const Gemm<T>& g, int64_t jc, int64_t nc, int64_t pc, int64_t kc, int64_t ic, int64_t mc,
                int64_t j0, int64_t j1, T* ap, const T* bp);
  size_t a_elems, b_elems;
  int mr, nr, mc, kc, nc;
};

#define PYKERN_PACKED(name, B, T, target)                                                                   \
  target void name(const Gemm<T>& g, T* ap, T* bp) { packed_body<B>(g, ap, bp); }                          \
  target void name##_pack_b(const Gemm<T>& g, int64_t pc, int64_t kc, int64_t jc, int64_t nc, int64_t p0, \
                            int64_t p1, T* bp) {                                                            \
    pack_b_panels<B>(g, pc, kc, jc, nc, p0, p1, bp);                                                        \
  }                                                                                                         \
  target void name##_block(const Gemm<T>& g, int64_t jc, int64_t nc, int64_t pc, int64_t kc, int64_t ic,   \
                           int64_t mc, int64_t j0, int64_t j1, T* ap, const T* bp) {                        \
    block_body<B>(g, jc, nc, pc, kc, ic, mc, j0, j1, ap, bp);                                               \
  }                                                                                                         \
  constexpr Path<T> name##_path{name, name##_pack_b, name##_block, B::a_elems, B::b_elems,                  \
                                B::MR, B::NR, B::MC, B::KC, B::NC};
PYKERN_PACKED(blocked_f32, BlockedF32, float, )
PYKERN_PACKED(blocked_f64, BlockedF64, double, )
PYKERN_PACKED(simd_f32_baseline, SimdF32Base, float, )
PYKERN_PACKED(simd_f64_baseline, SimdF64Base, double, )
#if PYKERN_X86
PYKERN_PACKED(simd_f32_avx2, SimdF32Avx2, float, PYKERN_TARGET_AVX2)
PYKERN_PACKED(simd_f64_avx2, SimdF64Avx2, double, PYKERN_TARGET_AVX2)
PYKERN_PACKED(simd_f32_avx512, SimdF32Avx512, float, PYKERN_TARGET_AVX512)
PYKERN_PACKED(simd_f64_avx512, SimdF64Avx512, double, PYKERN_TARGET_AVX512)
#endif

// The simd path of the active ISA.
template <class T>
Path<T> simd_path();
template <>
Path<float> simd_path<float>() {
#if PYKERN_X86
  switch (active_isa()) {
    case Isa::avx512: return simd_f32_avx512_path;
    case Isa::avx2: return simd_f32_avx2_path;
    default: break;
  }
#endif
  return simd_f32_baseline_path;
}
template <>
Path<double> simd_path<double>() {
#if PYKERN_X86
  switch (active_isa()) {
    case Isa::avx512: return simd_f64_avx512_path;
    case Isa::avx2: return simd_f64_avx2_path;
    default: break;
  }
#endif
  return simd_f64_baseline_path;
}

// One thread: the whole product with this call's own scratch.
template <class T>
void run_serial(const Gemm<T>& g, const Path<T>& p) {
  Scratch<T> scratch(p.a_elems + p.b_elems);
  p.run(g, scratch.p, scratch.p + p.a_elems);
}

// A reusable barrier for the threads of one call (C++17 has no std::barrier). It spins, then
// yields: a thread that slept on a condition variable would wait for the scheduler to preempt
// whatever else runs on its core (milliseconds on a busy machine), several times per call.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    const unsigned gen = gen_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      arrived_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins < 4096)
        relax();
      else
        std::this_thread::yield();
    }
  }

 private:
  static void relax() {
#if PYKERN_X86
    __builtin_ia32_pause();
#endif
  }
  const int n_;
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> gen_{0};
};

// `parts` threads over the BLIS loops: per (jc, pc) step they pack shares of B's block into one
// shared buffer, wait, then take tiles of c (an ic row block x a range of NR-column panels) from
// a counter, each packing its own A block, and wait again before B's buffer is refilled. Taking
// tiles as they come, not a fixed share, keeps every thread busy when another process takes a
// core for a while; about eight tiles a thread (four measured 0.85-0.91x np.matmul at 512 on
// 2 threads, eight 0.93). Row blocks are at most MC rows; column ranges
// split c only when it has too few row blocks (a wide, short c). Each output is still summed by
// one thread in the one-thread order.
template <class T>
void run_parallel(const Gemm<T>& g, const Path<T>& p, int parts) {
  const int64_t mr = p.mr, want = 8 * int64_t(parts);
  int64_t rows = (g.M + want - 1) / want;
  rows = (rows + mr - 1) / mr * mr;
  if (rows > p.mc) rows = p.mc;
  const int64_t row_blocks = (g.M + rows - 1) / rows;
  const int64_t col_blocks = row_blocks >= want ? 1 : (want + row_blocks - 1) / row_blocks;
  const int64_t blocks = row_blocks * col_blocks;
  const int64_t steps_n = (g.N + p.nc - 1) / p.nc, steps_k = (g.K + p.kc - 1) / p.kc;
  Scratch<T> shared_b(p.b_elems);
  Scratch<T> own_a(p.a_elems * size_t(parts));  // allocated here: a thread never throws bad_alloc
  std::vector<std::atomic<int64_t>> next(size_t(steps_n * steps_k));
  for (auto& n : next) n = 0;
  Barrier barrier(parts);
  parallel(parts, [&](int part, int np) {
    T* ap = own_a.p + p.a_elems * size_t(part);
    int64_t step = 0;
    for (int64_t jc = 0; jc < g.N; jc += p.nc) {
      const int64_t nc = g.N - jc < p.nc ? g.N - jc : p.nc;
      const int64_t panels = (nc + p.nr - 1) / p.nr;
      for (int64_t pc = 0; pc < g.K; pc += p.kc, ++step) {
        const int64_t kc = g.K - pc < p.kc ? g.K - pc : p.kc;
        p.pack_b(g, pc, kc, jc, nc, panels * part / np, panels * (part + 1) / np, shared_b.p);
        barrier.wait();
        for (int64_t b; (b = next[size_t(step)].fetch_add(1)) < blocks;) {
          const int64_t ic = b / col_blocks * rows, mc = g.M - ic < rows ? g.M - ic : rows;
          const int64_t cb = b % col_blocks, cuts = col_blocks < panels ? col_blocks : panels;
          if (cb >= cuts) continue;  // fewer panels than column blocks: these have none
          const int64_t j0 = panels * cb / cuts * p.nr, j1 = panels * (cb + 1) / cuts * p.nr;
          p.block(g, jc, nc, pc, kc, ic, mc, j0, j1 < nc ? j1 : nc, ap, shared_b.p);
        }
        barrier.wait();
      }
    }
  });
}

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------
// Below this many flops a thread costs more than it saves (starting one: ~20-50 us).
constexpr double kFlopsPerThread = 4e6;

template <class T>
void run_naive(const Call& call) { naive(operands<T>(call)); }

template <class T>
void run_blocked(const Call& call) {
  if constexpr (sizeof(T) == 4)
    run_serial(operands<T>(call), blocked_f32_path);
  else
    run_serial(operands<T>(call), blocked_f64_path);
}

template <class T>
void run_simd(const Call& call) { run_serial(operands<T>(call), simd_path<T>()); }

template <class T>
void run_threaded(const Call& call) {
  const Gemm<T> g = operands<T>(call);
  const double flops = 2.0 * double(g.M) * double(g.N) * double(g.K);
  const double most = flops / kFlopsPerThread;
  const int parts = most < 1 ? 1 : most < call.threads ? int(most) : call.threads;
  if (parts <= 1)
    run_serial(g, simd_path<T>());
  else
    run_parallel(g, simd_path<T>(), parts);
}

template <void (*f32)(const Call&), void (*f64)(const Call&)>
void by_dtype(const Call& call) {
  if (call.dtype == DType::f32)
    f32(call);
  else
    f64(call);
}

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
     "packed panels + register-blocked SIMD micro-kernel (AVX-512 8x32, AVX2+FMA 6x16, SSE 4x8 f32)",
     kTransposes},
    {"threaded", kF32 | kF64, by_dtype<run_threaded<float>, run_threaded<double>>,
     "simd on threads sharing packed B, c's tiles from a counter; as many threads as BLAS may use", kTransposes},
};

}  // namespace

PYKERN_CPU_TABLE(matmul, "M, N, K, transpose_a, transpose_b", "a, b", kVariants, sizes);

}  // namespace cpu
}  // namespace pykern
