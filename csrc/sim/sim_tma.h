// pykern CUDA simulator: mbarrier objects and TMA tiled loads, reached through the named wrappers
// of kernels/tma.cuh, as the PTX ISA defines them (PTX ISA 8.x, "Parallel Synchronization and
// Communication Instructions: mbarrier" and "Data Movement and Conversion Instructions:
// cp.async.bulk.tensor"; section numbers move between releases, so they are cited by name).
//
// mbarrier ("Contents of the mbarrier object", "Phase completion of the mbarrier object"): an
// 8-byte, 8-aligned object in shared memory holding the current phase, the expected and the
// pending arrival counts, and the tx-count. init(count) starts phase 0 with count arrivals
// pending and tx-count 0; arrive takes one arrival off; expect_tx adds bytes to the tx-count,
// complete_tx (the async copy's, or the instruction) takes them off. The current phase
// completes when the pending arrivals AND the tx-count are both zero: the phase then
// advances, pending arrivals reload with the expected count, and tx-count stays 0. The
// tx-count may go negative in between (a copy completing before its expect_tx), as the ISA
// allows. test_wait.parity p / try_wait.parity p are true when the phase of parity p has
// completed, i.e. the current phase's parity is not p (the ISA: p names the current phase or
// the one just before it); test_wait / try_wait with the state an arrive returned are true when
// the phase of that arrive has completed.
// Here the object's state lives beside shared memory, keyed by address and reset at each block
// start; the 8 bytes themselves are not written (they keep the block start's NaN fill). Checked:
// the address is 8-aligned and was initialized in this block, count in [1, 2^20 - 1], no phase
// gets more arrivals than its count, the tx-count stays within +-(2^20 - 1).
//
// Waiting: test_wait that finds the phase incomplete returns false after yielding to the other
// threads (so a spin loop on it moves on); try_wait does not return until the phase completes
// (the ISA lets it return false after a time limit; never doing so is one of its legal
// behaviours). A block whose only runnable threads wait on phases, through many scheduler passes
// in which no mbarrier changes, is reported as a deadlock naming the barrier's pending arrivals
// and tx-count, instead of hanging: e.g. an expect_tx larger than the bytes the copies deliver.
//
// TMA (cp.async.bulk.tensor.Nd.shared::cluster.global.mbarrier::complete_tx::bytes, tile mode):
// the box of the tensor map at the given coordinates, boxDim[0] elements innermost, written
// densely to shared memory with the map's swizzle, out-of-bounds elements (coordinates < 0 or
// >= globalDim, which may be negative) filled with zero, and the whole box's bytes (out-of-bounds
// ones included) completed as tx on the mbarrier.
// Swizzle (CUDA C++ Programming Guide, TMA swizzle patterns; cuda.h's CUtensorMapSwizzle: 16-byte
// chunks permuted within a 32-, 64- or 128-byte span): bits [4, 4+b) of a byte's shared-memory
// address are XORed with bits [7, 7+b), b = 1, 2, 3 for 32B, 64B, 128B, so the pattern repeats
// every 256, 512, 1024 bytes. For 128B: the 16-byte chunk index within each 128-byte row XORed
// with row % 8. tests/test_cuda_sim_tma.py holds swizzle() to tables transcribed from the guide.
// The GPU applies the pattern to the shared address's bits; the simulator's shared memory is host
// memory, so it applies it to the offset within the destination and requires the destination to
// be aligned to the pattern's repeat (the PTX ISA's own rule, 128 bytes, for no swizzle), which
// makes the two agree. A swizzled box's inner dimension must be exactly the span here (the driver
// allows narrower boxes; how the GPU lays those out is not modelled, so they are refused).
//
// When a copy lands: the ISA only promises that the data is there once the phase whose tx it
// completes has completed. The simulator takes the latest moment that promise allows: at issue
// the whole destination box is filled with 0xff bytes (NaN in every float format; a poison
// pattern for integers) and the data are kept aside, read from global memory at issue; they are
// written, and their bytes completed on the mbarrier, only when the barrier's pending arrivals
// are zero and some thread next needs the barrier's state: an arrive, an expect_tx or
// complete_tx, another copy to it, or a wait that the phases completed so far do not already
// satisfy (a wait on the parity of an earlier phase lands nothing). So a kernel that reads the box without waiting, waits on the wrong parity, or
// reuses a buffer while a copy into it is in flight reads NaN, and a missing expect_tx (the
// phase completing on arrivals alone) lets waiters through to the poisoned box.
// Not modelled: multicast and clusters (shared::cluster is this block's shared memory), im2col
// mode, TMA stores and reductions, L2 promotion and cache hints, the async proxy's memory
// ordering (fence.proxy.async and fence.mbarrier_init are no-ops here, still called through the
// wrappers so a GPU build has them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda.h>

namespace pykern_sim {
namespace tma {

void mbarrier_init(void* bar, unsigned count);
uint64_t mbarrier_arrive(void* bar);
uint64_t mbarrier_arrive_expect_tx(void* bar, unsigned tx_bytes);
void mbarrier_expect_tx(void* bar, unsigned tx_bytes);
void mbarrier_complete_tx(void* bar, unsigned tx_bytes);
bool mbarrier_test_wait_parity(void* bar, unsigned parity);
bool mbarrier_try_wait_parity(void* bar, unsigned parity);
bool mbarrier_test_wait(void* bar, uint64_t state);
bool mbarrier_try_wait(void* bar, uint64_t state);
inline void fence_proxy_async() {}
inline void fence_mbarrier_init() {}

// cp.async.bulk.tensor.{rank}d tile load of the box at coords[0..rank) into dst.
void tensor_load(void* dst, const CUtensorMap* map, const int* coords, int rank, void* bar);

// Where the TMA puts byte `offset` of a box (dense, row-major) for a swizzle span of 0 (none),
// 32, 64 or 128 bytes, the destination aligned to the pattern's repeat.
size_t swizzle(int span, size_t offset);

}  // namespace tma

// Why the last cuTensorMapEncodeTiled call failed ("" after a success).
std::string tensor_map_error();

}  // namespace pykern_sim
