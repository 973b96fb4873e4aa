// The compiled CPU kernels (pykern._cpu): what kernels/cpu/<op>.cpp and the binder
// (csrc/cpu/module.cpp) share. Plain C++17 for the host compiler: no CUDA header, so it builds
// wherever a C++ compiler exists (x86-64 and arm64).
//
// The conventions are the CUDA side's (kernels/pykern.h), cut down to what the host needs: each
// op file ends with a variant table (name, dtypes, launcher, one-line technique, takes) that
// registers itself; the binder walks the tables and binds every row as pykern._cpu.<op>_<name>;
// pykern/cpu/_compiled.py registers every row as a `numpy`-backend variant. Dims are the op
// spec's `dims(problem)` (OpSpec.dims), the same tuple the CUDA tables take.
//
// Instruction sets: chosen at run time, never by the build (no -march=native: one wheel runs on
// any x86-64). A kernel body is written once, as an always-inline template, and wrapped in one
// function per ISA with __attribute__((target(...))): the compiler generates that ISA's code for
// the inlined body. active_isa() picks the wrapper: the best this CPU and OS support, lowered by
// PYKERN_CPU_ISA or pykern._cpu.set_isa() (tests run every path the machine has).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

namespace pykern {
namespace cpu {

// Element types crossing the boundary: NumPy dtype names "float32", "float64".
enum class DType { f32, f64 };
constexpr unsigned kF32 = 1u << 0;
constexpr unsigned kF64 = 1u << 1;

// The optional parameters a row handles (pykern's `takes`), bit for bit the CUDA tables' ones.
constexpr unsigned kTakesNothing = 0u;
constexpr unsigned kTransposeA = 1u;  // matmul's transpose_a: a stored (K, M)
constexpr unsigned kTransposeB = 2u;  // matmul's transpose_b: b stored (N, K)

// ------------------------------------------------------------------------------------------
// Instruction sets
// ------------------------------------------------------------------------------------------
enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };
// "baseline": what the build's target always has (SSE2 on x86-64, NEON on arm64); "avx2": AVX2 +
// FMA (Haswell, Zen 1 and later); "avx512": AVX-512 F/VL/DQ/BW (Skylake-SP, Zen 4 and later).
const char* isa_name(Isa isa);
Isa detected_isa();  // the best this CPU and OS support (x86-64: cpuid + XCR0 via libgcc)
Isa active_isa();    // min(detected, the forced limit): what every dispatching launcher runs

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(PYKERN_CPU_PORTABLE)
#define PYKERN_X86 1  // (-DPYKERN_CPU_PORTABLE builds the non-x86 code here, to check it compiles)
// The target of each ISA's wrapper. The kernel bodies are plain C++ (GCC vector extensions where
// register blocking needs named vectors), so no intrinsic is tied to one ISA's header.
#define PYKERN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PYKERN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")))
#else
#define PYKERN_X86 0
#endif
// Kernel bodies: inlined into each ISA wrapper, where they take the wrapper's target.
#define PYKERN_INLINE inline __attribute__((always_inline))

// One function per ISA from one body: PYKERN_ISA_WRAPPERS(name, body, params, args) defines
// name_baseline, name_avx2 and name_avx512 (x86-64), each running `body args` (body: an
// always-inline template instance, e.g. relu_body<float>), and name(params), which runs the active
// one. Elsewhere (arm64) name runs the body as compiled for the build's target.
#if PYKERN_X86
#define PYKERN_ISA_WRAPPERS(name, body, params, args)                 \
  static void name##_baseline params { body args; }                   \
  PYKERN_TARGET_AVX2 static void name##_avx2 params { body args; }    \
  PYKERN_TARGET_AVX512 static void name##_avx512 params { body args; } \
  static void name params {                                           \
    switch (::pykern::cpu::active_isa()) {                            \
      case ::pykern::cpu::Isa::avx512: name##_avx512 args; break;     \
      case ::pykern::cpu::Isa::avx2: name##_avx2 args; break;         \
      default: name##_baseline args;                                  \
    }                                                                 \
  }
#else
#define PYKERN_ISA_WRAPPERS(name, body, params, args) \
  static void name params { body args; }
#endif

// Vector types (GCC/Clang vector extensions): plain C++ arithmetic that each ISA wrapper compiles
// to its own registers, so one kernel body serves every ISA and the arm64 build.
typedef float f32x4 __attribute__((vector_size(16)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));
typedef double f64x2 __attribute__((vector_size(16)));
typedef double f64x4 __attribute__((vector_size(32)));
typedef double f64x8 __attribute__((vector_size(64)));

// ------------------------------------------------------------------------------------------
// Calls and tables
// ------------------------------------------------------------------------------------------
constexpr int kMaxOperands = 4;

// One call as the binder hands it to a launcher, after checking dtype, contiguity, the operand
// sizes the table's `sizes` rule asks for, the takes flags and the table's `unsupported` rule:
// launchers assume all of that. The GIL is released while a launcher runs: it touches no Python
// object and no shared mutable state (each call allocates its own buffers), so calls from several
// Python threads run at once.
struct Call {
  DType dtype;
  const void* in[kMaxOperands];  // the inputs in the spec's order
  void* out;
  const int64_t* dims;  // the spec's dims(problem), in the table's field order
  int threads;          // the most threads this call may use (pykern's one setting, >= 1)
  const char* name;     // "<op>_<variant>", the row's: what errors name

  template <typename T>
  const T* input(int i) const { return static_cast<const T*>(in[i]); }
  template <typename T>
  T* output() const { return static_cast<T*>(out); }
};

using Launcher = void (*)(const Call& call);

// A row of an op's table: keep each a brace-enclosed {name, dtypes, launcher, technique[, takes]}.
struct Variant {
  const char* name;       // the registry's variant name
  unsigned dtypes;        // kF32 | kF64
  Launcher launch;
  const char* technique;  // one line naming the technique and its limits (pk.variants())
  unsigned takes = kTakesNothing;
};

// The element count every operand must have for these dims (inputs in order, then the output):
// the binder checks the arrays against it, so a direct call cannot read or write out of bounds.
using Sizes = std::vector<int64_t> (*)(const int64_t* dims);
// Why these dims cannot be run ("" when they can): what a launcher may not meet even from a
// direct call (groups 0 would divide by zero). The Python dispatch refuses such calls first.
using Unsupported = std::string (*)(const int64_t* dims);

struct Table {
  const char* op;
  const char* fields;  // the dims fields, "M, N, K, transpose_a, transpose_b"
  const char* inputs;  // the spec's inputs, "a, b"; an optional one ends in ? ("x, w, bias?")
  const Variant* rows;
  int row_count;
  Sizes sizes;
  Unsupported unsupported = nullptr;  // none: every non-negative dims runs
};

// A launcher of both dtypes from one per dtype: by_dtype<run<float>, run<double>>.
template <void (*f32)(const Call&), void (*f64)(const Call&)>
void by_dtype(const Call& call) {
  if (call.dtype == DType::f32)
    f32(call);
  else
    f64(call);
}

void register_table(const Table& table);
struct TableRegistrar {
  explicit TableRegistrar(const Table& t) { register_table(t); }
};

// The last line of an op file: PYKERN_CPU_TABLE(op, "fields", "inputs", rows, sizes[, unsupported]);
#define PYKERN_CPU_TABLE(op, fields, inputs, rows, ...)                                               \
  static const ::pykern::cpu::TableRegistrar pykern_cpu_table_##op{::pykern::cpu::Table{              \
      #op, fields, inputs, rows, static_cast<int>(sizeof(rows) / sizeof(rows[0])), __VA_ARGS__}}

// ------------------------------------------------------------------------------------------
// Threads and buffers
// ------------------------------------------------------------------------------------------
// The CPUs a helper thread of this call should run on: this thread's allowed CPUs except the one
// it runs on now, in order ({} where that cannot be known, or is only this CPU). Linux places a
// new thread on its creator's CPU more often than not and the load balancer leaves it there for
// milliseconds (measured here: 2 threads of 2 ms work took 4 ms in half the tries), which is the
// whole call for a mid-sized kernel: helpers are moved to another CPU as they start. A helper on
// a CPU that something else keeps busy shares it, as any thread would; work handed out from a
// counter (matmul's tiles) lets the caller take up the slack.
std::vector<int> helper_cpus();
// Moves the calling thread (a helper) to `cpu`; nothing where that is unsupported.
void move_to_cpu(int cpu);

// Spins, then yields, until done() holds: the wait of parts that other running parts will release.
template <class Done>
inline void spin_until(Done done) {
  for (int spins = 0; !done(); ++spins) {
    if (spins < 4096) {
#if PYKERN_X86
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }
}

// The process's helper threads, kept between calls: waking a parked one costs a few
// microseconds where starting one costs tens, which is most of a small threaded call (a training
// step's layers). One call uses the pool at a time; a call that finds it busy (another Python
// thread's kernel, the GIL released) starts threads of its own for that call, as the pool would.
// fork(): the child's pool is empty (its threads exist only in the parent) and is rebuilt on first
// use; a fork during a call copies a pool in use, which the child never waits on.
// Where an OpenMP runtime is shared (sharing_openmp(): torch's), run() hands the parts to its
// threads instead, and uses the pool only where that runtime cannot give every part a thread.
class Pool {
 public:
  using Task = void (*)(void* ctx, int part, int parts);
  // Runs task(ctx, part, parts) for part in [1, parts) on pool threads and part 0 on the caller,
  // and waits for all. False (nothing run) when another call holds the pool. `optional`: a task
  // whose parts take their work from a shared counter, so that any subset of them does it all;
  // a pool thread that has not joined by the time the caller's part returns then runs no part,
  // and the caller does not wait for it to wake (on the 2-core VM measured here, waking a
  // parked thread took longer than a small layer's whole call).
  bool run(int parts, Task task, void* ctx, bool optional = false);
  static Pool& instance();
};

// Runs f(part, parts) for part in [0, parts) on `parts` threads at once (the caller's among them)
// and waits for all: on the pool's threads, or on threads started for this call when the pool is
// busy. All or nothing: where the threads cannot all be had (thread creation failed), nothing
// runs and the answer is false, so a caller whose parts wait for each other (a Barrier) can take
// its one-thread path instead of waiting forever for a part that never starts.
template <class F>
bool parallel_all(int parts, F&& f) {
  if (parts <= 1) {
    f(0, 1);
    return true;
  }
  using Fn = typename std::remove_reference<F>::type;
  const Pool::Task task = [](void* ctx, int part, int n) { (*static_cast<Fn*>(ctx))(part, n); };
  if (Pool::instance().run(parts, task, const_cast<void*>(static_cast<const void*>(&f)))) return true;
  const std::vector<int> cpus = helper_cpus();
  std::atomic<int> gate{0};  // 0: wait, 1: run, 2: not every thread started, return
  std::vector<std::thread> own;
  own.reserve(parts - 1);
  bool started = true;
  for (int p = 1; p < parts && started; ++p) {
    const int cpu = cpus.empty() ? -1 : cpus[size_t(p - 1) % cpus.size()];
    try {
      own.emplace_back([&f, &gate, p, parts, cpu] {
        int g;
        while ((g = gate.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
        if (g == 2) return;
        if (cpu >= 0) move_to_cpu(cpu);
        f(p, parts);
      });
    } catch (const std::system_error&) {
      started = false;
    }
  }
  gate.store(started ? 1 : 2, std::memory_order_release);
  if (started) f(0, parts);
  for (auto& t : own) t.join();
  return started;
}

// f(part, parts) for parts that take all their work from shared counters and never wait for a
// part that may not run (Pool::run's `optional`): part 0 runs on the caller, the others on pool
// threads that are awake in time (or, where the pool is busy, threads of this call's own; where
// none can be had, the caller alone, part 0 doing all the work).
template <class F>
void parallel_optional(int parts, F&& f) {
  if (parts > 1) {
    using Fn = typename std::remove_reference<F>::type;
    const Pool::Task task = [](void* ctx, int part, int n) { (*static_cast<Fn*>(ctx))(part, n); };
    if (Pool::instance().run(parts, task, const_cast<void*>(static_cast<const void*>(&f)), true)) return;
  }
  if (!parallel_all(parts, f)) f(0, parts);
}

// f(lo, hi) over [0, n) in chunks of `chunk` that up to `threads` threads take from a counter
// (parallel_optional): the caller does them all when no pool thread is awake in time, and never
// waits for one to wake. For streaming work (an elementwise op, a padded copy) whose whole call
// is shorter than a parked thread takes to wake on a busy machine: waiting for each part's
// thread (parallel) made a training step of the small digits CNN 20% slower.
template <class F>
void for_chunks(int64_t n, int64_t chunk, int threads, F&& f) {
  const int64_t chunks = chunk > 0 ? (n + chunk - 1) / chunk : 1;
  if (threads <= 1 || chunks <= 1) {
    if (n > 0) f(int64_t(0), n);
    return;
  }
  std::atomic<int64_t> next{0};
  parallel_optional(chunks < threads ? int(chunks) : threads, [&](int, int) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      const int64_t lo = i * chunk;
      f(lo, lo + chunk < n ? lo + chunk : n);
    }
  });
}

// The elementwise kernels (relu and its gradient): threads share a call from this many bytes of
// output on, taking chunks of kElementwiseChunkBytes (whole cache lines and vectors) from a
// counter (for_chunks). Below it a woken helper joins too late to help: in a training step of the
// small digits CNN, threading its 0.5 MiB ReLUs made the step 3% slower (bench/train_cnn.py's model
// and batches, 4 runs of 40 interleaved pairs of epochs), though each ReLU alone ran 16 -> 11 us
// with a warm helper.
constexpr int64_t kElementwiseThreadedBytes = int64_t(1) << 21;
constexpr int64_t kElementwiseChunkBytes = int64_t(1) << 16;
// Whether threaded calls run their parts on a shared OpenMP runtime's threads (share_openmp,
// csrc/cpu/module.cpp): torch's, which spin for milliseconds after each of its ops, so in a
// training step a call finds its helper awake.
bool sharing_openmp();
// Where relu and its gradient share a call between threads: from kElementwiseThreadedBytes on
// pykern's own pool (whose helper sleeps between calls); from 128 KiB (32K floats, torch's own
// grain for its elementwise ops) on a shared OpenMP runtime's awake threads: 0.5 MiB ReLUs (the
// small digits CNN's) 16 -> 10 us with torch's threads awake.
constexpr int64_t kElementwiseSharedThreadedBytes = int64_t(1) << 17;
inline int64_t elementwise_threaded_bytes() {
  return sharing_openmp() ? kElementwiseSharedThreadedBytes : kElementwiseThreadedBytes;
}

// parallel_all for parts that never wait for each other: where the threads cannot be had, the
// caller runs every part itself, in order.
template <class F>
void parallel(int parts, F&& f) {
  if (!parallel_all(parts, f))
    for (int p = 0; p < parts; ++p) f(p, parts);
}

// A 64-byte aligned scratch buffer (packed panels), freed at scope exit.
template <class T>
struct Scratch {
  T* p = nullptr;
  explicit Scratch(size_t n) {
    size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    p = static_cast<T*>(std::aligned_alloc(64, bytes ? bytes : 64));
    if (p == nullptr) throw std::bad_alloc();
  }
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

}  // namespace cpu
}  // namespace pykern
