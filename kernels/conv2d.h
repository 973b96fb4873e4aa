// conv2d launchers (kernels/conv2d.cu), NCHW cross-correlation as torch.nn.functional.conv2d:
// x: (N, C, H, W), w: (K, C/groups, R, S), bias: (K,) or nullptr -> y: (N, K, P, Q), then
// max(., 0) when relu is set. All pointers are device memory, C-contiguous.
#pragma once
#include <string>
#include <vector>
#include "pykern.h"

namespace pykern {

// One convolution's geometry, built once by the binding so launchers take one argument
// instead of twenty. int64_t because Python ints arrive that wide; the kernels index with
// 32-bit ints where a product provably fits (see conv2d_unsupported) because 64-bit integer
// arithmetic costs two instructions per operation and extra registers in the inner loops.
struct ConvShape {
  int64_t N, C, H, W;  // x: (N, C, H, W)
  int64_t K, R, S;     // w: (K, C/groups, R, S)
  int64_t P, Q;        // y: (N, K, P, Q)
  int64_t sh, sw;      // stride (h, w)
  int64_t ph, pw;      // zero padding on each side (h, w)
  int64_t dh, dw;      // dilation (h, w)
  int64_t groups;      // C and K split into `groups` independent blocks
  bool relu;           // epilogue: y = max(y + bias, 0) (NaN propagates)
};

// Every variant's launcher: x, w, bias (nullptr = no bias), y as described above; enqueued on
// `stream`. tile: -1, or for implicit_gemm an index into conv2d_implicit_gemm_tiles() to force
// that configuration instead of the launcher's pick from the shape and the SM count (tests force
// each one, whichever the heuristic prefers on the test GPU).
using ConvLauncher = void (*)(DType dt, const ConvShape& s, const void* x, const void* w, const void* bias,
                              void* y, cudaStream_t stream, int tile);

// One row per variant (the bottom of kernels/conv2d.cu).
VariantTable<ConvLauncher> conv2d_variants();

// Why `variant` (a row's name) cannot run this dtype and shape, or "" when it can. The bindings
// and launchers refuse the same cases with the same text, and Python's `supports` calls this,
// so both sides always agree.
std::string conv2d_unsupported(const std::string& variant, DType dt, const ConvShape& s);

// Names of the implicit-GEMM tile configurations, in the order `tile` indexes them.
std::vector<std::string> conv2d_implicit_gemm_tiles();

}  // namespace pykern
