// pykern._cpu: the compiled CPU kernels of kernels/cpu/*.cpp, one generic binder for every table.
//
// Every table registers itself (PYKERN_CPU_TABLE, kernels/cpu/cpu.h); bind_table walks each and
// defines, per op:
//   <op>_<variant>(ins, out, dims, threads=1)   one per row: ins a tuple of the input arrays in
//       the spec's order, out the output array (may be one of the inputs: in place), dims the
//       spec's dims(problem), threads the most threads the call may use
//   <op>_variants   the rows as dicts (name, technique, dtypes, kernel, takes), in table order
//   <op>_fields     the dims field names; <op>_inputs: the input names; <op>_optional: those
//       that may be None (written "bias?" in the table's inputs)
// and for the instruction sets: isa(), detected_isa(), isas() (every path this machine can run,
// lowest first), set_isa(name) (the forced limit; pykern.cpu sets it from PYKERN_CPU_ISA).
// And the ceilings' micro-benchmarks (kernels/cpu/ceilings.cpp), plain functions, not table rows:
// fma_peak(dtype, iterations, threads), stream_copy(a, c, threads), stream_triad(a, b, c, s, threads).
// A bound row checks what makes a direct call memory-safe (NumPy arrays, native-endian, C-
// contiguous, the row's dtype, one dtype for all, a writable output, the element counts the
// table's sizes rule gives, non-negative dims, the takes flags, the table's unsupported rule),
// then releases the GIL and runs the launcher. An optional input ("bias?") may be None.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#include <pthread.h>
#endif

#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "ceilings.h"
#include "cpu.h"

namespace py = pybind11;

namespace pykern {
namespace cpu {

// ------------------------------------------------------------------------------------------
// Instruction sets
// ------------------------------------------------------------------------------------------
const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "baseline";
  }
}

Isa detected_isa() {
#if PYKERN_X86
  // libgcc's cpuid reading also checks that the OS saves the ymm/zmm state (XCR0).
  static const Isa found = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
      return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
    return Isa::baseline;
  }();
  return found;
#else
  return Isa::baseline;
#endif
}

namespace {
std::atomic<int> g_isa_limit{static_cast<int>(Isa::avx512)};

Isa parse_isa(const std::string& name, const char* what) {
  if (name == "baseline") return Isa::baseline;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw py::value_error(std::string(what) + ": expected baseline, avx2 or avx512, got '" + name + "'");
}
}  // namespace

Isa active_isa() {
  const int limit = g_isa_limit.load(std::memory_order_relaxed);
  const int found = static_cast<int>(detected_isa());
  return static_cast<Isa>(limit < found ? limit : found);
}

// ------------------------------------------------------------------------------------------
// Threads
// ------------------------------------------------------------------------------------------
std::vector<int> helper_cpus() {
  std::vector<int> out;
#if defined(__linux__)
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return out;
  const int here = sched_getcpu();
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed) && c != here) out.push_back(c);
#endif
  return out;
}

void move_to_cpu(int cpu) {
#if defined(__linux__)
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  (void)sched_setaffinity(0, sizeof one, &one);  // a helper thread's own
#else
  (void)cpu;
#endif
}

namespace {
// The pool's shared state. Allocated once and never freed: a forked child replaces it (the
// parent's may be mid-call, its mutex held) and the parent's threads are detached, so nothing
// waits on them at exit.
struct PoolState {
  std::mutex use;  // held by the call using the pool
  std::mutex park;
  std::condition_variable wake;
  // (call number << 16) | parts, stored once per call: the workers' signal. A worker decides from
  // the ticket alone whether the call is its (w < parts), so one that wakes late for a call it has
  // no part in never reads the fields below while the next call writes them.
  std::atomic<uint64_t> ticket{0};
  int workers = 0;  // threads started; worker w runs part w
  // The current call, written before the ticket is stored; read only by its participants, which
  // the caller waits for before it returns.
  Pool::Task task = nullptr;
  void* ctx = nullptr;
  std::vector<int> cpu_for;  // [w]: the CPU worker w moves to for this call (-1: stay)
  // Every worker joins a call before it reads any field above: (call number << 32) | count, set
  // by the caller before the ticket. A worker that read an older ticket fails to join (another
  // call number) and goes back to the ticket. Each worker that ran its part counts itself in
  // `finished`; the caller waits for parts - 1 of them, or, for a call whose parts may be left
  // out (Pool::run's `optional`), closes `joined` after its own part (kClosed) and waits for the
  // count it closed at: a worker that had not joined by then takes no part, and the caller never
  // waits for one still waking.
  std::atomic<uint64_t> joined{0};
  std::atomic<uint32_t> finished{0};
};
constexpr uint64_t kClosed = uint64_t(1) << 31, kCountMask = kClosed - 1;
PoolState* g_pool = nullptr;

void pause_briefly() {
#if PYKERN_X86
  __builtin_ia32_pause();
#endif
}

// A parked worker spins this many pauses (some tens of microseconds) before it sleeps, so the
// next call of a sequence (a training step's layers) finds it awake.
constexpr int kSpinPauses = 2000;

constexpr uint64_t kPartsBits = 16, kPartsMask = (uint64_t(1) << kPartsBits) - 1;

// seen: the ticket current when the worker was started (its calls are the ones after it).
void worker_loop(PoolState* st, int w, uint64_t seen) {
  int pinned = -1;
  for (;;) {
    uint64_t ticket;
    for (int spins = 0; (ticket = st->ticket.load(std::memory_order_acquire)) == seen; ++spins) {
      if (spins < kSpinPauses) {
        pause_briefly();
        continue;
      }
      std::unique_lock<std::mutex> lock(st->park);
      st->wake.wait(lock, [&] { return st->ticket.load(std::memory_order_acquire) != seen; });
    }
    seen = ticket;
    const int parts = int(ticket & kPartsMask);
    if (w >= parts) continue;  // this call needs fewer threads
    const uint64_t call = (ticket >> kPartsBits) & 0xffffffffu;
    uint64_t j = st->joined.load(std::memory_order_acquire);
    while ((j >> 32) == call && !(j & kClosed) &&
           !st->joined.compare_exchange_weak(j, j + 1, std::memory_order_acq_rel)) {
    }
    if ((j >> 32) != call || (j & kClosed)) continue;  // an older call, or closed without this worker
    const int cpu = st->cpu_for[size_t(w)];
    if (cpu >= 0 && cpu != pinned) {
      move_to_cpu(cpu);
      pinned = cpu;
    }
    st->task(st->ctx, w, parts);
    st->finished.fetch_add(1, std::memory_order_acq_rel);
  }
}

// An OpenMP runtime already loaded in the process (torch's libgomp), whose threads run the
// calls' parts in place of the pool's (share_openmp): where torch trains, its OpenMP threads spin
// for milliseconds after each of its ops, and a pool thread of pykern's waits for the scheduler to
// take its core from a spinning one, on every call (on the 2-core VM a conv2d backward beside one
// torch sum ran 1.4-1.7x slower). On the runtime's threads the spinning thread takes pykern's part
// at once. Entry points of GCC's libgomp ABI (GOMP_parallel: GCC 4.9).
struct OpenMp {
  void (*parallel)(void (*)(void*), void*, unsigned, unsigned);
  int (*thread_num)();
  int (*num_threads)();
  int (*in_parallel)();
  std::string library;
};
std::atomic<const OpenMp*> g_openmp{nullptr};

// The call's parts on the OpenMP runtime's team (thread t runs part t); false, with nothing run,
// where the team has fewer threads than parts (inside another parallel region, OMP_THREAD_LIMIT)
// and the parts may not be left out, or where this thread is in a parallel region already.
bool run_on_openmp(const OpenMp& omp, int parts, Pool::Task task, void* ctx, bool optional) {
  if (omp.in_parallel()) return false;  // a nested region would get one thread: the pool's instead
  struct Region {
    const OpenMp* omp;
    Pool::Task task;
    void* ctx;
    int parts;
    bool optional;
    std::atomic<bool> ran{false};
  } region{&omp, task, ctx, parts, optional};
  omp.parallel(
      [](void* data) {
        Region& r = *static_cast<Region*>(data);
        const int n = r.omp->num_threads(), t = r.omp->thread_num();
        if (n != r.parts && !r.optional) return;  // every thread sees the same n: none runs
        if (t == 0) r.ran.store(true, std::memory_order_relaxed);
        r.task(r.ctx, t, r.parts);
      },
      &region, unsigned(parts), 0);
  return region.ran.load(std::memory_order_relaxed);
}

// fork(): the child's pool is empty (its threads exist only in the parent), and the child leaves
// the OpenMP runtime alone (libgomp's threads are not rebuilt in a forked child either).
void reset_pool_in_child() {
  g_pool = new PoolState();
  g_openmp.store(nullptr, std::memory_order_relaxed);
}

// Finds `library` loaded already (never loads it) and uses its threads from now on; nullptr and
// no change where it is not loaded or lacks an entry point.
const OpenMp* share_openmp(const std::string& library) {
#if defined(__unix__)
  const OpenMp* now = g_openmp.load(std::memory_order_acquire);
  if (now != nullptr && now->library == library) return now;
  void* h = dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return nullptr;
  auto* omp = new OpenMp{};  // never freed (one per library named): a call may be reading it
  omp->parallel = reinterpret_cast<decltype(omp->parallel)>(dlsym(h, "GOMP_parallel"));
  omp->thread_num = reinterpret_cast<int (*)()>(dlsym(h, "omp_get_thread_num"));
  omp->num_threads = reinterpret_cast<int (*)()>(dlsym(h, "omp_get_num_threads"));
  omp->in_parallel = reinterpret_cast<int (*)()>(dlsym(h, "omp_in_parallel"));
  omp->library = library;
  if (!omp->parallel || !omp->thread_num || !omp->num_threads || !omp->in_parallel) {
    delete omp;
    return nullptr;  // the handle stays open: dlclose of a NOLOAD handle would drop a reference
  }
  g_openmp.store(omp, std::memory_order_release);
  return omp;
#else
  (void)library;
  return nullptr;
#endif
}

void stop_sharing_openmp() { g_openmp.store(nullptr, std::memory_order_release); }
}  // namespace

bool sharing_openmp() { return g_openmp.load(std::memory_order_relaxed) != nullptr; }

Pool& Pool::instance() {
  static Pool pool;
  static const bool registered = [] {
    g_pool = new PoolState();
#if defined(__unix__) || defined(__APPLE__)
    pthread_atfork(nullptr, nullptr, reset_pool_in_child);
#endif
    return true;
  }();
  (void)registered;
  return pool;
}

bool Pool::run(int parts, Task task, void* ctx, bool optional) {
  PoolState* st = g_pool;
  if (uint64_t(parts) > kPartsMask) return false;  // more than the ticket holds: threads of its own
  std::unique_lock<std::mutex> use(st->use, std::try_to_lock);
  if (!use.owns_lock()) return false;
  // One call at a time on the shared runtime too, the holder of the pool's lock: a call beside it
  // (another Python thread's: Dask's workers) starts threads of its own as before, where on the
  // runtime it would make a second team of spinning threads for its thread.
  if (const OpenMp* omp = g_openmp.load(std::memory_order_acquire))
    if (run_on_openmp(*omp, parts, task, ctx, optional)) return true;
  while (st->workers < parts - 1) {
    try {
      std::thread(worker_loop, st, st->workers + 1, st->ticket.load(std::memory_order_acquire)).detach();
    } catch (const std::system_error&) {
      return false;  // the caller starts its own (and runs a part inline if that fails too)
    }
    ++st->workers;
  }
  const std::vector<int> cpus = helper_cpus();
  st->cpu_for.assign(size_t(st->workers) + 1, -1);
  for (int w = 1; w <= st->workers; ++w)
    if (!cpus.empty()) st->cpu_for[size_t(w)] = cpus[size_t(w - 1) % cpus.size()];
  st->task = task;
  st->ctx = ctx;
  st->finished.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(st->park);
    const uint64_t call = (st->ticket.load(std::memory_order_relaxed) >> kPartsBits) + 1;
    st->joined.store((call & 0xffffffffu) << 32, std::memory_order_relaxed);
    st->ticket.store(call << kPartsBits | uint64_t(parts), std::memory_order_release);
  }
  st->wake.notify_all();
  task(ctx, 0, parts);
  // Optional parts: close the call to latecomers, and wait only for the workers that joined it.
  const uint32_t expected = optional ? uint32_t(st->joined.fetch_or(kClosed, std::memory_order_acq_rel) & kCountMask)
                                     : uint32_t(parts - 1);
  spin_until([&] { return st->finished.load(std::memory_order_acquire) == expected; });
  return true;
}

// ------------------------------------------------------------------------------------------
// Tables
// ------------------------------------------------------------------------------------------
namespace {
std::vector<Table>& registry() {
  static std::vector<Table> tables;  // filled by static registrars before PYBIND11_MODULE runs
  return tables;
}

std::vector<std::string> split_names(const char* list) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = list;; ++p) {
    if (*p == ',' || *p == '\0') {
      size_t a = cur.find_first_not_of(' '), b = cur.find_last_not_of(' ');
      if (a != std::string::npos) out.push_back(cur.substr(a, b - a + 1));
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

py::list dtype_names(unsigned set) {
  py::list l;
  if (set & kF32) l.append("float32");
  if (set & kF64) l.append("float64");
  return l;
}

// The takes flags that are dims fields, as in the CUDA tables (kernels/pykern.h kTakeFlags).
struct TakeFlag {
  unsigned bit;
  const char* field;
};
constexpr TakeFlag kTakeFlags[] = {{kTransposeA, "transpose_a"}, {kTransposeB, "transpose_b"}};

py::list takes_names(unsigned takes) {
  py::list l;
  for (const TakeFlag& f : kTakeFlags)
    if (takes & f.bit) l.append(f.field);
  return l;
}

struct TableInfo {
  const Table* table;
  std::vector<std::string> fields, inputs;  // input names, '?' stripped
  std::vector<bool> optional;               // "bias?": the input may be None (a null pointer)
  std::vector<std::pair<size_t, unsigned>> flags;  // (dims index, takes bit)
};

[[noreturn]] void refuse(const std::string& kernel, const std::string& why) {
  throw py::value_error(kernel + ": " + why);
}

// NumPy's flags (numpy/ndarraytypes.h): stable since NumPy 1.0.
constexpr int kCContiguous = 0x0001, kWriteable = 0x0400;

const void* array_data(const std::string& kernel, const std::string& what, const py::handle& obj, DType* dtype,
                       bool* have_dtype, unsigned dtypes, int64_t want, bool writable) {
  if (!py::isinstance<py::array>(obj)) refuse(kernel, what + ": expected a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  const int num = a.dtype().num();
  DType dt;
  if (num == py::detail::npy_api::NPY_FLOAT_ && a.itemsize() == 4)
    dt = DType::f32;
  else if (num == py::detail::npy_api::NPY_DOUBLE_ && a.itemsize() == 8)
    dt = DType::f64;
  else
    throw py::type_error(kernel + ": " + what + ": unsupported dtype " + std::string(py::str(a.dtype())) +
                         " (takes " + std::string(py::str(py::str(", ").attr("join")(dtype_names(dtypes)))) + ")");
  const char order = a.dtype().byteorder();
  if (order == '>') refuse(kernel, what + ": big-endian arrays are not taken");
  if (!(dtypes & (dt == DType::f32 ? kF32 : kF64)))
    throw py::type_error(kernel + ": " + what + ": unsupported dtype " + std::string(py::str(a.dtype())));
  if (*have_dtype && dt != *dtype) refuse(kernel, what + ": every operand must have one dtype");
  *dtype = dt;
  *have_dtype = true;
  if (!(a.flags() & kCContiguous)) refuse(kernel, what + " is not C-contiguous");
  if (writable && !(a.flags() & kWriteable)) refuse(kernel, what + " is read-only");
  if (a.size() != want)
    refuse(kernel, what + ": expected " + std::to_string(want) + " elements for these dims, got " +
                       std::to_string(a.size()));
  return a.data();
}

void bind_table(py::module_& m, const Table& t) {
  auto info = std::make_shared<TableInfo>();
  info->table = &t;
  info->fields = split_names(t.fields);
  for (std::string name : split_names(t.inputs)) {
    const bool opt = !name.empty() && name.back() == '?';
    if (opt) name.pop_back();
    info->inputs.push_back(name);
    info->optional.push_back(opt);
  }
  for (size_t i = 0; i < info->fields.size(); ++i)
    for (const TakeFlag& f : kTakeFlags)
      if (info->fields[i] == f.field) info->flags.emplace_back(i, f.bit);
  const std::string op = t.op;
  py::list rows;
  for (int r = 0; r < t.row_count; ++r) {
    const Variant* row = &t.rows[r];
    const std::string kernel = op + "_" + row->name;
    m.def(
        kernel.c_str(),
        [info, row, kernel](const py::tuple& ins, const py::object& out, const std::vector<int64_t>& dims,
                            int threads) {
          if (ins.size() != info->inputs.size())
            refuse(kernel, "expected " + std::to_string(info->inputs.size()) + " inputs, got " +
                               std::to_string(ins.size()));
          if (dims.size() != info->fields.size())
            refuse(kernel, "expected " + std::to_string(info->fields.size()) + " dims (" + info->table->fields +
                               "), got " + std::to_string(dims.size()));
          for (size_t i = 0; i < dims.size(); ++i)
            if (dims[i] < 0) refuse(kernel, "dims must be non-negative, got " + info->fields[i] + "=" +
                                                std::to_string(dims[i]));
          for (const auto& [index, bit] : info->flags)
            if (dims[index] != 0 && !(row->takes & bit))
              refuse(kernel, info->fields[index] + ": takes no transposed operands (its table row's takes column)");
          if (threads < 1) refuse(kernel, "threads must be >= 1, got " + std::to_string(threads));
          if (info->table->unsupported != nullptr) {
            const std::string why = info->table->unsupported(dims.data());
            if (!why.empty()) refuse(kernel, why);
          }
          const std::vector<int64_t> want = info->table->sizes(dims.data());
          Call call{};
          bool have = false;
          for (size_t i = 0; i < ins.size(); ++i) {
            if (ins[i].is_none() && info->optional[i]) {
              call.in[i] = nullptr;  // an absent optional input: the launcher reads the null
              continue;
            }
            call.in[i] = array_data(kernel, info->inputs[i], ins[i], &call.dtype, &have, row->dtypes, want[i], false);
          }
          call.out = const_cast<void*>(
              array_data(kernel, "out", out, &call.dtype, &have, row->dtypes, want[ins.size()], true));
          call.dims = dims.data();
          call.threads = threads;
          call.name = kernel.c_str();
          py::gil_scoped_release nogil;  // the launcher touches no Python object
          row->launch(call);
        },
        py::arg("ins"), py::arg("out"), py::arg("dims"), py::arg("threads") = 1, row->technique);
    py::dict d;
    d["name"] = row->name;
    d["technique"] = row->technique;
    d["dtypes"] = dtype_names(row->dtypes);
    d["kernel"] = kernel;
    d["takes"] = takes_names(row->takes);
    rows.append(d);
  }
  m.attr((op + "_variants").c_str()) = rows;
  m.attr((op + "_fields").c_str()) = py::tuple(py::cast(info->fields));
  m.attr((op + "_inputs").c_str()) = py::tuple(py::cast(info->inputs));
  py::list optional;
  for (size_t i = 0; i < info->inputs.size(); ++i)
    if (info->optional[i]) optional.append(info->inputs[i]);
  m.attr((op + "_optional").c_str()) = py::tuple(optional);
}

// The ceilings' micro-benchmarks (kernels/cpu/ceilings.h). The arrays are checked as a table
// row's are (float64, C-contiguous, writable output, one length), then the GIL is released.
void bind_ceilings(py::module_& m) {
  m.def(
      "fma_peak",
      [](const std::string& dtype, int64_t iterations, int threads) {
        if (dtype != "float32" && dtype != "float64")
          throw py::type_error("fma_peak: dtype: expected float32 or float64, got '" + dtype + "'");
        if (iterations < 1) refuse("fma_peak", "iterations must be >= 1, got " + std::to_string(iterations));
        if (threads < 1) refuse("fma_peak", "threads must be >= 1, got " + std::to_string(threads));
        FmaRun r;
        {
          py::gil_scoped_release nogil;
          r = fma_peak(dtype == "float32" ? DType::f32 : DType::f64, iterations, threads);
        }
        py::dict d;
        d["flops"] = r.flops;
        d["checksum"] = r.checksum;
        d["lanes"] = r.lanes;
        d["chains"] = r.chains;
        d["isa"] = r.isa;
        d["threads"] = threads;
        return d;
      },
      py::arg("dtype"), py::arg("iterations"), py::arg("threads") = 1,
      "Peak FMA throughput's micro-benchmark: `iterations` steps of independent FMA chains on the active "
      "ISA's widest vectors, on each of `threads` threads; returns the flops done (2 per lane per FMA), "
      "a checksum, lanes, chains, isa and threads");
  // The arrays' common length, after checking each: float64, C-contiguous, (the first) writable.
  auto stream_arrays = [](const char* kernel, std::initializer_list<std::pair<const char*, py::handle>> arrays,
                          int threads, std::vector<double*>* out) {
    if (threads < 1) refuse(kernel, "threads must be >= 1, got " + std::to_string(threads));
    int64_t n = -1;
    bool first = true;
    for (const auto& [what, obj] : arrays) {
      if (!py::isinstance<py::array>(obj)) refuse(kernel, std::string(what) + ": expected a NumPy array");
      const int64_t size = py::reinterpret_borrow<py::array>(obj).size();
      if (n < 0) n = size;
      if (size != n)
        refuse(kernel, std::string(what) + ": expected " + std::to_string(n) + " elements, as " +
                           arrays.begin()->first + " has, got " + std::to_string(size));
      DType dt;
      bool have = false;
      out->push_back(const_cast<double*>(
          static_cast<const double*>(array_data(kernel, what, obj, &dt, &have, kF64, n, first))));
      first = false;
    }
    return n;
  };
  m.def(
      "stream_copy",
      [stream_arrays](const py::object& a, const py::object& c, int threads) {
        std::vector<double*> p;
        const int64_t n = stream_arrays("stream_copy", {{"c", c}, {"a", a}}, threads, &p);
        py::gil_scoped_release nogil;
        stream_copy(p[1], p[0], n, threads);
      },
      py::arg("a"), py::arg("c"), py::arg("threads") = 1,
      "STREAM's Copy, c = a (float64, one length), split over `threads` threads");
  m.def(
      "stream_triad",
      [stream_arrays](const py::object& a, const py::object& b, const py::object& c, double s, int threads) {
        std::vector<double*> p;
        const int64_t n = stream_arrays("stream_triad", {{"a", a}, {"b", b}, {"c", c}}, threads, &p);
        py::gil_scoped_release nogil;
        stream_triad(p[0], p[1], p[2], s, n, threads);
      },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("s"), py::arg("threads") = 1,
      "STREAM's Triad, a = b + s * c (float64, one length), split over `threads` threads");
}
}  // namespace

void register_table(const Table& table) { registry().push_back(table); }

}  // namespace cpu
}  // namespace pykern

PYBIND11_MODULE(_cpu, m) {
  using namespace pykern::cpu;
  m.doc() = "pykern's compiled CPU kernels (kernels/cpu/), instruction set chosen at run time";
  m.def("isa", [] { return isa_name(active_isa()); }, "The instruction set the kernels run now");
  m.def("detected_isa", [] { return isa_name(detected_isa()); }, "The best this CPU and OS support");
  m.def("isas", [] {
        std::vector<std::string> out;
        for (int i = 0; i <= static_cast<int>(detected_isa()); ++i) out.push_back(isa_name(static_cast<Isa>(i)));
        return out;
      }, "Every instruction set this machine can run, lowest first");
  m.def("set_isa", [](const std::string& name, const std::string& what) {
        g_isa_limit = static_cast<int>(parse_isa(name, what.c_str()));
        return isa_name(active_isa());
      }, py::arg("name"), py::arg("what") = "set_isa",
      "Limit the kernels to `name` or lower (baseline, avx2, avx512) for every thread; returns the active one");
  py::list ops;
  for (const Table& t : registry()) {
    bind_table(m, t);
    ops.append(t.op);
  }
  m.attr("TABLES") = ops;
  m.def("share_openmp", [](const std::string& library) -> py::object {
        Pool::instance();  // the fork handler is registered before any part runs on the runtime
        const OpenMp* used = share_openmp(library);
        return used ? py::object(py::str(used->library)) : py::object(py::none());
      }, py::arg("library"),
      "Run threaded calls' parts on the threads of the OpenMP runtime `library` (e.g. libgomp.so.1) if it is "
      "loaded already (it is never loaded here): its name, else None and no change");
  m.def("own_pool", [] { stop_sharing_openmp(); }, "Run threaded calls on pykern's own thread pool again");
  m.def("pool", [] {
        const OpenMp* omp = g_openmp.load(std::memory_order_acquire);
        return omp ? omp->library : std::string("own");
      }, "Whose threads run the parts: 'own' (pykern's pool) or the shared OpenMP library's name");
  bind_ceilings(m);
}
