// pykern CUDA simulator: the device side of CUDA C++ for the host compiler. Included before a
// kernels/*.cu file (csrc/sim/CMake builds one wrapper .cpp per kernel file), it turns the
// kernels into ordinary C++ run by sim_runtime.cpp:
//   * a launch runs its blocks one at a time; a block's threads are user-space fibers that
//     switch only at __syncthreads, __syncwarp and warp-collective calls, in a selectable order
//     (forward, reverse, random with a seed), so a missing barrier fails reproducibly;
//   * __shared__ arrays (PYKERN_SHARED, kernels/launch.cuh) are static storage shared by the
//     block's fibers and refilled with NaN bytes at each block start; dynamic shared memory is
//     a fresh allocation of exactly the launch's size, also NaN-filled;
//   * cp.async copies are queued per thread and land at cp_async_wait, not at the issue;
//   * ldmatrix and mma.sync are warp-collective, with the PTX ISA's fragment layouts (sim_ptx.h);
//   * wgmma.mma_async is warpgroup-collective, reads its operands through the ISA's shared-memory
//     matrix descriptors, and leaves its accumulators NaN until the wait_group that covers it,
//     reading shared memory only then (sim_wgmma.h);
//   * mbarrier objects keep the ISA's phase, arrival and tx-counts, and TMA tiled loads land
//     only when the phase that covers them completes, their destination poisoned until then;
//     a thread waiting on a phase yields, and a phase that never completes is a deadlock error
//     (sim_tma.h);
//   * launch limits are checked as a GPU checks them (threads per block, grid.y/z, dynamic
//     shared memory over 48 KiB only after cudaFuncSetAttribute).
// __CUDA_ARCH__ is defined (PYKERN_SIM_ARCH, default 900) so the kernels compile their sm_80+
// paths; the compute capability the launchers query is set at run time (sim_configure).
#pragma once

#define PYKERN_CUDA_SIM 1
#ifndef PYKERN_SIM_ARCH
#define PYKERN_SIM_ARCH 900
#endif
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ PYKERN_SIM_ARCH
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "sim_fp16.h"
#include "sim_runtime.h"

// ---- CUDA keywords the host compiler does not know -------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__

namespace pykern_sim {

// The running fiber's thread index and linear id (x fastest), set by the scheduler at every
// switch; the rest of a fiber's state lives in sim_runtime.cpp.
extern uint3 g_thread_idx;
extern unsigned g_thread_linear;
extern uint3 g_block_idx;
extern dim3 g_block_dim, g_grid_dim;
extern unsigned long long g_block_epoch;  // bumped at every block start

inline unsigned lane_id() { return g_thread_linear % 32; }
inline unsigned warp_id() { return g_thread_linear / 32; }

void syncthreads();
void syncwarp(unsigned mask = 0xffffffffu);
[[noreturn]] void trap(const char* what);
void fail(const char* what);  // a kernel-side error that aborts the launch (like a trap)

// Dynamic shared memory of the running launch (NaN-filled at each block start).
void* dynamic_smem(size_t align);

// Counts a block's static shared memory against the limits (sim_runtime.cpp).
void add_static_smem(size_t bytes);

// PYKERN_SHARED: the first thread of each block to reach the declaration NaN-fills the array.
inline void fresh_shared(void* p, size_t bytes, unsigned long long& epoch) {
  if (epoch != g_block_epoch) {
    std::memset(p, 0xff, bytes);  // all-ones bytes are NaN in every float format
    epoch = g_block_epoch;
    add_static_smem(bytes);
  }
}

// Warp-collective matrix instructions (ldmatrix, mma.sync: sim_ptx.h), which like __shfl_sync
// are __syncwarp points: each lane deposits its operands, the warp meets, each lane reads the
// others' deposits (warp_slot, which also checks that every lane is at the same instruction),
// and the warp meets again before any lane may deposit anew.
// Which instruction of which warp: every lane of a warp gets the same one at one instruction
// (they all reach the same collectives, in order), so what one lane derives from all the
// deposits can be shared with the others.
struct WarpInstruction {
  unsigned long long block_epoch, index;
  bool operator==(const WarpInstruction& o) const { return block_epoch == o.block_epoch && index == o.index; }
};
WarpInstruction warp_deposit(const char* op, const void* data, size_t bytes);
const void* warp_slot(unsigned lane);
void count_ldmatrix(unsigned matrices, unsigned extra_wavefronts);

// mbarrier waits (sim_tma.cpp): a thread that finds a phase incomplete yields with
// poll_yield and runs again at the scheduler's next pass; every mbarrier state change calls
// note_progress, so the scheduler can tell a block whose pollers can never succeed (a
// deadlock, reported with mbarrier_describe's account of the barrier) from one still moving.
void poll_yield(const void* mbarrier);
void note_progress();
std::string mbarrier_describe(const void* mbarrier);

// Warpgroup-collective instructions (wgmma: sim_wgmma.h), the same exchange for the 128
// threads of a warpgroup (warps 4g .. 4g + 3): group_deposit, then syncgroup (a barrier of the
// warpgroup's threads only), then group_slot(t) reads thread t's deposit (checking it is at the
// same instruction), then syncgroup again before anyone deposits anew.
void group_deposit(const char* op, const void* data, size_t bytes);
const void* group_slot(unsigned thread_in_group);
void syncgroup();
// Lets every other runnable thread of the block run once before this one goes on.
void yield_once();
// The running launch's dynamic shared memory and its size.
unsigned char* dynamic_smem_window(size_t* bytes);
// sim_wgmma.cpp: "" or why the running thread may not exit (wgmma operations in flight).
std::string wgmma_exit_error();

void cp_async(void* dst, const void* src, int bytes, bool valid);
void cp_async_commit();
void cp_async_wait(int pending);

// ---- launches -------------------------------------------------------------------------------
struct LaunchConfig {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  const void* fn;
  const char* name;
};

// Validates cfg like the GPU does (false: the launch error is recorded for cudaGetLastError),
// then runs body(ctx) once per thread of every block.
void run_launch(const LaunchConfig& cfg, void (*body)(void*), void* ctx);

template <class... P>
struct Launch {
  void (*fn)(P...);
  LaunchConfig cfg;

  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    // Kernel arguments are copied once at the launch, as CUDA copies them to the constant
    // bank; every thread then gets its own by-value copy through the call.
    struct Ctx {
      void (*fn)(P...);
      std::tuple<std::decay_t<P>...> params;
    } ctx{fn, std::tuple<std::decay_t<P>...>(static_cast<std::decay_t<P>>(std::forward<A>(args))...)};
    run_launch(cfg, [](void* c) {
      auto* x = static_cast<Ctx*>(c);
      std::apply(x->fn, x->params);
    }, &ctx);
  }
};

template <class... P>
Launch<P...> make_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, void (*fn)(P...),
                         const char* name) {
  return Launch<P...>{fn, LaunchConfig{grid, block, smem, stream, reinterpret_cast<const void*>(fn), name}};
}

}  // namespace pykern_sim

// ---- built-in variables and device functions ------------------------------------------------
#define threadIdx (::pykern_sim::g_thread_idx)
#define blockIdx (::pykern_sim::g_block_idx)
#define blockDim (::pykern_sim::g_block_dim)
#define gridDim (::pykern_sim::g_grid_dim)
constexpr int warpSize = 32;

#define __syncthreads() ::pykern_sim::syncthreads()
#define __syncwarp(...) ::pykern_sim::syncwarp(__VA_ARGS__)
#define __trap() ::pykern_sim::trap("__trap()")

template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline size_t __cvta_generic_to_shared(const void* p) { return reinterpret_cast<size_t>(p); }

// CUDA's device min/max overloads for same-typed arguments (std::min stays std::min).
template <class T>
inline T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
inline T max(T a, T b) {
  return a < b ? b : a;
}
using std::fmaf;

// Warp shuffles: warp-collective, so each is a __syncwarp point (sim_runtime.cpp).
namespace pykern_sim {
uint64_t shfl_exchange(unsigned mask, uint64_t value, int src_lane);
template <class T>
T shfl(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "__shfl_sync moves at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shfl_exchange(mask, bits, src);
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}
}  // namespace pykern_sim
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int lane = static_cast<int>(::pykern_sim::lane_id());
  return ::pykern_sim::shfl(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = static_cast<int>(::pykern_sim::lane_id());
  return ::pykern_sim::shfl(mask, v, (lane & ~(width - 1)) + ((lane ^ lane_mask) & (width - 1)));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(::pykern_sim::lane_id());
  const int in = (lane & (width - 1)) + static_cast<int>(delta);
  return ::pykern_sim::shfl(mask, v, in < width ? lane + static_cast<int>(delta) : lane);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(::pykern_sim::lane_id());
  const int in = (lane & (width - 1)) - static_cast<int>(delta);
  return ::pykern_sim::shfl(mask, v, in >= 0 ? lane - static_cast<int>(delta) : lane);
}
