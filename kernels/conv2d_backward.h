// conv2d's gradients (kernels/conv2d_backward_input.cu, kernels/conv2d_backward_weight.cu): the two
// gradients of kernels/conv2d/'s NCHW cross-correlation. All pointers are device memory,
// C-contiguous.
//   input:  dy: (N, K, P, Q), w: (K, C/groups, R, S) -> dx: (N, C, H, W)
//   weight: x: (N, C, H, W), dy: (N, K, P, Q)         -> dw: (K, C/groups, R, S)
// Shapes were validated by Python (pykern/ops/conv2d_backward.py); each table's `unsupported`
// rule refuses, for a direct caller too, what the kernels' own limits add (sizes, grid).
#pragma once
#include <string>

#include "pykern.h"

namespace pykern {

// The geometry of both gradients: conv2d's ConvShape without its epilogue. The spec's dims
// (pykern/ops/conv2d_backward.py) list the same fields in the same order.
PYKERN_DIMS(ConvGradShape,
            N, C, H, W,  // x: (N, C, H, W)
            K, R, S,     // w: (K, C/groups, R, S)
            P, Q,        // dy: (N, K, P, Q)
            sh, sw,      // stride (h, w)
            ph, pw,      // zero padding on each side (h, w)
            dh, dw,      // dilation (h, w)
            groups);     // C and K split into `groups` independent blocks

// "" when the geometry is consistent, else why not: every size, stride, dilation and groups in
// [1, 2^31), padding in [0, 2^31) (the bounds Python's spec holds every argument to), groups
// dividing C and K, and (P, Q) the output size of this input, filter, stride, padding and
// dilation. Both tables' `unsupported` rules check it after their size products, as conv2d's
// does, so a direct caller's inconsistent dims never reach a kernel.
inline std::string grad_geometry_problem(const ConvGradShape& s) {
  constexpr int64_t kMax = 2147483647;
  for (int64_t v : {s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.P, s.Q, s.sh, s.sw, s.dh, s.dw, s.groups})
    if (v < 1 || v > kMax) return "every size, stride, dilation and groups must be in [1, 2^31)";
  if (s.ph < 0 || s.pw < 0 || s.ph > kMax || s.pw > kMax) return "padding must be in [0, 2^31)";
  if (s.C % s.groups || s.K % s.groups) return "groups must divide both C and K";
  // Within those bounds every term below fits int64.
  const int64_t p = (s.H + 2 * s.ph - s.dh * (s.R - 1) - 1) / s.sh + 1;
  const int64_t q = (s.W + 2 * s.pw - s.dw * (s.S - 1) - 1) / s.sw + 1;
  if (s.H + 2 * s.ph - s.dh * (s.R - 1) - 1 < 0 || s.W + 2 * s.pw - s.dw * (s.S - 1) - 1 < 0 || p != s.P ||
      q != s.Q)
    return "dy: (P, Q) = (" + std::to_string(s.P) + ", " + std::to_string(s.Q) +
           ") does not match the output size of this input, filter, stride, padding and dilation";
  return "";
}

}  // namespace pykern
