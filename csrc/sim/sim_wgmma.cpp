// pykern CUDA simulator: wgmma.mma_async, commit_group and wait_group. What is modelled, and when
// an operation reads shared memory and writes its accumulators, is in sim_wgmma.h.
#include "sim_wgmma.h"

#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "cuda_sim.h"
#include "sim_tma.h"  // tma::swizzle: the one address rule of both

namespace pykern_sim {
namespace wgmma {
namespace {

constexpr uint32_t kPoison = 0xffffffffu;  // the NaN an in-flight operation leaves in its accumulators

// What every thread of the warpgroup brings to one mma_async: all of it must agree.
struct Issue {
  uint64_t desc_a, desc_b;
  int32_t n, elem;
  uint8_t scale_d, trans_a, trans_b, pad;
  bool operator==(const Issue& o) const { return std::memcmp(this, &o, sizeof *this) == 0; }
};

struct Op {  // one thread's share of an issued mma_async
  Issue issue;
  float* d;                // the thread's accumulators (n / 2 floats on its stack)
  bool chained;            // the input is the result of the previous in-flight op on d
  std::vector<float> c;    // else the input accumulators, copied at issue
};

struct ThreadState {
  std::vector<Op> pending;               // issued, not yet committed
  std::deque<std::vector<Op>> groups;    // committed, not yet complete (oldest first)
  std::vector<std::pair<float*, std::vector<float>>> results;  // completed, awaiting later ops on d
};

std::vector<ThreadState> g_threads;
unsigned long long g_epoch = ~0ull;

ThreadState& me() {
  if (g_epoch != g_block_epoch) {  // a new block: nothing of the last one is in flight
    // Sized once per block: a thread holds its reference across the yields of a collective.
    g_threads.assign(g_block_dim.x * g_block_dim.y * g_block_dim.z, ThreadState{});
    g_epoch = g_block_epoch;
  }
  return g_threads[g_thread_linear];
}

bool in_flight_on(const ThreadState& s, const float* d) {
  for (const Op& op : s.pending)
    if (op.d == d) return true;
  for (const auto& g : s.groups)
    for (const Op& op : g)
      if (op.d == d) return true;
  return false;
}

// Overlapping accumulator arrays of different operations that are not the same array: the
// ISA's chaining is of the same registers, so anything else is a misuse.
void check_overlap(const ThreadState& s, const float* d, int n) {
  auto clash = [&](const Op& op) {
    const float* e = op.d;
    const bool overlap = d < e + op.issue.n / 2 && e < d + n / 2;
    return overlap && (e != d || op.issue.n != n);
  };
  for (const Op& op : s.pending)
    if (clash(op)) fail("wgmma.mma_async: its accumulators overlap those of an in-flight wgmma of another shape");
  for (const auto& g : s.groups)
    for (const Op& op : g)
      if (clash(op)) fail("wgmma.mma_async: its accumulators overlap those of an in-flight wgmma of another shape");
}

float element(const Desc& d, bool mn_major, int mn, int k, Elem e, const unsigned char* smem, size_t bytes) {
  const uint32_t at = element_address(d, mn_major, mn, k);
  if (at + 2 > bytes) {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "wgmma.mma_async: the descriptor reaches shared address %u, outside the launch's %zu bytes of "
                  "dynamic shared memory",
                  at, bytes);
    fail(buf);
  }
  uint16_t bits;
  std::memcpy(&bits, smem + at, 2);
  return e == Elem::kF16 ? half_bits_to_float(bits) : bf16_bits_to_float(bits);
}

// This thread's n / 2 results of op: d = A @ B (+ input when scale-d), read from shared memory
// now. The thread's elements sit in rows r and r + 8 of A and in columns 2t, 2t + 1 of every
// 8-column block of B (acc_position), so those are read once each.
std::vector<float> compute(const Op& op, const std::vector<float>& input, unsigned thread_in_group) {
  const Issue& is = op.issue;
  const Desc a = decode(is.desc_a), b = decode(is.desc_b);
  if (a.base_offset != 0 || b.base_offset != 0)
    fail("wgmma.mma_async: a non-zero matrix base offset in a descriptor is not simulated");
  size_t bytes = 0;
  const unsigned char* smem = dynamic_smem_window(&bytes);
  const Elem e = static_cast<Elem>(is.elem);
  const int n = is.n, first_row = acc_position(thread_in_group, 0).row;
  float A[2][16];                      // rows first_row and first_row + 8
  std::vector<float> B(static_cast<size_t>(n / 4) * 16);  // [column pair index][k]
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 16; ++k) A[h][k] = element(a, is.trans_a, first_row + 8 * h, k, e, smem, bytes);
  for (int j = 0; j < n / 4; ++j) {  // this thread's columns, in the order acc_position visits them
    const int col = acc_position(thread_in_group, 4 * (j / 2) + j % 2).col;
    for (int k = 0; k < 16; ++k) B[static_cast<size_t>(j) * 16 + k] = element(b, is.trans_b, col, k, e, smem, bytes);
  }
  std::vector<float> out(static_cast<size_t>(n / 2));
  for (int i = 0; i < n / 2; ++i) {
    const RowCol p = acc_position(thread_in_group, i);
    const float* arow = A[p.row == first_row ? 0 : 1];
    const float* bcol = &B[static_cast<size_t>(2 * (i / 4) + i % 2) * 16];
    float acc = is.scale_d ? input[static_cast<size_t>(i)] : 0.f;
    for (int k = 0; k < 16; ++k) acc += arow[k] * bcol[k];
    out[static_cast<size_t>(i)] = acc;
  }
  return out;
}

std::vector<float>* result_of(ThreadState& s, const float* d) {
  for (auto& r : s.results)
    if (r.first == d) return &r.second;
  return nullptr;
}

// Writes each completed result whose accumulators no later in-flight operation targets.
void retire(ThreadState& s) {
  for (size_t i = 0; i < s.results.size();) {
    auto& [d, values] = s.results[i];
    if (in_flight_on(s, d)) {
      ++i;
      continue;
    }
    for (size_t j = 0; j < values.size(); ++j) {
      uint32_t bits;
      std::memcpy(&bits, &d[j], 4);
      if (bits != kPoison)
        fail("wgmma: accumulator registers of an in-flight wgmma.mma_async were written before the wait_group "
             "that covers it");
    }
    std::memcpy(d, values.data(), values.size() * sizeof(float));
    s.results.erase(s.results.begin() + static_cast<long>(i));
  }
}

}  // namespace

uint32_t element_address(const Desc& d, bool mn_major, int mn, int k) {
  return static_cast<uint32_t>(tma::swizzle(d.span, element_offset(d, mn_major, mn, k)));
}

uint32_t shared_address(const void* p) {
  size_t bytes = 0;
  const unsigned char* base = dynamic_smem_window(&bytes);
  const auto* q = static_cast<const unsigned char*>(p);
  if (base == nullptr || q < base || q >= base + bytes)
    fail("wgmma descriptor: the simulator addresses wgmma operands in the launch's dynamic shared memory only "
         "(sim_wgmma.h); this pointer is not in it");
  return static_cast<uint32_t>(q - base);
}

void mma_async(Elem e, int n, float* d, uint64_t desc_a, uint64_t desc_b, bool scale_d, bool trans_a, bool trans_b) {
  const char* op_name = "wgmma.mma_async";
  if (n < 8 || n > 256 || n % 8 != 0) fail("wgmma.mma_async m64nNk16: N must be a multiple of 8 in [8, 256]");
  ThreadState& s = me();
  check_overlap(s, d, n);
  const Issue mine{desc_a, desc_b, n, static_cast<int32_t>(e), scale_d, trans_a, trans_b, 0};
  group_deposit(op_name, &mine, sizeof mine);
  syncgroup();
  if (!(*static_cast<const Issue*>(group_slot(0)) == mine))
    fail("wgmma.mma_async: threads of one warpgroup gave different descriptors, N, types, transposes or scale-d");
  syncgroup();  // nobody deposits for its next wgmma before everyone has compared
  Op op{mine, d, in_flight_on(s, d), {}};
  if (!op.chained) op.c.assign(d, d + n / 2);
  for (int i = 0; i < n / 2; ++i) std::memcpy(&d[i], &kPoison, 4);
  s.pending.push_back(std::move(op));
}

void commit_group() {
  ThreadState& s = me();
  s.groups.push_back(std::move(s.pending));
  s.pending.clear();
}

void wait_group(int pending) {
  if (pending < 0 || pending > 7) fail("wgmma.wait_group: N must be in [0, 7]");
  if (me().groups.size() <= static_cast<size_t>(pending)) return;
  yield_once();  // the latest moment: whatever the others do to shared memory meanwhile counts
  ThreadState& s = me();
  const unsigned t = g_thread_linear % 128;
  while (s.groups.size() > static_cast<size_t>(pending)) {
    std::vector<Op> group = std::move(s.groups.front());
    s.groups.pop_front();
    for (Op& op : group) {
      std::vector<float>* prev = op.chained ? result_of(s, op.d) : nullptr;
      if (op.chained && prev == nullptr) fail("wgmma: a chained mma_async completed before the one it accumulates on");
      std::vector<float> out = compute(op, op.chained ? *prev : op.c, t);
      if (prev != nullptr) *prev = std::move(out);
      else s.results.emplace_back(op.d, std::move(out));
    }
  }
  retire(s);
}

}  // namespace wgmma

std::string wgmma_exit_error() {
  if (wgmma::g_epoch != g_block_epoch || wgmma::g_threads.size() <= g_thread_linear) return "";
  const wgmma::ThreadState& s = wgmma::g_threads[g_thread_linear];
  if (s.pending.empty() && s.groups.empty()) return "";
  return "the thread exited with wgmma.mma_async operations in flight (" + std::to_string(s.pending.size()) +
         " not committed, " + std::to_string(s.groups.size()) +
         " groups committed and not waited for): a wait_group must cover them before their registers die";
}

}  // namespace pykern_sim
