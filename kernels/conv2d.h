// conv2d (kernels/conv2d/), NCHW cross-correlation as torch.nn.functional.conv2d:
// x: (N, C, H, W), w: (K, C/groups, R, S), bias: (K,) or nullptr -> y: (N, K, P, Q), then
// max(., 0) when relu is set. All pointers are device memory, C-contiguous.
#pragma once
#include "pykern.h"

namespace pykern {

// One convolution's geometry, a Call's dims: int64_t because Python ints arrive that wide; the
// kernels index with 32-bit ints where a product provably fits (the table's `unsupported` rule
// checks it) because 64-bit integer arithmetic costs two instructions per operation and extra
// registers in the inner loops. The spec's dims (pykern/ops/conv2d.py) list the same fields in
// the same order.
PYKERN_DIMS(ConvShape,
            N, C, H, W,  // x: (N, C, H, W)
            K, R, S,     // w: (K, C/groups, R, S)
            P, Q,        // y: (N, K, P, Q)
            sh, sw,      // stride (h, w)
            ph, pw,      // zero padding on each side (h, w)
            dh, dw,      // dilation (h, w)
            groups,      // C and K split into `groups` independent blocks
            relu);       // epilogue: 1 for y = max(y + bias, 0) (NaN propagates), else 0

}  // namespace pykern
