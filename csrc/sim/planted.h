// Deliberately broken kernels for the simulator's self-test (planted.cu). Each family has a
// correct twin, so a test can show the simulator passes one and fails the other.
#pragma once
#include <string>

namespace planted {

constexpr int kCount = 6;
// Family names, in a fixed order:
//   missing_syncthreads  tiled matmul without the __syncthreads between loading and using a tile
//   cp_async_wait        cp.async double-buffered matmul waiting with cp.async.wait_group 1, not 0
//   missing_syncwarp     wmma matmul reading its staged fragments back without __syncwarp
//   off_by_one_store     elementwise relu guarded by i <= n instead of i < n (writes y[n])
//   off_by_one_tile_edge tiled matmul running K / 16 k-tiles instead of ceil(K / 16) (drops the
//                        partial tile at the K edge)
//   mma_fragment_index   ldmatrix + mma.sync matmul handing mma.sync two of a's fragment
//                        registers swapped
const char* name(int i);

// Runs family `bug` (its broken or correct kernel). Matmul families: a: (M, K), b: (K, N) ->
// c: (M, N), float32 (missing_syncwarp: float16 a and b, M, N, K multiples of 16;
// mma_fragment_index: float16, M and K multiples of 16, N of 8). relu family:
// c[:M] = max(a[:M], 0). Pointers are simulator device memory.
void run(const std::string& bug, bool broken, const void* a, const void* b, void* c, int M, int N, int K);

// Launches that a GPU refuses or that hang on one, each of which the simulator must report as
// a CUDA error instead of running: "threads_1025", "grid_y_65536", "smem_64k_no_optin",
// "early_exit_barrier" (thread 0 returns before a __syncthreads the others reach),
// "write_past_end" (c[1] of a 1-float c), "dynamic_smem_past_end" (element 16 of 16); and
// "smem_64k_optin" and "static_40k", which are legal. c: 1 float of device memory the kernels write.
void probe(const std::string& what, void* c);

}  // namespace planted
