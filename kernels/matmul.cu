// Matrix multiply c = a @ b, row-major and contiguous: a: (M, K), b: (K, N) -> c: (M, N).
// Any M, N, K in [1, kMatmulMaxDim] (matmul.h): edge tiles are zero-filled on load and guarded on store.
//
// Variants, a ladder of techniques (each rung keeps the previous rung's ideas):
//   naive          one thread per output, threadIdx.x -> row: uncoalesced on purpose       f32 f64
//   coalesced      one thread per output, threadIdx.x -> column: a warp reads b and
//                  writes c at consecutive addresses                                       f32 f64
//   smem_tiled     32x32 tiles of a and b staged in shared memory                          f32 f64
//   blocktile_1d   64x64 block tile, each thread keeps a column of TM=8 outputs            f32
//   blocktile_2d   128x128 block tile, each thread keeps an 8x8 register tile              f32
//   vectorized     blocktile_2d with 16-byte (float4) global loads/stores and the a tile
//                  stored transposed so register fragments are 16-byte shared loads        f32
//   warptile       block -> warp (64x32) -> thread (2x2 sub-tiles of 4x4) tiling, so each
//                  warp's shared reads are broadcast-friendly and conflict-free            f32
//   double_buffer  warptile fed by cp.async (sm_80+): the next k-tile is copied
//                  global->shared while the current one is computed; the default           f32
//   wmma_fp16      tensor cores via nvcuda::wmma, fp16 in, fp32 accumulate and output,
//   wmma_bf16      same with bf16 in; 3-stage cp.async pipeline (sm_80+)                   f16 / bf16
//
// Transposed operands (matmul's transpose_a / transpose_b: a stored (K, M), b stored (N, K), read
// in place): naive, coalesced and smem_tiled take them, as template flags TA, TB so each of the
// four layouts is its own instantiation with the index math resolved at compile time and the
// untransposed kernels unchanged; smem_tiled loads a transposed operand's tile along its stored
// rows (coalesced) and writes it transposed into a padded shared tile. The other rungs refuse
// them.
//
// Alignment: vector paths (float4, 16-byte cp.async) run only when every row start they touch
// is 16-byte aligned (K or N a multiple of the vector width and the base pointer aligned);
// otherwise the same kernel is instantiated with scalar accesses. So every variant takes every
// shape and any naturally aligned pointer, and nothing ever reads outside a, b or c.
//
// Indexing, kernels/pykern.h's tiled policy, checked once by the table's rule (unsupported, below
// the table): M, N, K are checked <= kMatmulMaxDim (2^31 minus a margin) and kept as int: cheap
// compares and tile arithmetic, which runs up to one tile past the edge (k0 + BK, m0 + BM)
// without overflow. Offsets row * ld + col may exceed 2^31 (M*K, K*N, M*N can), so tile origins
// are formed in 64 bits. From blocktile_2d on, offsets inside a tile are int: the tiled kernels
// hoist one such offset per copied element out of the k-loop, and at 64 bits those pushed the
// 128-register kernels into spilling. So those launchers refuse K or N so large (millions) that
// rows * ld + cols of a tile reaches 2^31 (tile_offsets_problem); the first four rungs take any
// size up to kMatmulMaxDim.
#include <mma.h>

#include <climits>
#include <type_traits>

#include "dispatch.cuh"
#include "launch.cuh"
#include "matmul.h"

namespace pykern {
namespace {

// ------------------------------------------------------------------------------------------
// Shared device helpers
// ------------------------------------------------------------------------------------------

// Consecutive blocks are grouped kGroupM tile rows at a time (column-major inside a group), so
// the blocks resident together share a few A row panels and B column panels in L2. The grid is
// 1D, which also avoids gridDim.y's 65535 cap on the number of tile rows.
constexpr int kGroupM = 8;

struct Tile {
  int m0, n0;  // first row and column of c this block computes
};

template <int BM, int BN, int GROUP>
__device__ __forceinline__ Tile tile_of_block(int M, int N) {
  const long long tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
  const long long pid = blockIdx.x;
  const long long per_group = GROUP * tiles_n;
  const long long first_m = (pid / per_group) * GROUP;
  const long long rows_here = min(tiles_m - first_m, static_cast<long long>(GROUP));
  const long long in_group = pid % per_group;
  return {static_cast<int>((first_m + in_group % rows_here) * BM),
          static_cast<int>((in_group / rows_here) * BN)};
}

// VEC elements of T moved as one access (16 bytes: LDG.128 / STS.128).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// cp.async (sm_80+): an asynchronous global->shared copy of BYTES bytes; when `valid` is false
// no global byte is read and the destination is zero-filled (src-size 0), which is how edge
// tiles get their zero padding without a branch around the copy.
template <int BYTES>
__device__ __forceinline__ void cp_async(void* dst, const void* src, bool valid) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::cp_async(dst, src, BYTES, valid);  // queued; lands at cp_async_wait
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned n = valid ? BYTES : 0;
  if constexpr (BYTES == 16) {
    // .cg: 16-byte copies may skip L1; each tile is read once per block.
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(n));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "n"(BYTES), "r"(n));
  }
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::cp_async_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Wait until at most N of this thread's committed copy groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::cp_async_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// How load_tile lays a tile out in shared memory: as in global memory, or transposed (element
// (r, c) at s[c * s_ld + r]) so that a column of the tile is contiguous.
enum class Layout { kSame, kTransposed };
// How load_tile copies: loads into registers then stores, or cp.async (sm_80+; the caller
// commits and waits).
enum class Copy { kLoadStore, kAsync };

// Copies the ROWS x COLS tile whose top-left element is g (row-major, leading dimension ld)
// into shared memory s (leading dimension s_ld), zero-filling rows >= rows_left and columns
// >= cols_left, i.e. everything past the matrix edge. THREADS threads share the copy, VEC
// consecutive elements per access. Copy::kAsync accesses narrower than 4 bytes, which
// cp.async cannot do, fall back to ordinary loads and stores.
// Preconditions for VEC > 1: g and every row start are VEC*sizeof(T)-aligned and cols_left is
// a multiple of VEC, so a vector is either wholly inside the matrix or wholly outside.
template <int ROWS, int COLS, int THREADS, int VEC, Layout LAYOUT, Copy COPY, typename T, typename Idx>
__device__ __forceinline__ void load_tile(const T* __restrict__ g, Idx ld, int rows_left,
                                          int cols_left, T* __restrict__ s, int s_ld) {
  static_assert(COLS % VEC == 0, "a vector access must not straddle two tile rows");
  constexpr int kPerRow = COLS / VEC;
  static_assert((ROWS * kPerRow) % THREADS == 0,
                "every thread copies the same number of vectors, so no thread needs a tile-bound check");
  constexpr int kIters = ROWS * kPerRow / THREADS;
  constexpr int kBytes = VEC * static_cast<int>(sizeof(T));
  const int tid = threadIdx.x;
  constexpr bool kTranspose = LAYOUT == Layout::kTransposed;
  if constexpr (COPY == Copy::kAsync && kBytes >= 4) {
    static_assert(!kTranspose || VEC == 1,
                  "cp.async copies contiguous bytes: a transposed tile takes one element per copy");
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int idx = tid + it * THREADS;
      const int r = idx / kPerRow, c = (idx % kPerRow) * VEC;
      const bool in = r < rows_left && c < cols_left;
      T* dst = kTranspose ? s + c * s_ld + r : s + r * s_ld + c;
      // Out-of-range copies read nothing; the tile origin g (inside the matrix) stands in.
      cp_async<kBytes>(dst, g + (in ? r * ld + c : Idx(0)), in);
    }
  } else {
    // Loads, then stores, kBatch accesses at a time: several global loads are in flight before
    // the first store, without holding a whole tile's worth of registers (the wmma kernel's
    // scalar fallback copies 32 elements a thread and spilled when staging them all).
    constexpr int kBatch = kIters < 8 ? kIters : 8;
    static_assert(kIters % kBatch == 0, "copies split into whole batches");
#pragma unroll
    for (int it0 = 0; it0 < kIters; it0 += kBatch) {
      Pack<T, VEC> regs[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int idx = tid + (it0 + b) * THREADS;
        const int r = idx / kPerRow, c = (idx % kPerRow) * VEC;
        if (r < rows_left && c < cols_left) {
          regs[b] = *reinterpret_cast<const Pack<T, VEC>*>(g + r * ld + c);
        } else {
#pragma unroll
          for (int v = 0; v < VEC; ++v) regs[b].v[v] = T(0.0f);
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int idx = tid + (it0 + b) * THREADS;
        const int r = idx / kPerRow, c = (idx % kPerRow) * VEC;
        if constexpr (kTranspose) {
#pragma unroll
          for (int v = 0; v < VEC; ++v) s[(c + v) * s_ld + r] = regs[b].v[v];
        } else {
          *reinterpret_cast<Pack<T, VEC>*>(s + r * s_ld + c) = regs[b];
        }
      }
    }
  }
}

// Stores TN consecutive outputs vals[0..TN) of one row at c_row[col..], skipping columns
// >= N. VEC: float4 stores (c_row + col 16-byte aligned, N a multiple of 4, so a group of 4
// columns is wholly inside or wholly outside).
template <int TN, bool VEC, typename T>
__device__ __forceinline__ void store_row(T* __restrict__ c_row, int col, int N, const T* vals) {
  if constexpr (VEC) {
    static_assert(TN % 4 == 0, "float4 stores need whole groups of 4 columns");
#pragma unroll
    for (int j = 0; j < TN; j += 4)
      if (col + j < N)
        *reinterpret_cast<float4*>(c_row + col + j) = make_float4(vals[j], vals[j + 1], vals[j + 2], vals[j + 3]);
  } else {
#pragma unroll
    for (int j = 0; j < TN; ++j)
      if (col + j < N) c_row[col + j] = vals[j];
  }
}

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

// The offset of element (i, j) of a logical (rows, cols) operand stored row-major, or stored
// transposed, as (cols, rows), when TRANS. 64-bit: the product may exceed 2^31.
template <bool TRANS>
__device__ __forceinline__ int64_t at(int i, int j, int rows, int cols) {
  return TRANS ? static_cast<int64_t>(j) * rows + i : static_cast<int64_t>(i) * cols + j;
}

// Rung 1, naive: one thread per output. A block covers 32 rows x 8 columns of c and threadIdx.x
// walks the rows, so the 32 lanes of a warp read a at 32 rows K elements apart and write c at 32
// rows N apart: 32 memory transactions where 1 would do. The ladder's baseline, slow on purpose.
constexpr int kNaiveRows = 32, kNaiveCols = 8;  // block: (kNaiveRows, kNaiveCols) threads

template <typename T, bool TA, bool TB>
__global__ void __launch_bounds__(kNaiveRows * kNaiveCols)
    matmul_naive_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int M, int N,
                        int K) {
  // a: (M, K), or (K, M) if TA; b: (K, N), or (N, K) if TB; c: (M, N).
  const Tile t = tile_of_block<kNaiveRows, kNaiveCols, 1>(M, N);
  const int row = t.m0 + threadIdx.x, col = t.n0 + threadIdx.y;
  if (row >= M || col >= N) return;
  T acc = T(0);
  for (int k = 0; k < K; ++k) acc += a[at<TA>(row, k, M, K)] * b[at<TB>(k, col, K, N)];
  c[static_cast<int64_t>(row) * N + col] = acc;
}

// Rung 2, coalesced: the same loop with threadIdx.x walking the columns. A block covers 8 rows x
// 32 columns; a warp shares one row of a (a broadcast) and reads b and writes c at 32
// consecutive addresses: one transaction each.
constexpr int kCoalescedRows = 8, kCoalescedCols = 32;  // block: (kCoalescedCols, kCoalescedRows) threads

template <typename T, bool TA, bool TB>
__global__ void __launch_bounds__(kCoalescedRows * kCoalescedCols)
    matmul_coalesced_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int M, int N,
                            int K) {
  // a: (M, K), or (K, M) if TA; b: (K, N), or (N, K) if TB; c: (M, N). A transposed b loses the
  // coalescing (the warp's columns are rows of the stored b): smem_tiled handles that case well.
  const Tile t = tile_of_block<kCoalescedRows, kCoalescedCols, 1>(M, N);
  const int row = t.m0 + threadIdx.y, col = t.n0 + threadIdx.x;
  if (row >= M || col >= N) return;
  T acc = T(0);
  for (int k = 0; k < K; ++k) acc += a[at<TA>(row, k, M, K)] * b[at<TB>(k, col, K, N)];
  c[static_cast<int64_t>(row) * N + col] = acc;
}

// Rung 3, smem_tiled: a block computes a TILE x TILE tile of c, stepping along K one TILE-wide
// slice at a time. Each thread copies one element of a's slice and one of b's into shared
// memory, then all TILE*TILE threads read them TILE times from there instead of from global
// memory: TILE times less global traffic.
template <typename T, int TILE, bool TA, bool TB>
__global__ void __launch_bounds__(TILE * TILE)
    matmul_smem_tiled_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                             int M, int N, int K) {
  // a: (M, K), or (K, M) if TA; b: (K, N), or (N, K) if TB; c: (M, N).
  static_assert(TILE * TILE <= 1024, "one thread per output of a TILE x TILE tile: at most 1024 threads");
  // A transposed operand's tile is stored into shared memory transposed (a warp writes a column):
  // one padding word per row puts a column's elements in different banks.
  PYKERN_SHARED(T, as, [TILE][TILE + (TA ? 1 : 0)]);  // a: (TILE rows of M, TILE of K)
  PYKERN_SHARED(T, bs, [TILE][TILE + (TB ? 1 : 0)]);  // b: (TILE of K, TILE columns of N)
  const Tile t = tile_of_block<TILE, TILE, kGroupM>(M, N);
  const int ty = threadIdx.x / TILE, tx = threadIdx.x % TILE;
  const int row = t.m0 + ty, col = t.n0 + tx;
  T acc = T(0);
  for (int k0 = 0; k0 < K; k0 += TILE) {
    // Zeros past the edges of a and b, so the sum below runs over whole tiles without checks.
    // Consecutive tx read consecutive stored addresses in every layout: a transposed tile is read
    // along its stored rows, element (m0 + tx, k0 + ty), and written to as[tx][ty].
    if (TA) as[tx][ty] = t.m0 + tx < M && k0 + ty < K ? a[at<true>(t.m0 + tx, k0 + ty, M, K)] : T(0);
    else as[ty][tx] = row < M && k0 + tx < K ? a[at<false>(row, k0 + tx, M, K)] : T(0);
    if (TB) bs[tx][ty] = k0 + tx < K && t.n0 + ty < N ? b[at<true>(k0 + tx, t.n0 + ty, K, N)] : T(0);
    else bs[ty][tx] = k0 + ty < K && col < N ? b[at<false>(k0 + ty, col, K, N)] : T(0);
    __syncthreads();
    // as[ty][k] is one address per warp (broadcast); bs[k][tx] is 32 consecutive words.
#pragma unroll
    for (int k = 0; k < TILE; ++k) acc += as[ty][k] * bs[k][tx];
    __syncthreads();  // before the next iteration overwrites the tiles
  }
  if (row < M && col < N) c[static_cast<int64_t>(row) * N + col] = acc;
}

template <int BM, int BN, int BK, int TM>
__global__ void __launch_bounds__(BM * BN / TM)
    matmul_blocktile_1d_kernel(const float* __restrict__ a, const float* __restrict__ b,
                               float* __restrict__ c, int M, int N, int K) {
  constexpr int kThreads = BM * BN / TM;
  static_assert(BM % TM == 0, "each thread owns TM whole rows of the block tile");
  static_assert(kThreads % BN == 0 && kThreads / BN == BM / TM,
                "threads tile the BM x BN block exactly: BN columns x BM/TM row groups");
  PYKERN_SHARED(float, as, [BM][BK]);  // a: (BM rows of M, BK of K)
  PYKERN_SHARED(float, bs, [BK][BN]);  // b: (BK of K, BN columns of N)
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  // A warp shares one row group (broadcast as[] reads) and takes 32 consecutive columns.
  const int tc = threadIdx.x % BN, tr = threadIdx.x / BN;
  float acc[TM] = {};
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM, BK, kThreads, 1, Layout::kSame, Copy::kLoadStore>(
        a + static_cast<int64_t>(t.m0) * K + k0, int64_t(K), M - t.m0, K - k0, &as[0][0], BK);
    load_tile<BK, BN, kThreads, 1, Layout::kSame, Copy::kLoadStore>(
        b + static_cast<int64_t>(k0) * N + t.n0, int64_t(N), K - k0, N - t.n0, &bs[0][0], BN);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      const float bv = bs[k][tc];  // reused TM times from a register
#pragma unroll
      for (int i = 0; i < TM; ++i) acc[i] += as[tr * TM + i][k] * bv;
    }
    __syncthreads();
  }
  const int col = t.n0 + tc;
  if (col >= N) return;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = t.m0 + tr * TM + i;
    if (row < M) c[static_cast<int64_t>(row) * N + col] = acc[i];
  }
}

// The register tiling of blocktile_2d, kept by vectorized (which changes only how tiles move):
// a 128x128 block tile over BK = 8 slices of K, 8x8 outputs per thread, so 256 threads.
struct Tile2dCfg {
  static constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
  static constexpr int kThreads = (BM / TM) * (BN / TN);
};

template <int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2)
    matmul_blocktile_2d_kernel(const float* __restrict__ a, const float* __restrict__ b,
                               float* __restrict__ c, int M, int N, int K) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  static_assert(BM % TM == 0 && BN % TN == 0, "threads own whole TM x TN tiles of the block tile");
  // Row stride BK + 1: the two row groups a warp reads (TM*BK words apart) then fall in
  // different banks instead of colliding (a 2-way conflict on every as[] read).
  constexpr int kALd = BK + 1;
  PYKERN_SHARED(float, as, [BM * kALd]);  // a: (BM rows of M, BK of K), padded rows
  PYKERN_SHARED(float, bs, [BK * BN]);    // b: (BK of K, BN columns of N)
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const int tc = threadIdx.x % (BN / TN), tr = threadIdx.x / (BN / TN);
  float acc[TM][TN] = {};
  float ra[TM], rb[TN];
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM, BK, kThreads, 1, Layout::kSame, Copy::kLoadStore>(
        a + static_cast<int64_t>(t.m0) * K + k0, K, M - t.m0, K - k0, as, kALd);
    load_tile<BK, BN, kThreads, 1, Layout::kSame, Copy::kLoadStore>(
        b + static_cast<int64_t>(k0) * N + t.n0, N, K - k0, N - t.n0, bs, BN);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      // TM + TN shared loads feed TM * TN FMAs: the point of the register tile.
#pragma unroll
      for (int i = 0; i < TM; ++i) ra[i] = as[(tr * TM + i) * kALd + k];
#pragma unroll
      for (int j = 0; j < TN; ++j) rb[j] = bs[k * BN + tc * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = t.m0 + tr * TM + i;
    if (row < M) store_row<TN, false>(c + static_cast<int64_t>(row) * N, t.n0 + tc * TN, N, acc[i]);
  }
}

// VA: a is read as float4 (K % 4 == 0, a 16-byte aligned). VBC: b read and c written as float4
// (N % 4 == 0, b and c 16-byte aligned). Either false: the same kernel with scalar accesses.
template <int BM, int BN, int BK, int TM, int TN, bool VA, bool VBC>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2)
    matmul_vectorized_kernel(const float* __restrict__ a, const float* __restrict__ b,
                             float* __restrict__ c, int M, int N, int K) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  static_assert(TM % 4 == 0 && TN % 4 == 0, "register fragments are read as whole float4s");
  static_assert(BK % 4 == 0, "a's float4 loads run along K: k-tiles must start 16 bytes apart");
  // Transposed a tile, row stride BM + 4: the fragment a thread needs at step k is
  // contiguous (float4 reads), and the transposing stores are conflict-free (2-way with float4
  // loads, 8-way with scalar ones at stride BM); BM + 4 keeps rows 16-byte aligned.
  constexpr int kALd = BM + 4;
  PYKERN_SHARED(__align__(16) float, as, [BK * kALd]);  // a^T: (BK of K, BM rows of M)
  PYKERN_SHARED(__align__(16) float, bs, [BK * BN]);    // b: (BK of K, BN columns of N)
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const int tc = threadIdx.x % (BN / TN), tr = threadIdx.x / (BN / TN);
  float acc[TM][TN] = {};
  float ra[TM], rb[TN];
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM, BK, kThreads, VA ? 4 : 1, Layout::kTransposed, Copy::kLoadStore>(
        a + static_cast<int64_t>(t.m0) * K + k0, K, M - t.m0, K - k0, as, kALd);
    load_tile<BK, BN, kThreads, VBC ? 4 : 1, Layout::kSame, Copy::kLoadStore>(
        b + static_cast<int64_t>(k0) * N + t.n0, N, K - k0, N - t.n0, bs, BN);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
#pragma unroll
      for (int i = 0; i < TM; i += 4)
        *reinterpret_cast<float4*>(&ra[i]) = *reinterpret_cast<const float4*>(&as[k * kALd + tr * TM + i]);
#pragma unroll
      for (int j = 0; j < TN; j += 4)
        *reinterpret_cast<float4*>(&rb[j]) = *reinterpret_cast<const float4*>(&bs[k * BN + tc * TN + j]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = t.m0 + tr * TM + i;
    if (row < M) store_row<TN, VBC>(c + static_cast<int64_t>(row) * N, t.n0 + tc * TN, N, acc[i]);
  }
}

// Warp tiling, shared by warptile and double_buffer. The BM x BN block tile is split among
// warps as WM x WN warp tiles; a warp's 32 lanes form an 8 x 4 grid, each lane owning TM x TN
// outputs in each of WMITER x WNITER sub-tiles. At every k, the 8 row-lanes read 8 adjacent
// float4s of a^T and the 4 column-lanes 4 adjacent float4s of b: each shared read is one
// conflict-free wavefront, and 4 float4 reads feed 64 FMAs.
template <int BM_, int BN_, int BK_, int WM_, int WN_, int TM_, int TN_>
struct WarpTiling {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, TM = TM_, TN = TN_;
  static constexpr int kLaneRows = 8, kLaneCols = 4;
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int WMITER = WM / (kLaneRows * TM), WNITER = WN / (kLaneCols * TN);
  // a^T row stride: +4 keeps rows 16-byte aligned for the float4 reads and cuts the transposing
  // stores' bank conflicts to 2-way (4-way for float4 loads, 16-way for scalar ones at BM).
  static constexpr int kALd = BM + 4;
  static constexpr int kATile = BK * kALd, kBTile = BK * BN;  // floats per k-tile
  static_assert(BM % WM == 0 && BN % WN == 0, "warp tiles must cover the block tile exactly");
  static_assert(WM % (kLaneRows * TM) == 0 && WN % (kLaneCols * TN) == 0,
                "a warp tile is a whole number of 8x4-lane sub-tiles");
  static_assert(TM % 4 == 0 && TN % 4 == 0, "register fragments are read from shared memory as float4");
  static_assert(BK % 4 == 0, "a's float4 loads run along K: k-tiles must start 16 bytes apart");

  float acc[WMITER * TM][WNITER * TN];
  int row0, col0;  // this lane's first row / column inside the block tile

  __device__ __forceinline__ WarpTiling() {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    row0 = (warp / kWarpsN) * WM + (lane / kLaneCols) * TM;
    col0 = (warp % kWarpsN) * WN + (lane % kLaneCols) * TN;
#pragma unroll
    for (int i = 0; i < WMITER * TM; ++i)
#pragma unroll
      for (int j = 0; j < WNITER * TN; ++j) acc[i][j] = 0.f;
  }

  // acc += a tile @ b tile as BK rank-1 updates: scalar FFMA outer products of register
  // fragments (no tensor cores; wmma_* is the rung that uses them).
  // as: a^T (BK, BM) with row stride kALd; bs: b (BK, BN).
  __device__ __forceinline__ void outer_products(const float* __restrict__ as, const float* __restrict__ bs) {
    float ra[WMITER * TM], rb[WNITER * TN];
#pragma unroll
    for (int k = 0; k < BK; ++k) {
#pragma unroll
      for (int wm = 0; wm < WMITER; ++wm)
#pragma unroll
        for (int i = 0; i < TM; i += 4)
          *reinterpret_cast<float4*>(&ra[wm * TM + i]) =
              *reinterpret_cast<const float4*>(&as[k * kALd + row0 + wm * kLaneRows * TM + i]);
#pragma unroll
      for (int wn = 0; wn < WNITER; ++wn)
#pragma unroll
        for (int j = 0; j < TN; j += 4)
          *reinterpret_cast<float4*>(&rb[wn * TN + j]) =
              *reinterpret_cast<const float4*>(&bs[k * BN + col0 + wn * kLaneCols * TN + j]);
#pragma unroll
      for (int i = 0; i < WMITER * TM; ++i)
#pragma unroll
        for (int j = 0; j < WNITER * TN; ++j) acc[i][j] += ra[i] * rb[j];
    }
  }

  template <bool VEC>
  __device__ __forceinline__ void store(float* __restrict__ c, int M, int N, Tile t) const {
#pragma unroll
    for (int wm = 0; wm < WMITER; ++wm)
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const int row = t.m0 + row0 + wm * kLaneRows * TM + i;
        if (row >= M) continue;
        float* c_row = c + static_cast<int64_t>(row) * N;
#pragma unroll
        for (int wn = 0; wn < WNITER; ++wn)
          store_row<TN, VEC>(c_row, t.n0 + col0 + wn * kLaneCols * TN, N, &acc[wm * TM + i][wn * TN]);
      }
  }
};

// 128x128x16 block tile, 8 warps of 64x32, 2x2 sub-tiles of 4x4 per lane: 64 accumulators per
// thread, so 2 blocks (16 warps) fit per SM within 128 registers a thread.
using WarpCfg = WarpTiling<128, 128, 16, 64, 32, 4, 4>;

template <typename Cfg, bool VA, bool VBC>
__global__ void __launch_bounds__(Cfg::kThreads, 2)
    matmul_warptile_kernel(const float* __restrict__ a, const float* __restrict__ b,
                           float* __restrict__ c, int M, int N, int K) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK;
  PYKERN_SHARED(__align__(16) float, as, [Cfg::kATile]);  // a^T: (BK of K, BM rows of M), row stride kALd
  PYKERN_SHARED(__align__(16) float, bs, [Cfg::kBTile]);  // b: (BK of K, BN columns of N)
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  Cfg w;
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM, BK, Cfg::kThreads, VA ? 4 : 1, Layout::kTransposed, Copy::kLoadStore>(
        a + static_cast<int64_t>(t.m0) * K + k0, K, M - t.m0, K - k0, as, Cfg::kALd);
    load_tile<BK, BN, Cfg::kThreads, VBC ? 4 : 1, Layout::kSame, Copy::kLoadStore>(
        b + static_cast<int64_t>(k0) * N + t.n0, N, K - k0, N - t.n0, bs, BN);
    __syncthreads();
    w.outer_products(as, bs);
    __syncthreads();
  }
  w.template store<VBC>(c, M, N, t);
}

// STAGES k-tiles in flight in a ring of shared buffers. a is always copied one element per
// cp.async (4 bytes) because its tile is stored transposed, which cp.async cannot do in wider
// pieces; that also means a needs no alignment beyond 4 bytes. VBC: b copied in 16-byte pieces
// and c stored as float4 (N % 4 == 0, b and c 16-byte aligned).
template <typename Cfg, int STAGES, bool VBC>
__global__ void __launch_bounds__(Cfg::kThreads, 2)
    matmul_double_buffer_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                float* __restrict__ c, int M, int N, int K) {
  static_assert(STAGES >= 2, "overlap needs one buffer being computed and one being filled");
  static_assert(STAGES * (Cfg::kATile + Cfg::kBTile) * sizeof(float) <= 48 * 1024,
                "static shared memory is capped at 48 KB per block");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // cp.async needs sm_80; the launcher never picks this kernel below that
#else
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK;
  PYKERN_SHARED(__align__(16) float, as, [STAGES][Cfg::kATile]);  // a^T: (BK of K, BM rows of M) per stage
  PYKERN_SHARED(__align__(16) float, bs, [STAGES][Cfg::kBTile]);  // b: (BK of K, BN columns of N) per stage
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const float* a_tile = a + static_cast<int64_t>(t.m0) * K;
  const float* b_tile = b + t.n0;
  auto issue = [&](int kt) {
    const int k0 = kt * BK;
    load_tile<BM, BK, Cfg::kThreads, 1, Layout::kTransposed, Copy::kAsync>(
        a_tile + k0, K, M - t.m0, K - k0, as[kt % STAGES], Cfg::kALd);
    load_tile<BK, BN, Cfg::kThreads, VBC ? 4 : 1, Layout::kSame, Copy::kAsync>(
        b_tile + static_cast<int64_t>(k0) * N, N, K - k0, N - t.n0, bs[kt % STAGES], BN);
  };
  const int ktiles = (K + BK - 1) / BK;
  // Prologue: k-tiles 0..STAGES-2 in flight, one commit group each (empty past the end, so
  // group g always holds k-tile g and the wait count below stays a constant).
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) issue(s);
    cp_async_commit();
  }
  Cfg w;
  for (int kt = 0; kt < ktiles; ++kt) {
    // STAGES-1+kt groups committed; allowing STAGES-2 pending means groups 0..kt (this
    // thread's part of k-tile kt) have landed.
    cp_async_wait<STAGES - 2>();
    // Everyone's part of k-tile kt is now visible, and everyone has finished computing k-tile
    // kt-1, whose buffer the next issue overwrites.
    __syncthreads();
    if (kt + STAGES - 1 < ktiles) issue(kt + STAGES - 1);
    cp_async_commit();
    w.outer_products(as[kt % STAGES], bs[kt % STAGES]);
  }
  w.template store<VBC>(c, M, N, t);
#endif
}

// Tensor cores through nvcuda::wmma: 16x16x16 fragments, T (half or bf16) in, fp32 accumulate.
// WM x WN warp tiles of (WM/16) x (WN/16) accumulator fragments; k-tiles of BK staged through a
// STAGES-deep cp.async ring in dynamic shared memory.
template <int BM_, int BN_, int BK_, int WM_, int WN_, int STAGES_>
struct WmmaCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int kThreads = 32 * (BM / WM) * (BN / WN);
  // Rows padded by 8 elements (16 bytes): consecutive fragment rows then start 4 banks apart,
  // so the 8 rows an 8x8 fragment load reads hit 8 disjoint bank groups.
  static constexpr int kALd = BK + 8, kBLd = BN + 8;
  static constexpr int kATile = BM * kALd, kBTile = BK * kBLd;  // elements per stage
  static constexpr int kElem = 2;                               // bytes per fp16/bf16 element
  static constexpr int kVec = 16 / kElem;                       // elements per 16-byte copy
  static_assert(BM % WM == 0 && BN % WN == 0, "warp tiles must cover the block tile exactly");
  static_assert(WM % 16 == 0 && WN % 16 == 0 && BK % 16 == 0, "wmma fragments are 16x16x16");
  static_assert(BK % kVec == 0 && BN % kVec == 0, "tiles are copied in whole 16-byte pieces");
  // load_matrix_sync needs 32-byte aligned fragment pointers: rows are multiples of 16
  // elements apart and every stage/array offset must keep that.
  static_assert((kATile * kElem) % 32 == 0 && (kBTile * kElem) % 32 == 0 && (kALd * kElem * 16) % 32 == 0,
                "stage sizes keep fragment pointers 32-byte aligned");
  static constexpr size_t kSmemBytes = size_t(STAGES) * (kATile + kBTile) * kElem;
  // The epilogue reuses the ring to stage each warp's 16 x WN fp32 fragment rows.
  static_assert(size_t(kThreads / 32) * 16 * WN * sizeof(float) <= kSmemBytes,
                "epilogue staging must fit in the pipeline's shared memory");
};

// 128x128x32 block tile, 8 warps of 64x32 (8 accumulator fragments, 64 registers each), 3
// stages: 55.5 KB of shared memory, 2 blocks per SM.
using WmmaTiles = WmmaCfg<128, 128, 32, 64, 32, 3>;

// VEC: a and b copied in 16-byte cp.async pieces (K, N multiples of 8, pointers 16-byte aligned).
// Otherwise element by element with ordinary loads (cp.async cannot copy 2 bytes); that path
// needs more address registers and is allowed up to 255 (one block per SM) instead of spilling.
template <typename T, typename Cfg, bool VEC>
__global__ void __launch_bounds__(Cfg::kThreads, VEC ? 2 : 1)
    matmul_wmma_kernel(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c,
                       int M, int N, int K) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 wmma and cp.async need sm_80; the launcher checks before launching
#else
  static_assert(sizeof(T) == Cfg::kElem, "the tile layout is sized for 16-bit elements");
  namespace wmma = nvcuda::wmma;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, WM = Cfg::WM, WN = Cfg::WN;
  constexpr int STAGES = Cfg::STAGES, FM = WM / 16, FN = WN / 16;
  constexpr int V = VEC ? Cfg::kVec : 1;
  PYKERN_EXTERN_SHARED(128, unsigned char, smem);
  T* as = reinterpret_cast<T*>(smem);   // a: (BM rows of M, BK of K) per stage, row stride kALd
  T* bs = as + STAGES * Cfg::kATile;    // b: (BK of K, BN columns of N) per stage, row stride kBLd
  const Tile t = tile_of_block<BM, BN, kGroupM>(M, N);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wr = (warp / (BN / WN)) * WM, wc = (warp % (BN / WN)) * WN;
  const T* a_tile = a + static_cast<int64_t>(t.m0) * K;
  const T* b_tile = b + t.n0;
  auto issue = [&](int kt) {
    const int k0 = kt * BK, s = kt % STAGES;
    load_tile<BM, BK, Cfg::kThreads, V, Layout::kSame, Copy::kAsync>(
        a_tile + k0, K, M - t.m0, K - k0, as + s * Cfg::kATile, Cfg::kALd);
    load_tile<BK, BN, Cfg::kThreads, V, Layout::kSame, Copy::kAsync>(
        b_tile + static_cast<int64_t>(k0) * N, N, K - k0, N - t.n0, bs + s * Cfg::kBTile, Cfg::kBLd);
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  const int ktiles = (K + BK - 1) / BK;
  // Same ring discipline as the double_buffer kernel: group g holds k-tile g.
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) issue(s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    if (kt + STAGES - 1 < ktiles) issue(kt + STAGES - 1);
    cp_async_commit();
    const T* a_s = as + (kt % STAGES) * Cfg::kATile;
    const T* b_s = bs + (kt % STAGES) * Cfg::kBTile;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[FM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[FN];
#pragma unroll
      for (int i = 0; i < FM; ++i) wmma::load_matrix_sync(fa[i], a_s + (wr + i * 16) * Cfg::kALd + kk, Cfg::kALd);
#pragma unroll
      for (int j = 0; j < FN; ++j) wmma::load_matrix_sync(fb[j], b_s + kk * Cfg::kBLd + wc + j * 16, Cfg::kBLd);
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
  }

  // Epilogue: fragments have an opaque register layout, so each warp stages one 16 x WN row of
  // fragments in shared memory and writes it out with per-element bounds checks (any M, N, and
  // no alignment needed for c).
  cp_async_wait<0>();
  __syncthreads();  // every warp is done reading the ring before it is reused
  float* stage = reinterpret_cast<float*>(smem) + warp * 16 * WN;  // (16, WN) per warp
#pragma unroll
  for (int i = 0; i < FM; ++i) {
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::store_matrix_sync(stage + j * 16, acc[i][j], WN, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 16 * WN; e += 32) {
      const int row = t.m0 + wr + i * 16 + e / WN, col = t.n0 + wc + e % WN;
      if (row < M && col < N) c[static_cast<int64_t>(row) * N + col] = stage[e];
    }
    __syncwarp();  // the next fragment row overwrites stage
  }
#endif
}

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

// Shapes arrive as int64 from Python; kernels index with int (see the header comment). The
// table's `unsupported` rule (below the table) checks every bound once, before any launcher runs.
static_assert(kMatmulMaxDim <= INT_MAX - 128, "the margin must exceed any tile edge (128) a kernel steps past");
std::string dims_problem(int64_t M, int64_t N, int64_t K) {
  if (M >= 1 && N >= 1 && K >= 1 && M <= kMatmulMaxDim && N <= kMatmulMaxDim && K <= kMatmulMaxDim) return "";
  return "M, N, K must be in [1, 2^31 - 1025], got M=" + std::to_string(M) + " N=" + std::to_string(N) +
         " K=" + std::to_string(K);
}

// One block per tile_m x tile_n tile of c, in a 1D grid (gridDim.x < 2^31).
int64_t grid_blocks(int64_t M, int64_t N, int tile_m, int tile_n) {
  return ((M + tile_m - 1) / tile_m) * ((N + tile_n - 1) / tile_n);
}
std::string grid_problem(int64_t M, int64_t N, int tile_m, int tile_n) {
  const int64_t blocks = grid_blocks(M, N, tile_m, tile_n);
  return blocks > INT_MAX ? "c has too many tiles for one grid (" + std::to_string(blocks) + ")" : "";
}
unsigned int grid_for(int64_t M, int64_t N, int tile_m, int tile_n) {
  return static_cast<unsigned int>(grid_blocks(M, N, tile_m, tile_n));
}

// "" when every offset inside a BM x BK tile of a and a BK x BN tile of b (row * ld + col from
// the tile origin) fits in an int, as the tiled kernels index them (see the header), else why.
std::string tile_offsets_problem(int64_t N, int64_t K, int BM, int BN, int BK) {
  const int64_t max_k = (INT_MAX - BK) / BM, max_n = (INT_MAX - BN) / BK;
  if (K <= max_k && N <= max_n) return "";
  return "K must be at most " + std::to_string(max_k) + " and N at most " + std::to_string(max_n) +
         " (32-bit offsets inside its " + std::to_string(BM) + "x" + std::to_string(BK) + " and " +
         std::to_string(BK) + "x" + std::to_string(BN) + " tiles), got K=" + std::to_string(K) +
         " N=" + std::to_string(N);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// A device property, not a shape: the one check launchers keep (RuntimeError, not `supports`).
void require_sm80(const char* what) {
  if (device_info().cc_major < 8)
    throw std::runtime_error(std::string(what) + " needs compute capability 8.0+ (cp.async, bf16 "
                             "tensor cores); this GPU is older");
}

// Calls fn(std::bool_constant<flags>{}...): turns runtime checks (alignment) into the template
// flags that select a kernel instantiation.
template <typename Fn>
void with_flags(Fn&& fn) {
  fn();
}
template <typename Fn, typename... Rest>
void with_flags(Fn&& fn, bool first, Rest... rest) {
  if (first) with_flags([&](auto... f) { fn(std::true_type{}, f...); }, rest...);
  else with_flags([&](auto... f) { fn(std::false_type{}, f...); }, rest...);
}

// Vector-access flags shared by the float4 kernels: a read as float4 needs K % 4 == 0 and a
// 16-byte aligned; b read and c written as float4 need N % 4 == 0 and both 16-byte aligned.
bool vec_a(const void* a, int64_t K) { return K % 4 == 0 && aligned16(a); }
bool vec_bc(const void* b, const void* c, int64_t N) { return N % 4 == 0 && aligned16(b) && aligned16(c); }

constexpr int kSmemTile = 32;  // smem_tiled's TILE
constexpr int kTile1dBM = 64, kTile1dBN = 64, kTile1dBK = 8, kTile1dTM = 8;  // blocktile_1d

void warptile_f32(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                  cudaStream_t stream, const char* what) {
  using Cfg = WarpCfg;
  const unsigned int grid = grid_for(M, N, Cfg::BM, Cfg::BN);
  with_flags([&](auto va, auto vbc) {
    PYKERN_LAUNCH(grid, Cfg::kThreads, 0, stream,
                  matmul_warptile_kernel<Cfg, decltype(va)::value, decltype(vbc)::value>)(
        a, b, c, int(M), int(N), int(K));
    check_launch(what);
  }, vec_a(a, K), vec_bc(b, c, N));
}

void double_buffer_f32(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                       cudaStream_t stream, const char* what) {
  using Cfg = WarpCfg;
  constexpr int kStages = 2;
  require_sm80(what);
  const unsigned int grid = grid_for(M, N, Cfg::BM, Cfg::BN);
  with_flags([&](auto vbc) {
    PYKERN_LAUNCH(grid, Cfg::kThreads, 0, stream, matmul_double_buffer_kernel<Cfg, kStages, decltype(vbc)::value>)(
        a, b, c, int(M), int(N), int(K));
    check_launch(what);
  }, vec_bc(b, c, N));
}

template <typename T>
void launch_wmma(const Call& call) {
  using Cfg = WmmaTiles;
  const MatmulDims d = call.dims_as<MatmulDims>();
  const T* a = call.input<T>(0);
  const T* b = call.input<T>(1);
  float* c = call.output<float>();
  require_sm80(call.name);
  const unsigned int grid = grid_for(d.M, d.N, Cfg::BM, Cfg::BN);
  // 16-byte copies need every row start of a and b 16-byte aligned: K and N multiples of 8.
  const bool vec = d.K % Cfg::kVec == 0 && d.N % Cfg::kVec == 0 && aligned16(a) && aligned16(b);
  with_flags([&](auto v) {
    auto kernel = matmul_wmma_kernel<T, Cfg, decltype(v)::value>;
    // More than 48 KB of dynamic shared memory must be opted into, per kernel.
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(Cfg::kSmemBytes)), call.name);
    PYKERN_LAUNCH(grid, Cfg::kThreads, Cfg::kSmemBytes, call.stream, kernel)(a, b, c, int(d.M), int(d.N),
                                                                             int(d.K));
    check_launch(call.name);
  }, vec);
}

void launch_naive(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  const unsigned int grid = grid_for(d.M, d.N, kNaiveRows, kNaiveCols);
  dispatch_dtype<float, double>(call.dtype, call.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_flags([&](auto ta, auto tb) {
      PYKERN_LAUNCH(grid, dim3(kNaiveRows, kNaiveCols), 0, call.stream,
                    matmul_naive_kernel<T, decltype(ta)::value, decltype(tb)::value>)(
          call.input<T>(0), call.input<T>(1), call.output<T>(), int(d.M), int(d.N), int(d.K));
      check_launch(call.name);
    }, d.transpose_a != 0, d.transpose_b != 0);
  });
}

void launch_coalesced(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  const unsigned int grid = grid_for(d.M, d.N, kCoalescedRows, kCoalescedCols);
  dispatch_dtype<float, double>(call.dtype, call.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_flags([&](auto ta, auto tb) {
      PYKERN_LAUNCH(grid, dim3(kCoalescedCols, kCoalescedRows), 0, call.stream,
                    matmul_coalesced_kernel<T, decltype(ta)::value, decltype(tb)::value>)(
          call.input<T>(0), call.input<T>(1), call.output<T>(), int(d.M), int(d.N), int(d.K));
      check_launch(call.name);
    }, d.transpose_a != 0, d.transpose_b != 0);
  });
}

void launch_smem_tiled(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  const unsigned int grid = grid_for(d.M, d.N, kSmemTile, kSmemTile);
  dispatch_dtype<float, double>(call.dtype, call.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_flags([&](auto ta, auto tb) {
      PYKERN_LAUNCH(grid, kSmemTile * kSmemTile, 0, call.stream,
                    matmul_smem_tiled_kernel<T, kSmemTile, decltype(ta)::value, decltype(tb)::value>)(
          call.input<T>(0), call.input<T>(1), call.output<T>(), int(d.M), int(d.N), int(d.K));
      check_launch(call.name);
    }, d.transpose_a != 0, d.transpose_b != 0);
  });
}

void launch_blocktile_1d(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  PYKERN_LAUNCH(grid_for(d.M, d.N, kTile1dBM, kTile1dBN), kTile1dBM * kTile1dBN / kTile1dTM, 0, call.stream,
                matmul_blocktile_1d_kernel<kTile1dBM, kTile1dBN, kTile1dBK, kTile1dTM>)(
      call.input<float>(0), call.input<float>(1), call.output<float>(), int(d.M), int(d.N), int(d.K));
  check_launch(call.name);
}

void launch_blocktile_2d(const Call& call) {
  using Cfg = Tile2dCfg;
  const MatmulDims d = call.dims_as<MatmulDims>();
  PYKERN_LAUNCH(grid_for(d.M, d.N, Cfg::BM, Cfg::BN), Cfg::kThreads, 0, call.stream,
                matmul_blocktile_2d_kernel<Cfg::BM, Cfg::BN, Cfg::BK, Cfg::TM, Cfg::TN>)(
      call.input<float>(0), call.input<float>(1), call.output<float>(), int(d.M), int(d.N), int(d.K));
  check_launch(call.name);
}

void launch_vectorized(const Call& call) {
  using Cfg = Tile2dCfg;
  const MatmulDims d = call.dims_as<MatmulDims>();
  const float* a = call.input<float>(0);
  const float* b = call.input<float>(1);
  float* c = call.output<float>();
  const unsigned int grid = grid_for(d.M, d.N, Cfg::BM, Cfg::BN);
  with_flags([&](auto va, auto vbc) {
    PYKERN_LAUNCH(grid, Cfg::kThreads, 0, call.stream,
                  matmul_vectorized_kernel<Cfg::BM, Cfg::BN, Cfg::BK, Cfg::TM, Cfg::TN, decltype(va)::value,
                                           decltype(vbc)::value>)(a, b, c, int(d.M), int(d.N), int(d.K));
    check_launch(call.name);
  }, vec_a(a, d.K), vec_bc(b, c, d.N));
}

void launch_warptile(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  warptile_f32(call.input<float>(0), call.input<float>(1), call.output<float>(), d.M, d.N, d.K, call.stream,
               call.name);
}

void launch_double_buffer(const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  double_buffer_f32(call.input<float>(0), call.input<float>(1), call.output<float>(), d.M, d.N, d.K, call.stream,
                    call.name);
}

void launch_wmma_fp16(const Call& call) { launch_wmma<__half>(call); }
void launch_wmma_bf16(const Call& call) { launch_wmma<__nv_bfloat16>(call); }

// What each row's kernels need of the shape beyond dims_problem: its block tile (tile_m x
// tile_n, which sizes the 1D grid) and, from blocktile_2d on, the BM x BK and BK x BN tiles whose
// offsets are 32-bit (BK = 0: offsets are 64-bit, any K and N).
struct RowShape {
  Launcher launch;
  int tile_m, tile_n;
  int BM, BN, BK;
};
constexpr RowShape kRowShapes[] = {
    {launch_naive, kNaiveRows, kNaiveCols, 0, 0, 0},
    {launch_coalesced, kCoalescedRows, kCoalescedCols, 0, 0, 0},
    {launch_smem_tiled, kSmemTile, kSmemTile, 0, 0, 0},
    {launch_blocktile_1d, kTile1dBM, kTile1dBN, 0, 0, 0},
    {launch_blocktile_2d, Tile2dCfg::BM, Tile2dCfg::BN, Tile2dCfg::BM, Tile2dCfg::BN, Tile2dCfg::BK},
    {launch_vectorized, Tile2dCfg::BM, Tile2dCfg::BN, Tile2dCfg::BM, Tile2dCfg::BN, Tile2dCfg::BK},
    {launch_warptile, WarpCfg::BM, WarpCfg::BN, WarpCfg::BM, WarpCfg::BN, WarpCfg::BK},
    {launch_double_buffer, WarpCfg::BM, WarpCfg::BN, WarpCfg::BM, WarpCfg::BN, WarpCfg::BK},
    {launch_wmma_fp16, WmmaTiles::BM, WmmaTiles::BN, WmmaTiles::BM, WmmaTiles::BN, WmmaTiles::BK},
    {launch_wmma_bf16, WmmaTiles::BM, WmmaTiles::BN, WmmaTiles::BM, WmmaTiles::BN, WmmaTiles::BK},
};

// The shape rule of one row's tiles: "" or why not.
std::string shape_problem(const RowShape& r, int64_t M, int64_t N, int64_t K) {
  std::string why = dims_problem(M, N, K);
  if (why.empty() && r.BK > 0) why = tile_offsets_problem(N, K, r.BM, r.BN, r.BK);
  if (why.empty()) why = grid_problem(M, N, r.tile_m, r.tile_n);
  return why;
}

const RowShape* row_shape(Launcher launch) {
  for (const RowShape& r : kRowShapes)
    if (r.launch == launch) return &r;
  return nullptr;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Variant table: the ladder in registration order; pykern/cuda/ registers each row
// ------------------------------------------------------------------------------------------

constexpr Variant kVariants[] = {
    // name           dtypes       default  launcher
    // ..., "technique", then the optional parameters the row takes (none when absent)
    {"naive",         kF32 | kF64, false,   launch_naive,
     "One thread per output, threadIdx.x -> row: warp loads of a and stores of c are uncoalesced on purpose; "
     "transposed a/b read in place.",
     kTransposeA | kTransposeB},
    {"coalesced",     kF32 | kF64, false,   launch_coalesced,
     "One thread per output, threadIdx.x -> column: a warp reads b and writes c at consecutive addresses; "
     "transposed a/b read in place.",
     kTransposeA | kTransposeB},
    {"smem_tiled",    kF32 | kF64, false,   launch_smem_tiled,
     "32x32 tiles of a and b staged in shared memory; one output per thread; transposed a/b tiles loaded "
     "along their stored rows.",
     kTransposeA | kTransposeB},
    {"blocktile_1d",  kF32,        false,   launch_blocktile_1d,
     "64x64 block tile over BK=8 shared tiles; each thread keeps a column of 8 outputs in registers."},
    {"blocktile_2d",  kF32,        false,   launch_blocktile_2d,
     "128x128 block tile over BK=8 shared tiles; each thread keeps an 8x8 register tile."},
    {"vectorized",    kF32,        false,   launch_vectorized,
     "blocktile_2d with float4 global loads/stores and a transposed a tile (scalar path when unaligned)."},
    {"warptile",      kF32,        false,   launch_warptile,
     "128x128x16 block -> 64x32 warp -> 2x2 sub-tiles of 4x4 per thread; conflict-free float4 shared reads."},
    {"double_buffer", kF32,        true,    launch_double_buffer,
     "warptile fed by cp.async into two shared buffers: next k-tile's copy overlaps compute (sm_80+)."},
    {"wmma_fp16",     kF16,        false,   launch_wmma_fp16,
     "Tensor cores via nvcuda::wmma, fp16 in, fp32 accumulate and out; 3-stage cp.async ring (sm_80+)."},
    {"wmma_bf16",     kBF16,       false,   launch_wmma_bf16,
     "Tensor cores via nvcuda::wmma, bf16 in, fp32 accumulate and out; 3-stage cp.async ring (sm_80+)."},
};

namespace {

// The rows whose offsets are 64-bit, "naive, coalesced and smem_tiled": what a refusal of 32-bit
// tile offsets suggests instead, read from the table rather than typed.
std::string rows_taking_any_k_and_n() {
  std::vector<std::string> names;
  for (const Variant& row : kVariants)
    if (row_shape(row.launch)->BK == 0) names.push_back(row.name);
  return name_list(names);
}

// The table's rule (Python's `supports` and the binder both ask it): shape_problem, with the
// rows to use instead when a row's 32-bit tile offsets are what refuses the shape.
std::string unsupported(const Variant& row, const Call& call) {
  const MatmulDims d = call.dims_as<MatmulDims>();
  const RowShape& r = *row_shape(row.launch);
  std::string why = dims_problem(d.M, d.N, d.K);
  if (why.empty() && r.BK > 0) {
    why = tile_offsets_problem(d.N, d.K, r.BM, r.BN, r.BK);
    if (!why.empty()) why += "; " + rows_taking_any_k_and_n() + " take any K and N";
  }
  return why.empty() ? grid_problem(d.M, d.N, r.tile_m, r.tile_n) : why;
}

}  // namespace

PYKERN_TABLE(matmul, MatmulDims, "a, b", kVariants, unsupported);

std::string matmul_f32_best_problem(int64_t M, int64_t N, int64_t K) {
  return shape_problem(*row_shape(launch_double_buffer), M, N, K);
}

void matmul_f32_best(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                     cudaStream_t stream, const char* what) {
  // double_buffer needs cp.async (sm_80+); older GPUs get the same tiling without it.
  if (device_info().cc_major >= 8) {
    double_buffer_f32(a, b, c, M, N, K, stream, what);
  } else {
    warptile_f32(a, b, c, M, N, K, stream, what);
  }
}

}  // namespace pykern
