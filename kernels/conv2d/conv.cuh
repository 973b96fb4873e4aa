// What the files of conv2d (kernels/conv2d/*.cu) share: the geometry as the kernels see it, its
// 32-bit bounds (geom_problem, kernels/pykern.h's tiled policy), the fused epilogue, and each
// family's launcher and rule, which kernels/conv2d/table.cu gathers into the variant table. The
// variants (what each adds) are described at the top of table.cu.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "conv2d.h"
#include "dispatch.cuh"
#include "launch.cuh"

namespace pykern {
namespace conv2d {

// The shape as the kernels see it: 32-bit ints (the table's rule proved they fit) and the
// derived sizes every kernel needs, computed once on the host.
struct Geom {
  int N, C, H, W, K, R, S, P, Q;
  int sh, sw, ph, pw, dh, dw;
  int groups, Cg, Kg;
  int HW, PQ, RS, CRS;  // CRS = Cg*R*S
  int M;                // N*P*Q: output pixels over the batch, the implicit GEMM's rows
  bool relu;
};

// "" when the shape is consistent and within the 32-bit indexing bounds, else why not.
inline std::string geom_problem(const ConvShape& s) {
  for (int64_t v : {s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.P, s.Q, s.sh, s.sw, s.dh, s.dw, s.groups})
    if (v < 1 || v > kIndex32Max) return "every size, stride, dilation and groups must be in [1, 2^31)";
  if (s.ph < 0 || s.pw < 0 || s.ph > kIndex32Max || s.pw > kIndex32Max)
    return "padding must be in [0, 2^31)";
  if (s.C % s.groups || s.K % s.groups) return "groups must divide both C and K";
  // H + 2*ph bounds every input row index the kernels form (p*sh - ph + r*dh), likewise W.
  if (s.H + 2 * s.ph > kIndex32Max || s.W + 2 * s.pw > kIndex32Max)
    return "the padded input (H + 2*pad_h, W + 2*pad_w) must stay below 2^31";
  int64_t p = (s.H + 2 * s.ph - s.dh * (s.R - 1) - 1) / s.sh + 1;
  int64_t q = (s.W + 2 * s.pw - s.dw * (s.S - 1) - 1) / s.sw + 1;
  if (p != s.P || q != s.Q)
    return "y: (P, Q) = (" + std::to_string(s.P) + ", " + std::to_string(s.Q) +
           ") does not match the output size (" + std::to_string(p) + ", " + std::to_string(q) +
           ") of this input, filter, stride, padding and dilation";
  if (!fits_index32({s.C, s.H, s.W}))
    return "x: one image (C*H*W) must stay below 2^31 elements (32-bit in-image indexing)";
  if (!fits_index32({s.K, s.P, s.Q}))
    return "y: one image (K*P*Q) must stay below 2^31 elements (32-bit in-image indexing)";
  // - 64: implicit_gemm's filter offsets run up to two steps (2*BK <= 64) past the end.
  if (!fits_index32({s.K, s.C / s.groups, s.R, s.S}, 64))
    return "w: K*C/groups*R*S must stay below 2^31 - 64 elements (32-bit filter indexing)";
  if (!fits_index32({s.N, s.P, s.Q}))
    return "N*P*Q (output pixels over the batch) must stay below 2^31 (32-bit GEMM row index)";
  return "";
}

inline Geom make_geom(const ConvShape& s) {
  Geom g;
  g.N = int(s.N); g.C = int(s.C); g.H = int(s.H); g.W = int(s.W);
  g.K = int(s.K); g.R = int(s.R); g.S = int(s.S); g.P = int(s.P); g.Q = int(s.Q);
  g.sh = int(s.sh); g.sw = int(s.sw); g.ph = int(s.ph); g.pw = int(s.pw);
  g.dh = int(s.dh); g.dw = int(s.dw);
  g.groups = int(s.groups); g.Cg = g.C / g.groups; g.Kg = g.K / g.groups;
  g.HW = g.H * g.W; g.PQ = g.P * g.Q; g.RS = g.R * g.S; g.CRS = g.Cg * g.RS;
  g.M = g.N * g.PQ;
  g.relu = s.relu != 0;
  return g;
}

template <typename T>
__device__ __forceinline__ T activate(T v, bool relu) {
  // `v < 0` is false for NaN, so NaN propagates as in torch.relu.
  return relu && v < T(0) ? T(0) : v;
}

// Shared epilogue: bias, then the activation, applied to a finished accumulator.
template <typename T>
__device__ __forceinline__ T epilogue(T acc, const T* bias, int k, bool relu) {
  if (bias != nullptr) acc += bias[k];
  return activate(acc, relu);
}

// A family's facts for the table (table.cu): its launcher, its own limits (problem: "" when it
// can run shape s, which geom_problem accepted, in dtype dt; else why not), and the names of the
// configurations Call::config indexes (nullptr: none).
struct Rung {
  Launcher launch;
  std::string (*problem)(DType dt, const ConvShape& s);
  std::vector<std::string> (*configs)();
};

// Each family file's launcher and facts, in table order.
void launch_direct(const Call& c);         // direct.cu
void launch_smem_tiled(const Call& c);     // smem_tiled.cu
void launch_im2col_gemm(const Call& c);    // im2col_gemm.cu
void launch_implicit_gemm(const Call& c);  // implicit_gemm.cu
void launch_mma_sync(const Call& c);       // mma_sync.cu
extern const Rung kDirectRung, kSmemTiledRung, kIm2colGemmRung, kImplicitGemmRung, kMmaSyncRung;

}  // namespace conv2d
}  // namespace pykern
