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
#include "mma.cuh"  // the ldmatrix / mma.sync wrappers
#include "tile.cuh"  // cp.async, the shared-memory layouts and load_tile

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
void launch_wgmma(const Call& call);          // wgmma.cu
extern const Rung kNaiveRung, kCoalescedRung, kSmemTiledRung, kBlocktile1dRung, kBlocktile2dRung, kVectorizedRung,
    kWarptileRung, kDoubleBufferRung, kWmmaFp16Rung, kWmmaBf16Rung, kMmaSyncRung, kWgmmaRung;

}  // namespace matmul
}  // namespace pykern
