// conv2d, NCHW cross-correlation with torch.nn.functional.conv2d semantics (the spec is
// pykern/ops/conv2d.py): x: (N, C, H, W), w: (K, C/groups, R, S), bias: (K,) or none ->
// y: (N, K, P, Q); stride, padding, dilation per axis; groups; optional fused ReLU after bias.
//
// Variants, from simplest to fastest (every one fuses bias + ReLU into its own launch sequence):
//   direct         one thread per output element, loops over (c, r, s); float32/64, all features
//   smem_tiled     an 8x32 output tile per block: input tile + halo and an 8-channel filter slice
//                  staged in shared memory, 8 output channels per thread; float32/64
//   im2col_gemm    per image: im2col into a device buffer, then matmul_f32_best (kernels/matmul/)
//                  per group, then one bias/ReLU pass; float32
//   implicit_gemm  GEMM over (N*P*Q) x K x (C/groups*R*S) with A gathered from x on the fly into
//                  shared memory (never materialized), register-blocked 2-D tiles, double-buffered,
//                  bias + ReLU fused into the store; float32
//   mma_sync       implicit GEMM on tensor cores, on matmul's mma.sync machinery: filters (A) and
//                  the im2col of x (B, gathered on the fly: 16-byte cp.async where a tap's pixels
//                  are one aligned run of x, a guarded gather otherwise) in XOR-swizzled shared
//                  tiles, a 3-stage cp.async ring, ldmatrix into mma.sync m16n8k16; fp16/bf16 in,
//                  fp32 accumulate, bias + ReLU in fp32, output in the input's dtype (sm_80+)
//
// Abbreviations: PQ = P*Q output pixels per image; Cg = C/groups, Kg = K/groups channels per
// group; CRS = Cg*R*S, the reduction length of one output (a filter's size).
//
// Index widths: kernels/pykern.h's tiled policy for every variant (direct too: it shares the
// Geom of 32-bit sizes): the table's rule refuses shapes where one image of x (C*H*W), of y
// (K*P*Q), the filter bank (K*Cg*R*S) or N*P*Q reaches 2^31 (geom_problem); within those bounds
// in-image offsets are 32-bit ints (cheaper address math, fewer registers) and only the
// per-image base offsets, which grow with N, are 64-bit.
//
// Files: one per variant, each with its kernels, launcher and own limits (direct.cu,
// smem_tiled.cu, im2col_gemm.cu, implicit_gemm.cu, mma_sync.cu), what they share in conv.cuh
// (mma_sync also shares kernels/mma_tile.cuh with matmul's mma_sync), and this file:
// the variant table and its rule.
#include "conv2d/conv.cuh"

namespace pykern {
namespace conv2d {
namespace {

// The facts of every family, in table order (constant-initialized, so no static-init order).
const Rung* const kRungs[] = {&kDirectRung, &kSmemTiledRung, &kIm2colGemmRung, &kImplicitGemmRung, &kMmaSyncRung};

const Rung& rung_of(const Variant& row) {
  for (const Rung* r : kRungs)
    if (r->launch == row.launch) return *r;
  throw std::logic_error(std::string("conv2d row ") + row.name + " has no family facts");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Variant table, simplest first, in registration order; pykern/cuda/ registers each row

constexpr Variant kVariants[] = {
    // name           dtypes       default  launcher
    {"direct",        kF32 | kF64, false,   launch_direct,
     "One thread per output element looping over (c, r, s); every feature, groups included."},
    {"smem_tiled",    kF32 | kF64, false,   launch_smem_tiled,
     "8x32 output tile per block: input tile + halo and an 8-filter slice in shared memory; 48 KiB cap."},
    {"im2col_gemm",   kF32,        false,   launch_im2col_gemm,
     "Per image: explicit im2col buffer, then matmul_f32_best per group, then a bias/ReLU pass."},
    {"implicit_gemm", kF32,        true,    launch_implicit_gemm,
     "Implicit GEMM (NPQ x K x CRS): x gathered into shared tiles on the fly, 2-D register tiles, fused epilogue."},
    {"mma_sync",      kF16 | kBF16, false,  launch_mma_sync,
     "Implicit GEMM on tensor cores: filters and gathered x in XOR-swizzled shared tiles, 3-stage cp.async ring, "
     "ldmatrix + mma.sync m16n8k16, fp32 accumulate, fused epilogue, output in the input dtype (sm_80+)."},
};

namespace {

// The table's rule (Python's `supports` and the binder both ask it): the 32-bit index bounds of
// geom_problem, then the row's own limits (shared-memory budget, grid), naming the rows of the
// table that do take the shape.
std::string unsupported(const Variant& row, const Call& c) {
  const ConvShape s = c.dims_as<ConvShape>();
  std::string why = geom_problem(s);
  if (!why.empty()) return why;
  why = rung_of(row).problem(c.dtype, s);
  if (why.empty()) return "";
  std::vector<std::string> others;
  for (const Variant& other : kVariants)
    if (&other != &row && other.dtypes.has(c.dtype) && rung_of(other).problem(c.dtype, s).empty())
      others.push_back(other.name);
  return others.empty() ? why : why + "; use " + name_list(others, "or");
}

// Each row's configurations (implicit_gemm's tiles), in the order Call::config indexes them.
std::vector<std::string> configs(const Variant& row) {
  const Rung& r = rung_of(row);
  return r.configs != nullptr ? r.configs() : std::vector<std::string>();
}

}  // namespace

PYKERN_TABLE(conv2d, ConvShape, "x, w, bias?", kVariants, unsupported, configs);

}  // namespace conv2d
}  // namespace pykern
