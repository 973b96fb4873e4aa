// What the files of the matmul ladder (kernels/matmul/*.cu) share: the device helpers several
// rungs use, the host helpers their launchers and the table's rule use, and each family's
// launchers and rung facts, which kernels/matmul/table.cu gathers into the variant table. The
// ladder itself (what each rung adds) is described at the top of table.cu.
#pragma once
#include <climits>
#include <string>
#include <type_traits>

#include "dispatch.cuh"
#include "launch.cuh"
#include "matmul.h"
#include "mma.cuh"  // smem_addr, and the ldmatrix / mma.sync wrappers

namespace pykern {
namespace matmul {

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

// How load_tile lays a tile out in shared memory: as in global memory, transposed (element
// (r, c) at s[c * s_ld + r]) so that a column of the tile is contiguous, or XOR-swizzled
// (swizzled_offset, below) so that ldmatrix reads of 16-bit tiles are bank-conflict free.
enum class Layout { kSame, kTransposed, kSwizzled };

// The XOR swizzle of 16-bit tiles read by ldmatrix: a row's 16-byte chunks (8 elements) are
// permuted by chunk ^ (row % 8), so the same logical chunk of 8 consecutive rows, which one
// ldmatrix 8x8 matrix reads, lands in 8 different 4-bank groups of a 128-byte line instead of
// one (an 8-way conflict when rows are whole lines apart). s_ld must be a multiple of 64
// elements (rows of whole 128-byte lines), so the XOR stays inside the row's line; the
// kernel's config asserts that.
__device__ __forceinline__ int swizzled_offset(int r, int c, int s_ld) {
  return r * s_ld + (((c >> 3) ^ (r & 7)) << 3) + (c & 7);
}

// Where load_tile puts element (r, c) of the tile.
template <Layout LAYOUT>
__device__ __forceinline__ int tile_offset(int r, int c, int s_ld) {
  if constexpr (LAYOUT == Layout::kTransposed) return c * s_ld + r;
  else if constexpr (LAYOUT == Layout::kSwizzled) return swizzled_offset(r, c, s_ld);
  else return r * s_ld + c;
}
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
  static_assert(LAYOUT != Layout::kSwizzled || (sizeof(T) == 2 && 8 % VEC == 0),
                "the swizzle permutes 8-element chunks of 16-bit tiles: a vector must stay inside one");
  if constexpr (COPY == Copy::kAsync && kBytes >= 4) {
    static_assert(!kTranspose || VEC == 1,
                  "cp.async copies contiguous bytes: a transposed tile takes one element per copy");
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int idx = tid + it * THREADS;
      const int r = idx / kPerRow, c = (idx % kPerRow) * VEC;
      const bool in = r < rows_left && c < cols_left;
      T* dst = s + tile_offset<LAYOUT>(r, c, s_ld);
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
          *reinterpret_cast<Pack<T, VEC>*>(s + tile_offset<LAYOUT>(r, c, s_ld)) = regs[b];
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

// The offset of element (i, j) of a logical (rows, cols) operand stored row-major, or stored
// transposed, as (cols, rows), when TRANS. 64-bit: the product may exceed 2^31.
template <bool TRANS>
__device__ __forceinline__ int64_t at(int i, int j, int rows, int cols) {
  return TRANS ? static_cast<int64_t>(j) * rows + i : static_cast<int64_t>(i) * cols + j;
}

// ------------------------------------------------------------------------------------------
// Shared host helpers
// ------------------------------------------------------------------------------------------

// Shapes arrive as int64 from Python; kernels index with int (see the header comment). The
// table's `unsupported` rule (below the table) checks every bound once, before any launcher runs.
static_assert(kMatmulMaxDim <= INT_MAX - 128, "the margin must exceed any tile edge (128) a kernel steps past");
inline std::string dims_problem(int64_t M, int64_t N, int64_t K) {
  if (M >= 1 && N >= 1 && K >= 1 && M <= kMatmulMaxDim && N <= kMatmulMaxDim && K <= kMatmulMaxDim) return "";
  return "M, N, K must be in [1, 2^31 - 1025], got M=" + std::to_string(M) + " N=" + std::to_string(N) +
         " K=" + std::to_string(K);
}

// One block per tile_m x tile_n tile of c, in a 1D grid (gridDim.x < 2^31).
inline int64_t grid_blocks(int64_t M, int64_t N, int tile_m, int tile_n) {
  return ((M + tile_m - 1) / tile_m) * ((N + tile_n - 1) / tile_n);
}
inline std::string grid_problem(int64_t M, int64_t N, int tile_m, int tile_n) {
  const int64_t blocks = grid_blocks(M, N, tile_m, tile_n);
  return blocks > INT_MAX ? "c has too many tiles for one grid (" + std::to_string(blocks) + ")" : "";
}
inline unsigned int grid_for(int64_t M, int64_t N, int tile_m, int tile_n) {
  return static_cast<unsigned int>(grid_blocks(M, N, tile_m, tile_n));
}

// "" when every offset inside a BM x BK tile of a and a BK x BN tile of b (row * ld + col from
// the tile origin) fits in an int, as the tiled kernels index them (see the header), else why.
inline std::string tile_offsets_problem(int64_t N, int64_t K, int BM, int BN, int BK) {
  const int64_t max_k = (INT_MAX - BK) / BM, max_n = (INT_MAX - BN) / BK;
  if (K <= max_k && N <= max_n) return "";
  return "K must be at most " + std::to_string(max_k) + " and N at most " + std::to_string(max_n) +
         " (32-bit offsets inside its " + std::to_string(BM) + "x" + std::to_string(BK) + " and " +
         std::to_string(BK) + "x" + std::to_string(BN) + " tiles), got K=" + std::to_string(K) +
         " N=" + std::to_string(N);
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// A device property, not a shape: the one check launchers keep (RuntimeError, not `supports`).
inline void require_sm80(const char* what) {
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
inline bool vec_a(const void* a, int64_t K) { return K % 4 == 0 && aligned16(a); }
inline bool vec_bc(const void* b, const void* c, int64_t N) { return N % 4 == 0 && aligned16(b) && aligned16(c); }

// What a rung's kernels need of the shape beyond dims_problem: its block tile (tile_m x tile_n,
// which sizes the 1D grid) and, from blocktile_2d on, the BM x BK and BK x BN tiles whose offsets
// are 32-bit (BK = 0: offsets are 64-bit, any K and N). The table's rule reads it.
struct RowShape {
  int tile_m, tile_n;
  int BM, BN, BK;
};
struct Rung {
  Launcher launch;
  RowShape shape;
};

// Each family file's launchers and rung facts, in ladder order.
void launch_naive(const Call& call);          // naive.cu
void launch_coalesced(const Call& call);      // naive.cu
void launch_smem_tiled(const Call& call);     // smem_tiled.cu
void launch_blocktile_1d(const Call& call);   // blocktile.cu
void launch_blocktile_2d(const Call& call);   // blocktile.cu
void launch_vectorized(const Call& call);     // blocktile.cu
void launch_warptile(const Call& call);       // warptile.cu
void launch_double_buffer(const Call& call);  // warptile.cu
void launch_wmma_fp16(const Call& call);      // wmma.cu
void launch_wmma_bf16(const Call& call);      // wmma.cu
void launch_mma_sync(const Call& call);       // mma_sync.cu
extern const Rung kNaiveRung, kCoalescedRung, kSmemTiledRung, kBlocktile1dRung, kBlocktile2dRung, kVectorizedRung,
    kWarptileRung, kDoubleBufferRung, kWmmaFp16Rung, kWmmaBf16Rung, kMmaSyncRung;

}  // namespace matmul
}  // namespace pykern
