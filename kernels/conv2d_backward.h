// conv2d gradient launchers (kernels/conv2d_backward_input.cu, kernels/conv2d_backward_weight.cu):
// the two gradients of kernels/conv2d.cu's NCHW cross-correlation, geometry in a ConvShape
// (conv2d.h; its relu field is unused). All pointers are device memory, C-contiguous.
//   input:  dy: (N, K, P, Q), w: (K, C/groups, R, S) -> dx: (N, C, H, W)
//   weight: x: (N, C, H, W), dy: (N, K, P, Q)         -> dw: (K, C/groups, R, S)
// Shapes were validated by Python (pykern/ops/conv2d_backward.py); the launchers check only
// what the kernels' own limits add (grid size).
#pragma once
#include "conv2d.h"

namespace pykern {
// a, b: the two inputs in the op's argument order (input: dy, w; weight: x, dy); out: the gradient.
using ConvBackwardLauncher = void (*)(DType dt, const ConvShape& s, const void* a, const void* b, void* out,
                                      cudaStream_t stream);

// One row per variant (the bottom of each .cu file).
VariantTable<ConvBackwardLauncher> conv2d_backward_input_variants();
VariantTable<ConvBackwardLauncher> conv2d_backward_weight_variants();
}  // namespace pykern
