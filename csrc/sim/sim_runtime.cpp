// pykern CUDA simulator: the scheduler (blocks one at a time, a block's threads as ucontext
// fibers), barriers, cp.async queues, threads polling mbarriers (sim_tma.cpp), launch checks,
// and the host runtime API (memory, events, device attributes) that kernels/ and csrc/ call.
// See cuda_sim.h for what is modelled.
//
// One OS thread runs a whole launch, and launches are serialized by a mutex: fibers of one
// block share the static __shared__ arrays, so two launches must never interleave.
#include "sim_config.h"

#if defined(__APPLE__) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700  // macOS declares the (deprecated) ucontext calls only with it
#endif
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda_sim.h"

#if defined(__SANITIZE_ADDRESS__)
#define PYKERN_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PYKERN_SIM_ASAN 1
#endif
#endif
#ifdef PYKERN_SIM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// Fiber switches. glibc's swapcontext makes a sigprocmask system call on every switch, which
// made it ~3 us here; on x86-64 a switch saves only the callee-saved registers and the FP
// control words (tens of ns). Elsewhere, or with -DPYKERN_SIM_UCONTEXT, ucontext is used.
#if defined(__x86_64__) && defined(__ELF__) && !defined(PYKERN_SIM_UCONTEXT)
#define PYKERN_SIM_ASM_SWITCH 1
extern "C" void pykern_sim_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl pykern_sim_switch
  .hidden pykern_sim_switch
  .type pykern_sim_switch, @function
pykern_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size pykern_sim_switch, .-pykern_sim_switch
)");
#endif

namespace pykern_sim {

uint3 g_thread_idx{0, 0, 0};
unsigned g_thread_linear = 0;
uint3 g_block_idx{0, 0, 0};
dim3 g_block_dim, g_grid_dim;
unsigned long long g_block_epoch = 0;

namespace {

// ---- configuration --------------------------------------------------------------------------

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

Config initial_config() {
  Config c;
  if (const char* o = std::getenv("PYKERN_SIM_ORDER"); o && *o) c.order = o;
  c.seed = static_cast<uint64_t>(env_int("PYKERN_SIM_SEED", 0));
  if (const char* cc = std::getenv("PYKERN_SIM_CC"); cc && *cc) {
    int major = 0, minor = 0;
    if (std::sscanf(cc, "%d.%d", &major, &minor) >= 1) {
      c.cc_major = major;
      c.cc_minor = minor;
    }
  }
  c.sm_count = env_int("PYKERN_SIM_SMS", c.sm_count);
  return c;
}

Config& config() {
  static Config c = initial_config();
  return c;
}

// Largest dynamic shared memory a block may opt into, per compute capability (CUDA guide).
int smem_optin_limit() {
  const int cc = config().cc_major * 10 + config().cc_minor;
  if (cc >= 90) return 227 * 1024;
  if (cc == 80 || cc == 87) return 163 * 1024;
  if (cc >= 86) return 99 * 1024;
  if (cc >= 75) return 64 * 1024;
  return 48 * 1024;
}

Stats g_stats;

// ---- errors ---------------------------------------------------------------------------------

cudaError_t g_last_error = cudaSuccess;
cudaError_t g_detail_code = cudaSuccess;
std::string g_detail;  // message for g_detail_code, kept after cudaGetLastError clears the code

cudaError_t set_error(cudaError_t code, const std::string& detail) {
  g_last_error = code;
  g_detail_code = code;
  g_detail = "[pykern CUDA simulator] " + detail;
  return code;
}

// ---- fibers ---------------------------------------------------------------------------------

struct Copy {
  void* dst;
  const void* src;
  int bytes;
  bool valid;
};

// Polling: the thread found an mbarrier phase incomplete (sim_tma.cpp) and yielded so that the
// others can arrive; it runs again at the next pass, like Ready.
// AtGroupBarrier: at a warpgroup-collective instruction (wgmma), released when all 128
// threads of the warpgroup stand there.
enum class State { Ready, AtBlockBarrier, AtWarpBarrier, AtGroupBarrier, Polling, Done };

constexpr size_t kExchangeBytes = 64;  // an mma.sync's a, b and c registers (40 bytes) fit

struct Fiber {
#ifdef PYKERN_SIM_ASM_SWITCH
  void* sp = nullptr;  // saved stack pointer while switched out
#else
  ucontext_t ctx;
#endif
  char* stack = nullptr;  // usable stack above a guard page
  size_t stack_size = 0;
  State state = State::Ready;
  unsigned warp_mask = 0;
  uint3 tid{0, 0, 0};
  unsigned linear = 0;
  std::vector<Copy> pending;               // issued, not yet committed
  std::deque<std::vector<Copy>> groups;    // committed, not yet landed (oldest first)
  uint64_t shfl_value = 0;
  // What this lane brought to the warp-collective matrix instruction it is in (warp_deposit).
  alignas(16) unsigned char xchg[kExchangeBytes];
  const char* xchg_op = nullptr;
  uint64_t collectives = 0;  // warp-collective instructions this thread has reached in its block
#ifdef PYKERN_SIM_ASAN
  void* fake_stack = nullptr;
#endif
};

// A thread's own stack holds its register tiles (acc[8][8], wmma fragments) plus call frames.
#ifdef PYKERN_SIM_ASAN
constexpr size_t kStackBytes = 1 << 20;
#else
constexpr size_t kStackBytes = 256 << 10;
#endif

std::vector<Fiber*> g_fibers;  // pooled across launches; index = linear thread id in the block
#ifdef PYKERN_SIM_ASM_SWITCH
void* g_sched_sp = nullptr;
#else
ucontext_t g_sched_ctx;
#endif
Fiber* g_cur = nullptr;
void (*g_body)(void*) = nullptr;
void* g_body_ctx = nullptr;
std::string g_fiber_error;  // set by a failing thread: ends the launch
unsigned char* g_dyn_smem = nullptr;
size_t g_dyn_smem_bytes = 0;
size_t g_static_smem_bytes = 0;  // this block's __shared__ arrays, counted as they are reached
bool g_smem_opted_in = false;    // the kernel has a MaxDynamicSharedMemorySize attribute
const char* g_kernel_name = "";
std::mutex g_launch_mutex;
uint64_t g_progress = 0;  // bumped by every mbarrier state change (note_progress)
const void* g_poll_on = nullptr;  // the mbarrier the last polling thread waits on
// A block whose only runnable threads are polling mbarriers, through this many passes in a
// row with no mbarrier changing, can never go on: it is reported as a deadlock. (A blocking
// try_wait alone would be caught at the second such pass; the margin leaves room for kernels
// that poll test_wait a few times between other work.)
constexpr unsigned kStuckPasses = 64;
#ifdef PYKERN_SIM_ASAN
const void* g_sched_stack_bottom = nullptr;
size_t g_sched_stack_size = 0;
#endif

Fiber* fiber(unsigned i) {
  while (g_fibers.size() <= i) {
    auto* f = new Fiber();
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* mem = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (mem == MAP_FAILED) throw std::bad_alloc();
    mprotect(mem, page, PROT_NONE);  // a stack overflow faults instead of corrupting a neighbour
    f->stack = static_cast<char*>(mem) + page;
    f->stack_size = kStackBytes;
    g_fibers.push_back(f);
  }
  return g_fibers[i];
}

// Switches from the running fiber back to the scheduler; returns when it is resumed.
void to_scheduler(Fiber* f, bool exiting) {
#ifdef PYKERN_SIM_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &f->fake_stack, g_sched_stack_bottom, g_sched_stack_size);
#endif
  (void)exiting;
#ifdef PYKERN_SIM_ASM_SWITCH
  pykern_sim_switch(&f->sp, g_sched_sp);
#else
  swapcontext(&f->ctx, &g_sched_ctx);
#endif
#ifdef PYKERN_SIM_ASAN
  __sanitizer_finish_switch_fiber(f->fake_stack, &g_sched_stack_bottom, &g_sched_stack_size);
#endif
}

void resume(Fiber* f) {
  g_cur = f;
  g_thread_idx = f->tid;
  g_thread_linear = f->linear;
  ++g_stats.switches;
#ifdef PYKERN_SIM_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f->stack, f->stack_size);
#endif
#ifdef PYKERN_SIM_ASM_SWITCH
  pykern_sim_switch(&g_sched_sp, f->sp);
#else
  swapcontext(&g_sched_ctx, &f->ctx);
#endif
#ifdef PYKERN_SIM_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  g_cur = nullptr;
}

std::string where(const Fiber* f) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "block (%u,%u,%u) thread (%u,%u,%u)", g_block_idx.x, g_block_idx.y, g_block_idx.z,
                f->tid.x, f->tid.y, f->tid.z);
  return buf;
}

void fiber_main() {
  Fiber* f = g_cur;
#ifdef PYKERN_SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g_sched_stack_bottom, &g_sched_stack_size);
#endif
  try {
    g_body(g_body_ctx);
    const std::string in_flight = wgmma_exit_error();
    if (!in_flight.empty() && g_fiber_error.empty()) g_fiber_error = where(f) + ": " + in_flight;
  } catch (const std::exception& e) {
    if (g_fiber_error.empty()) g_fiber_error = where(f) + ": " + e.what();
  } catch (...) {
    if (g_fiber_error.empty()) g_fiber_error = where(f) + ": unknown exception";
  }
  f->state = State::Done;
  f->pending.clear();  // copies still in flight at exit would land after the block: unobservable
  f->groups.clear();
  to_scheduler(f, true);
  std::abort();  // a finished fiber is never resumed
}

// Prepares f to start in fiber_main at its first resume.
void start_context(Fiber* f) {
#ifdef PYKERN_SIM_ASAN
  // The stack's last user never unwound (fiber_main does not return, and a failed launch
  // abandons fibers mid-call): its frames' redzones are still poisoned, and they are dead.
  ASAN_UNPOISON_MEMORY_REGION(f->stack, f->stack_size);
#endif
#ifdef PYKERN_SIM_ASM_SWITCH
  // The frame pykern_sim_switch pops: FP control words, r15..rbp, then fiber_main as the
  // return address, placed so that fiber_main starts with the ABI's call alignment (rsp % 16 == 8).
  auto top = reinterpret_cast<uintptr_t>(f->stack + f->stack_size) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<uint64_t*>(top - 16);
  slot[1] = 0;  // fiber_main's own return address: it never returns
  slot[0] = reinterpret_cast<uint64_t>(&fiber_main);
  uint64_t* sp = slot - 7;
  for (int i = 1; i < 7; ++i) sp[i] = 0;  // r15, r14, r13, r12, rbx, rbp
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  std::memcpy(reinterpret_cast<char*>(sp), &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpucw, 2);
  f->sp = sp;
#else
  getcontext(&f->ctx);
  f->ctx.uc_stack.ss_sp = f->stack;
  f->ctx.uc_stack.ss_size = f->stack_size;
  f->ctx.uc_link = nullptr;
  makecontext(&f->ctx, fiber_main, 0);
#endif
}

// The order threads (and blocks) are run in: forward, reverse, or a seeded permutation.
std::vector<unsigned> make_order(unsigned n, uint64_t salt) {
  std::vector<unsigned> order(n);
  std::iota(order.begin(), order.end(), 0u);
  const std::string& o = config().order;
  if (o == "reverse") {
    std::reverse(order.begin(), order.end());
  } else if (o == "random") {
    std::mt19937_64 rng(config().seed * 0x9E3779B97F4A7C15ull + salt);
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

// Releases every warpgroup whose 128 threads all stand at its barrier (sets released); "" or
// the error of a warpgroup barrier waiting for threads that have exited.
std::string release_warpgroups(unsigned n, bool& released) {
  for (unsigned g = 0; g + 128 <= n; g += 128) {
    unsigned waiting = 0, exited = 0;
    for (unsigned t = g; t < g + 128; ++t) {
      waiting += g_fibers[t]->state == State::AtGroupBarrier;
      exited += g_fibers[t]->state == State::Done;
    }
    if (waiting > 0 && exited > 0) {
      for (unsigned t = g; t < g + 128; ++t)
        if (g_fibers[t]->state == State::AtGroupBarrier)
          return where(g_fibers[t]) + ": a warpgroup-collective instruction (" + g_fibers[t]->xchg_op +
                 ") waits for " + std::to_string(exited) + " threads of its warpgroup that have exited";
    }
    if (waiting == 128) {
      for (unsigned t = g; t < g + 128; ++t) g_fibers[t]->state = State::Ready;
      released = true;
    }
  }
  return "";
}

// Runs one block to completion; "" or what went wrong.
std::string run_block(unsigned n, uint64_t salt) {
  const dim3 b = g_block_dim;
  for (unsigned t = 0; t < n; ++t) {
    Fiber* f = fiber(t);
    f->state = State::Ready;
    f->linear = t;
    f->tid = uint3{t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
    f->pending.clear();
    f->groups.clear();
    f->xchg_op = nullptr;
    f->collectives = 0;
    start_context(f);
  }
  g_stats.threads += n;
  const std::vector<unsigned> order = make_order(n, salt);
  const unsigned nwarps = (n + 31) / 32;
  unsigned stuck_passes = 0;
  for (;;) {
    const uint64_t progress_before = g_progress;
    bool only_polls = true;  // every thread resumed in this pass went back to polling
    for (unsigned t : order) {
      Fiber* f = g_fibers[t];
      if (f->state != State::Ready && f->state != State::Polling) continue;
      f->state = State::Ready;
      resume(f);
      if (!g_fiber_error.empty()) return g_fiber_error;
      only_polls &= f->state == State::Polling;
    }
    unsigned done = 0, at_block = 0, polling = 0, at_group = 0;
    for (unsigned t = 0; t < n; ++t) {
      at_group += g_fibers[t]->state == State::AtGroupBarrier;
      done += g_fibers[t]->state == State::Done;
      at_block += g_fibers[t]->state == State::AtBlockBarrier;
      polling += g_fibers[t]->state == State::Polling;
    }
    if (done == n) return "";
    bool released = false;
    for (unsigned w = 0; w < nwarps; ++w) {
      const unsigned lanes = std::min(32u, n - 32 * w);
      const unsigned exists = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
      unsigned waiting = 0, exited = 0;
      for (unsigned l = 0; l < lanes; ++l) {
        const State s = g_fibers[32 * w + l]->state;
        waiting |= (s == State::AtWarpBarrier) << l;
        exited |= (s == State::Done) << l;
      }
      unsigned release = 0;
      for (unsigned l = 0; l < lanes; ++l) {
        if (!(waiting >> l & 1)) continue;
        Fiber* f = g_fibers[32 * w + l];
        const unsigned need = f->warp_mask & exists;
        if (!(f->warp_mask >> l & 1)) {
          char buf[96];
          std::snprintf(buf, sizeof buf, ": __syncwarp(0x%08x) does not include the calling lane", f->warp_mask);
          return where(f) + buf;
        }
        if (need & exited) {
          char buf[96];
          std::snprintf(buf, sizeof buf, ": __syncwarp(0x%08x) waits for lanes that have exited (0x%08x)", f->warp_mask,
                        need & exited);
          return where(f) + buf;
        }
        if ((need & waiting) == need) release |= 1u << l;
      }
      for (unsigned l = 0; l < lanes; ++l)
        if (release >> l & 1) g_fibers[32 * w + l]->state = State::Ready;
      released |= release != 0;
    }
    const std::string group_error = release_warpgroups(n, released);
    if (!group_error.empty()) return group_error;
    if (released) continue;
    if (polling > 0) {
      stuck_passes = only_polls && g_progress == progress_before ? stuck_passes + 1 : 0;
      if (stuck_passes < kStuckPasses) continue;
      return "deadlock in block (" + std::to_string(g_block_idx.x) + "," + std::to_string(g_block_idx.y) + "," +
             std::to_string(g_block_idx.z) + "): " + std::to_string(polling) +
             " threads wait on an mbarrier phase that never completes (" + mbarrier_describe(g_poll_on) + "); " +
             std::to_string(at_block) + " at __syncthreads, " + std::to_string(at_group) + " at a wgmma, " +
             std::to_string(n - done - at_block - polling - at_group) + " at __syncwarp, " + std::to_string(done) +
             " exited";
    }
    if (at_block > 0 && at_block + done == n) {
      if (done > 0)  // strict reading: every thread of the block must reach each __syncthreads
        return "__syncthreads in block (" + std::to_string(g_block_idx.x) + "," + std::to_string(g_block_idx.y) +
               "," + std::to_string(g_block_idx.z) + ") reached by " + std::to_string(at_block) + " of " +
               std::to_string(n) + " threads; the other " + std::to_string(done) + " had exited";
      for (unsigned t = 0; t < n; ++t) g_fibers[t]->state = State::Ready;
      ++g_stats.barriers;
      continue;
    }
    return "deadlock in block (" + std::to_string(g_block_idx.x) + "," + std::to_string(g_block_idx.y) + "," +
           std::to_string(g_block_idx.z) + "): " + std::to_string(at_block) + " threads at __syncthreads, " +
           std::to_string(at_group) + " at a wgmma, " + std::to_string(n - done - at_block - at_group) +
           " at __syncwarp, " + std::to_string(done) + " exited";
  }
}

// ---- device memory --------------------------------------------------------------------------

// Every device allocation and the dynamic shared memory are followed by kGuard guard bytes:
// a kernel writing a little past the end then gets a CUDA error naming the buffer, checked
// after every launch, instead of silently corrupting the host heap (which a GPU would not
// notice either, but which here would crash the interpreter later).
constexpr size_t kGuard = 256;
constexpr unsigned char kGuardByte = 0xA5;

std::unordered_map<void*, size_t> g_allocs;  // pointer -> requested size

void* guarded_alloc(size_t bytes, size_t align) {
  void* p = nullptr;
  if (posix_memalign(&p, align, bytes + kGuard) != 0) return nullptr;
  std::memset(static_cast<unsigned char*>(p) + bytes, kGuardByte, kGuard);
  return p;
}

// The offset of the first changed guard byte after p[0, bytes), or -1; restores the guard.
long guard_damage(void* p, size_t bytes) {
  unsigned char* g = static_cast<unsigned char*>(p) + bytes;
  for (size_t i = 0; i < kGuard; ++i) {
    if (g[i] != kGuardByte) {
      std::memset(g, kGuardByte, kGuard);
      return static_cast<long>(i);
    }
  }
  return -1;
}

// "" or which allocations a launch wrote past the end of.
std::string check_device_guards() {
  std::string bad;
  for (auto& [p, bytes] : g_allocs) {
    const long at = guard_damage(p, bytes);
    if (at >= 0) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%swrote past the end of a %zu-byte device allocation (byte %ld after it)",
                    bad.empty() ? "" : "; ", bytes, at);
      bad += buf;
    }
  }
  return bad;
}

struct Event {
  double seconds = 0;
};

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---- device-side entry points -----------------------------------------------------------------

void syncthreads() {
  Fiber* f = g_cur;
  f->state = State::AtBlockBarrier;
  to_scheduler(f, false);
}

void poll_yield(const void* mbarrier) {
  Fiber* f = g_cur;
  g_poll_on = mbarrier;
  f->state = State::Polling;
  to_scheduler(f, false);
}

void note_progress() { ++g_progress; }

void syncwarp(unsigned mask) {
  Fiber* f = g_cur;
  f->state = State::AtWarpBarrier;
  f->warp_mask = mask;
  to_scheduler(f, false);
}

uint64_t shfl_exchange(unsigned mask, uint64_t value, int src_lane) {
  Fiber* f = g_cur;
  f->shfl_value = value;
  syncwarp(mask);  // every lane of mask has deposited its value
  const unsigned warp = f->linear / 32;
  const unsigned src = warp * 32 + static_cast<unsigned>(src_lane);
  uint64_t got = value;
  if (src_lane >= 0 && src_lane < 32 && (mask >> src_lane & 1) && src < g_fibers.size())
    got = g_fibers[src]->shfl_value;
  syncwarp(mask);  // nobody overwrites its value before everyone has read
  return got;
}

WarpInstruction warp_deposit(const char* op, const void* data, size_t bytes) {
  Fiber* f = g_cur;
  if (bytes > kExchangeBytes) fail("warp_deposit: more than the exchange slot holds");
  // .aligned instructions need the whole warp: a lane that does not exist would never deposit.
  const unsigned n = g_block_dim.x * g_block_dim.y * g_block_dim.z;
  if (n - f->linear / 32 * 32 < 32)
    fail((std::string(op) + " is warp-collective (.sync.aligned): the block's last warp has fewer than 32 threads").c_str());
  std::memcpy(f->xchg, data, bytes);
  f->xchg_op = op;
  return WarpInstruction{g_block_epoch, ++f->collectives};
}

const void* warp_slot(unsigned lane) {
  const Fiber* f = g_cur;
  const Fiber* other = g_fibers[f->linear / 32 * 32 + lane];
  // .aligned: every lane must be executing the same instruction, not another collective.
  if (other->xchg_op == nullptr || std::strcmp(other->xchg_op, f->xchg_op) != 0)
    fail((std::string("lanes of one warp at different warp-collective instructions: ") + f->xchg_op + " and " +
          (other->xchg_op ? other->xchg_op : "none")).c_str());
  return other->xchg;
}

void group_deposit(const char* op, const void* data, size_t bytes) {
  Fiber* f = g_cur;
  if (bytes > kExchangeBytes) fail("group_deposit: more than the exchange slot holds");
  const unsigned n = g_block_dim.x * g_block_dim.y * g_block_dim.z;
  if (f->linear / 128 * 128 + 128 > n)
    fail((std::string(op) + " is warpgroup-collective (.sync.aligned): the block's last warpgroup has fewer than "
                            "128 threads").c_str());
  std::memcpy(f->xchg, data, bytes);
  f->xchg_op = op;
}

const void* group_slot(unsigned thread_in_group) {
  const Fiber* f = g_cur;
  const Fiber* other = g_fibers[f->linear / 128 * 128 + thread_in_group];
  if (other->xchg_op == nullptr || std::strcmp(other->xchg_op, f->xchg_op) != 0)
    fail((std::string("threads of one warpgroup at different warpgroup-collective instructions: ") + f->xchg_op +
          " and " + (other->xchg_op ? other->xchg_op : "none")).c_str());
  return other->xchg;
}

void syncgroup() {
  Fiber* f = g_cur;
  f->state = State::AtGroupBarrier;
  to_scheduler(f, false);
}

void yield_once() {
  Fiber* f = g_cur;
  note_progress();  // not a poll that could be stuck: the thread goes on at its next turn
  f->state = State::Polling;
  to_scheduler(f, false);
}

unsigned char* dynamic_smem_window(size_t* bytes) {
  *bytes = g_dyn_smem_bytes;
  return g_dyn_smem;
}

void count_ldmatrix(unsigned matrices, unsigned extra_wavefronts) {
  g_stats.ldmatrix_matrices += matrices;
  g_stats.ldmatrix_extra_wavefronts += extra_wavefronts;
}

void trap(const char* what) { throw std::runtime_error(std::string(what) + " executed"); }

void fail(const char* what) { throw std::runtime_error(what); }

void add_static_smem(size_t bytes) {
  // CUDA's rules: static shared memory at most 48 KiB; static + dynamic at most 48 KiB unless
  // the kernel opted into more (then up to the device's opt-in limit).
  g_static_smem_bytes += bytes;
  const size_t total = g_static_smem_bytes + g_dyn_smem_bytes;
  const size_t limit = g_smem_opted_in ? static_cast<size_t>(smem_optin_limit()) : 48 * 1024;
  if (g_static_smem_bytes > 48 * 1024 || total > limit) {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "shared memory over the limit: %zu bytes static + %zu dynamic (static at most 49152, "
                  "the sum at most %zu)", g_static_smem_bytes, g_dyn_smem_bytes, limit);
    fail(buf);
  }
}

void* dynamic_smem(size_t align) {
  // 1024: what a TMA destination with the 128-byte swizzle needs (sim_tma.h).
  if (align > 1024) fail("dynamic shared memory aligned to more than 1024 bytes is not simulated");
  return g_dyn_smem;
}

void cp_async(void* dst, const void* src, int bytes, bool valid) { g_cur->pending.push_back(Copy{dst, src, bytes, valid}); }

void cp_async_commit() {
  Fiber* f = g_cur;
  f->groups.push_back(std::move(f->pending));
  f->pending.clear();
}

void cp_async_wait(int pending) {
  Fiber* f = g_cur;
  while (f->groups.size() > static_cast<size_t>(pending)) {
    for (const Copy& c : f->groups.front()) {
      if (c.valid) std::memcpy(c.dst, c.src, static_cast<size_t>(c.bytes));
      else std::memset(c.dst, 0, static_cast<size_t>(c.bytes));  // src-size 0: zero fill
    }
    f->groups.pop_front();
  }
}

std::unordered_map<const void*, int>& func_smem_optin() {
  static std::unordered_map<const void*, int> m;
  return m;
}

void run_launch(const LaunchConfig& cfg, void (*body)(void*), void* ctx) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  const dim3 g = cfg.grid, b = cfg.block;
  const std::string name = cfg.name;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z) {
    set_error(cudaErrorInvalidConfiguration, name + ": a grid or block dimension is 0");
    return;
  }
  if (b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024) {
    set_error(cudaErrorInvalidConfiguration,
              name + ": block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) +
                  ") exceeds 1024 threads or a per-axis limit (1024, 1024, 64)");
    return;
  }
  if (g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
    set_error(cudaErrorInvalidConfiguration, name + ": grid (" + std::to_string(g.x) + "," + std::to_string(g.y) +
                                                 "," + std::to_string(g.z) + ") exceeds (2^31-1, 65535, 65535)");
    return;
  }
  auto opt = func_smem_optin().find(cfg.fn);
  g_smem_opted_in = opt != func_smem_optin().end();
  if (cfg.smem > 48 * 1024) {
    const size_t allowed = g_smem_opted_in ? static_cast<size_t>(opt->second) : 48 * 1024;
    if (cfg.smem > allowed) {
      set_error(cudaErrorInvalidValue, name + ": " + std::to_string(cfg.smem) +
                                           " bytes of dynamic shared memory; above 48 KiB needs "
                                           "cudaFuncSetAttribute(MaxDynamicSharedMemorySize) first (allowed: " +
                                           std::to_string(allowed) + ")");
      return;
    }
  }
  // Exactly the launch's size, so a sanitizer build catches an access past it.
  void* dyn = guarded_alloc(cfg.smem, 1024);
  if (dyn == nullptr) {
    set_error(cudaErrorMemoryAllocation, name + ": dynamic shared memory");
    return;
  }
  g_dyn_smem = static_cast<unsigned char*>(dyn);
  g_dyn_smem_bytes = cfg.smem;
  g_body = body;
  g_body_ctx = ctx;
  g_block_dim = b;
  g_grid_dim = g;
  g_kernel_name = cfg.name;
  g_fiber_error.clear();
  ++g_stats.launches;
  const uint64_t blocks = uint64_t(g.x) * g.y * g.z;
  // Random orders depend on the seed, the kernel and the block only, so a failing order
  // reproduces in isolation whatever ran before it.
  const uint64_t salt = std::hash<std::string>{}(name) << 24;
  std::vector<unsigned> border;
  const bool reorder = config().order != "forward" && blocks <= (1u << 24);
  if (reorder) border = make_order(static_cast<unsigned>(blocks), salt);
  std::string error;
  for (uint64_t i = 0; i < blocks && error.empty(); ++i) {
    const uint64_t bi = reorder ? border[i] : i;
    g_block_idx = uint3{static_cast<unsigned>(bi % g.x), static_cast<unsigned>((bi / g.x) % g.y),
                        static_cast<unsigned>(bi / (uint64_t(g.x) * g.y))};
    ++g_block_epoch;
    ++g_stats.blocks;
    g_static_smem_bytes = 0;
    std::memset(g_dyn_smem, 0xff, cfg.smem);
    error = run_block(static_cast<unsigned>(threads), salt + bi);
    if (error.empty() && guard_damage(g_dyn_smem, cfg.smem) >= 0)
      error = "block (" + std::to_string(g_block_idx.x) + "," + std::to_string(g_block_idx.y) + "," +
              std::to_string(g_block_idx.z) + ") wrote past the end of its " + std::to_string(cfg.smem) +
              " bytes of dynamic shared memory";
  }
  std::free(dyn);
  g_dyn_smem = nullptr;
  if (!error.empty()) {
    set_error(cudaErrorLaunchFailure, "kernel " + name + ": " + error);
    return;
  }
  const std::string bad = check_device_guards();
  if (!bad.empty()) set_error(cudaErrorIllegalAddress, "kernel " + name + ": " + bad);
}

Config get_config() { return config(); }

void set_config(const Config& c) {
  if (c.order != "forward" && c.order != "reverse" && c.order != "random")
    throw std::invalid_argument("order must be 'forward', 'reverse' or 'random', got '" + c.order + "'");
  if (c.cc_major < 1 || c.sm_count < 1) throw std::invalid_argument("compute capability and SM count must be positive");
  config() = c;
}

Stats get_stats() { return g_stats; }
void reset_stats() { g_stats = Stats{}; }

}  // namespace pykern_sim

// ---- the CUDA runtime API ---------------------------------------------------------------------

using pykern_sim::set_error;

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice, "the simulator has one device, 0");
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return set_error(cudaErrorInvalidDevice, "the simulator has one device, 0");
  const auto& c = pykern_sim::config();
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    case cudaDevAttrMultiProcessorCount: *value = c.sm_count; break;
    case cudaDevAttrComputeCapabilityMajor: *value = c.cc_major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = c.cc_minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = pykern_sim::smem_optin_limit(); break;
    default: return set_error(cudaErrorInvalidValue, "device attribute " + std::to_string(attr) + " not simulated");
  }
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return set_error(cudaErrorInvalidDevice, "the simulator has one device, 0");
  const auto& c = pykern_sim::config();
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "pykern CUDA simulator (CPU, as sm_%d%d with %d SMs)", c.cc_major, c.cc_minor,
                c.sm_count);
  p->major = c.cc_major;
  p->minor = c.cc_minor;
  p->multiProcessorCount = c.sm_count;
  p->totalGlobalMem = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  p->l2CacheSize = 50 << 20;
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = static_cast<size_t>(pykern_sim::smem_optin_limit());
  p->maxThreadsPerBlock = 1024;
  p->warpSize = 32;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;  // no driver: nothing runs on a GPU
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = pykern_sim::g_last_error;
  pykern_sim::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return pykern_sim::g_last_error; }

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t err) {
  if (err == pykern_sim::g_detail_code && !pykern_sim::g_detail.empty()) return pykern_sim::g_detail.c_str();
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "simulator error";
  }
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  // 256-byte alignment, as cudaMalloc guarantees, then the guard bytes.
  void* p = bytes > SIZE_MAX - pykern_sim::kGuard ? nullptr : pykern_sim::guarded_alloc(bytes, 256);
  if (p == nullptr) return set_error(cudaErrorMemoryAllocation, "cudaMalloc of " + std::to_string(bytes) + " bytes");
  pykern_sim::g_allocs[p] = bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  auto it = pykern_sim::g_allocs.find(ptr);
  if (it == pykern_sim::g_allocs.end()) return set_error(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  const size_t bytes = it->second;
  const long at = pykern_sim::guard_damage(ptr, bytes);
  pykern_sim::g_allocs.erase(it);
  std::free(ptr);
  if (at >= 0)
    return set_error(cudaErrorIllegalAddress, "cudaFree: something wrote past the end of this " + std::to_string(bytes) +
                                                  "-byte allocation (byte " + std::to_string(at) + " after it)");
  return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t) { return cudaMalloc(ptr, bytes); }
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t) { return cudaFree(ptr); }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (bytes) std::memset(dst, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t) { return cudaMemset(dst, value, bytes); }

// Every launch and copy completes before it returns: streams are always idle.
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = reinterpret_cast<cudaEvent_t>(new pykern_sim::Event());
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<pykern_sim::Event*>(e);
  return cudaSuccess;
}
// Host wall-clock time of the simulation: not a GPU time (the Python side says so).
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  reinterpret_cast<pykern_sim::Event*>(e)->seconds = pykern_sim::now_seconds();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = static_cast<float>((reinterpret_cast<pykern_sim::Event*>(end)->seconds -
                            reinterpret_cast<pykern_sim::Event*>(start)->seconds) * 1e3);
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > pykern_sim::smem_optin_limit())
      return set_error(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                                  " bytes of dynamic shared memory exceeds this device's opt-in limit " +
                                                  std::to_string(pykern_sim::smem_optin_limit()));
    pykern_sim::func_smem_optin()[func] = value;
  }
  return cudaSuccess;
}
