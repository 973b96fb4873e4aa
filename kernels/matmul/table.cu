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
//   mma_sync       tensor cores through PTX: ldmatrix from XOR-swizzled (conflict-free)
//                  shared tiles into mma.sync m16n8k16, fp32 accumulate and output, in a
//                  3-stage cp.async ring (sm_80+)                                          f16 bf16
//   wgmma          Hopper tensor cores: a producer warp streams 128B-swizzled TMA tiles into
//                  a 4-stage mbarrier ring; two consumer warpgroups read them in place
//                  through wgmma.mma_async m64n128k16 descriptors (sm_90a: H100/H200 only)  f16 bf16
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
// Indexing, kernels/pykern.h's tiled policy, checked once by the table's rule (unsupported, at
// the bottom): M, N, K are checked <= kMatmulMaxDim (2^31 minus a margin) and kept as int: cheap
// compares and tile arithmetic, which runs up to one tile past the edge (k0 + BK, m0 + BM)
// without overflow. Offsets row * ld + col may exceed 2^31 (M*K, K*N, M*N can), so tile origins
// are formed in 64 bits. From blocktile_2d to mma_sync, offsets inside a tile are int: the tiled kernels
// hoist one such offset per copied element out of the k-loop, and at 64 bits those pushed the
// 128-register kernels into spilling. So those launchers refuse K or N so large (millions) that
// rows * ld + cols of a tile reaches 2^31 (tile_offsets_problem); the first four rungs take any
// size up to kMatmulMaxDim, and so does wgmma (TMA takes element coordinates; its fallback
// copies and its epilogue index in 64 bits).
//
// Files: one per rung family, each with its kernels and launchers (naive.cu: naive, coalesced;
// smem_tiled.cu; blocktile.cu: blocktile_1d, blocktile_2d, vectorized; warptile.cu: warptile,
// double_buffer, matmul_f32_best; wmma.cu: wmma_fp16, wmma_bf16; mma_sync.cu; wgmma.cu), what they
// share in ladder.cuh, and this file: the variant table, in ladder order, and its rule.
#include "matmul/ladder.cuh"

namespace pykern {
namespace matmul {
namespace {

// The rung facts of every family, in ladder order (constant-initialized, so no static-init order).
const Rung* const kRungs[] = {&kNaiveRung,       &kCoalescedRung, &kSmemTiledRung, &kBlocktile1dRung,
                              &kBlocktile2dRung, &kVectorizedRung, &kWarptileRung, &kDoubleBufferRung,
                              &kWmmaFp16Rung,    &kWmmaBf16Rung,  &kMmaSyncRung,   &kWgmmaRung};

const RowShape* row_shape(Launcher launch) {
  for (const Rung* r : kRungs)
    if (r->launch == launch) return &r->shape;
  throw std::logic_error("a matmul row whose launcher has no rung facts");
}

// The shape rule of one row's tiles: "" or why not.
std::string shape_problem(const RowShape& r, int64_t M, int64_t N, int64_t K) {
  std::string why = dims_problem(M, N, K);
  if (why.empty() && r.BK > 0) why = tile_offsets_problem(N, K, r.BM, r.BN, r.BK);
  if (why.empty()) why = grid_problem(M, N, r.tile_m, r.tile_n);
  return why;
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
    {"mma_sync",      kF16 | kBF16, false,  launch_mma_sync,
     "Tensor cores via PTX: ldmatrix from XOR-swizzled shared tiles into mma.sync m16n8k16, fp32 accumulate and "
     "out; 3-stage cp.async ring (sm_80+)."},
    {"wgmma",         kF16 | kBF16, false,  launch_wgmma,
     "Hopper tensor cores: a producer warp streams 128B-swizzled TMA tiles into a 4-stage mbarrier ring, two "
     "consumer warpgroups read them through wgmma.mma_async m64n128k16 descriptors; fp32 accumulate and out "
     "(sm_90a: compute capability 9.0 only)."},
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

}  // namespace matmul

std::string matmul_f32_best_problem(int64_t M, int64_t N, int64_t K) {
  return matmul::shape_problem(*matmul::row_shape(matmul::launch_double_buffer), M, N, K);
}

}  // namespace pykern
