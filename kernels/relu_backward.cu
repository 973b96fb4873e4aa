// ReLU's gradient, dx = dy where x > 0 else 0 (torch's threshold_backward: a NaN in x passes dy
// through, a NaN in dy propagates where x > 0), float16, bfloat16, float32, float64. The spec is
// pykern/ops/relu_backward.py.
//
// Variants:
//   grid_stride  fixed grid (a few waves of blocks), each thread strides over the arrays
//
// dx may be dy or x (in place): each element is read before it is written, by the same thread.
// Indexing: kernels/pykern.h's elementwise policy, 64-bit indices and no size limit.
#include "dispatch.cuh"
#include "launch.cuh"

namespace pykern {
namespace {

constexpr int kBlock = 256;

template <typename T>
__device__ __forceinline__ T relu_grad1(T dy, T x) {
  // `x <= 0`, not `!(x > 0)`: false for NaN, so a NaN in x passes dy through, as in torch.
  return x <= T(0) ? T(0) : dy;
}
template <>
__device__ __forceinline__ __half relu_grad1<__half>(__half dy, __half x) {
  return __half2float(x) <= 0.f ? __float2half(0.f) : dy;
}
template <>
__device__ __forceinline__ __nv_bfloat16 relu_grad1<__nv_bfloat16>(__nv_bfloat16 dy, __nv_bfloat16 x) {
  return __bfloat162float(x) <= 0.f ? __float2bfloat16(0.f) : dy;
}

template <typename T>
__global__ void __launch_bounds__(kBlock) relu_backward_grid_stride_kernel(const T* dy, const T* x, T* dx, int64_t n) {
  // dy, x, dx: (n,). 64-bit index: n may exceed 2^31.
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dx[i] = relu_grad1(dy[i], x[i]);
}

// Enough blocks to fill every SM a few times over; more only adds scheduling overhead to a
// memory-bound loop.
unsigned int stride_grid(int64_t work) {
  unsigned int want = ceil_div(work, kBlock);
  unsigned int cap = static_cast<unsigned int>(device_info().sm_count) * 8;
  return want < cap ? (want > 0 ? want : 1) : cap;
}

void launch_grid_stride(const Call& c) {
  const int64_t n = c.dims_as<ElementwiseDims>().n;
  dispatch_dtype<__half, __nv_bfloat16, float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PYKERN_LAUNCH(stride_grid(n), kBlock, 0, c.stream, relu_backward_grid_stride_kernel<T>)(
        c.input<T>(0), c.input<T>(1), c.output<T>(), n);
    check_launch(c.name);
  });
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Variant table, in registration order; pykern/cuda/ registers each row
// ------------------------------------------------------------------------------------------

constexpr Variant kVariants[] = {
    // name         dtypes                      default  launcher
    {"grid_stride", kF16 | kBF16 | kF32 | kF64, true,    launch_grid_stride,
     "Grid capped at 8 blocks per SM; each thread strides over the arrays, selecting dy or 0 by "
     "the sign of x."},
};

PYKERN_TABLE(relu_backward, ElementwiseDims, "dy, x", kVariants);

}  // namespace pykern
