// ReLU, y = max(x, 0) elementwise (NaN propagates, as in torch.relu), float16, bfloat16, float32,
// float64 (bfloat16: what a bfloat16 conv2d under torch.autocast hands its ReLU).
//
// Variants, each a rung of the memory-bound ladder:
//   naive       one thread per element, grid sized to n
//   grid_stride fixed grid (a few waves of blocks), each thread strides over the array
//   vectorized  grid-stride over 16-byte packets (uint4); scalar head/tail for any alignment
//
// All variants allow y == x (in place): each element is read before it is written, by the
// same thread. Indexing: kernels/pykern.h's elementwise policy, 64-bit indices and no size limit
// (naive launches in chunks of 2^31 - 1 blocks), so the table needs no `unsupported` rule.
#include "dispatch.cuh"
#include "launch.cuh"

namespace pykern {
namespace {

constexpr int kBlock = 256;

template <typename T>
__device__ __forceinline__ T relu1(T v) {
  // `v < 0` is false for NaN, so NaN passes through.
  return v < T(0) ? T(0) : v;
}
template <>
__device__ __forceinline__ __half relu1<__half>(__half v) {
  return __half2float(v) < 0.f ? __float2half(0.f) : v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 relu1<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v) < 0.f ? __float2bfloat16(0.f) : v;
}

template <typename T>
__global__ void __launch_bounds__(kBlock) relu_naive_kernel(const T* x, T* y, int64_t n) {
  // x: (n,), y: (n,). 64-bit index: n may exceed 2^31.
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = relu1(x[i]);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) relu_grid_stride_kernel(const T* x, T* y, int64_t n) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = relu1(x[i]);
}

// One 16-byte packet viewed as kVec elements of T.
template <typename T>
union Packet {
  static constexpr int kVec = 16 / sizeof(T);
  uint4 raw;
  T v[kVec];
};

template <typename T>
__global__ void __launch_bounds__(kBlock) relu_packets_kernel(const uint4* x, uint4* y, int64_t npackets) {
  // x, y: (npackets,) 16-byte packets, both 16-byte aligned.
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < npackets;
       i += stride) {
    Packet<T> p;
    p.raw = x[i];
#pragma unroll
    for (int k = 0; k < Packet<T>::kVec; ++k) p.v[k] = relu1(p.v[k]);
    y[i] = p.raw;
  }
}

// Enough blocks to fill every SM a few times over; more only adds scheduling overhead to a
// memory-bound loop.
unsigned int stride_grid(int64_t work) {
  unsigned int want = ceil_div(work, kBlock);
  unsigned int cap = static_cast<unsigned int>(device_info().sm_count) * 8;
  return want < cap ? (want > 0 ? want : 1) : cap;
}

template <typename T>
void vectorized_packets(const T* x, T* y, int64_t n, cudaStream_t stream, const char* what) {
  constexpr int64_t kVec = Packet<T>::kVec;
  auto xa = reinterpret_cast<uintptr_t>(x), ya = reinterpret_cast<uintptr_t>(y);
  if (xa % 16 != ya % 16) {
    // x and y are misaligned relative to each other: no offset makes both 16-byte aligned,
    // so packets are impossible; stay correct with scalar accesses.
    PYKERN_LAUNCH(stride_grid(n), kBlock, 0, stream, relu_grid_stride_kernel<T>)(x, y, n);
    check_launch(what, "scalar fallback");
    return;
  }
  // Scalar head up to the first 16-byte boundary, packets, then a scalar tail.
  int64_t head = static_cast<int64_t>(((16 - xa % 16) % 16) / sizeof(T));
  if (head > n) head = n;
  int64_t npackets = (n - head) / kVec;
  int64_t tail_start = head + npackets * kVec;
  if (head > 0) {
    PYKERN_LAUNCH(1, kBlock, 0, stream, relu_naive_kernel<T>)(x, y, head);
    check_launch(what, "head");
  }
  if (npackets > 0) {
    PYKERN_LAUNCH(stride_grid(npackets), kBlock, 0, stream, relu_packets_kernel<T>)(
        reinterpret_cast<const uint4*>(x + head), reinterpret_cast<uint4*>(y + head), npackets);
    check_launch(what, "packets");
  }
  if (tail_start < n) {
    PYKERN_LAUNCH(1, kBlock, 0, stream, relu_naive_kernel<T>)(x + tail_start, y + tail_start, n - tail_start);
    check_launch(what, "tail");
  }
}

void launch_naive(const Call& c) {
  const int64_t n = c.dims_as<ElementwiseDims>().n;
  // One launch per kChunk elements, so one thread per element has no grid limit (2^31 - 1 blocks).
  constexpr int64_t kChunk = int64_t{2147483647} * kBlock;
  dispatch_dtype<__half, __nv_bfloat16, float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t first = 0; first < n; first += kChunk) {
      const int64_t count = n - first < kChunk ? n - first : kChunk;
      PYKERN_LAUNCH(ceil_div(count, kBlock), kBlock, 0, c.stream, relu_naive_kernel<T>)(
          c.input<T>(0) + first, c.output<T>() + first, count);
      check_launch(c.name);
    }
  });
}

void launch_grid_stride(const Call& c) {
  const int64_t n = c.dims_as<ElementwiseDims>().n;
  dispatch_dtype<__half, __nv_bfloat16, float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PYKERN_LAUNCH(stride_grid(n), kBlock, 0, c.stream, relu_grid_stride_kernel<T>)(c.input<T>(0), c.output<T>(), n);
    check_launch(c.name);
  });
}

void launch_vectorized(const Call& c) {
  const int64_t n = c.dims_as<ElementwiseDims>().n;
  dispatch_dtype<__half, __nv_bfloat16, float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    vectorized_packets(c.input<T>(0), c.output<T>(), n, c.stream, c.name);
  });
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Variant table, in registration order; pykern/cuda/ registers each row
// ------------------------------------------------------------------------------------------

constexpr Variant kVariants[] = {
    // name         dtypes                      default  launcher
    {"naive",       kF16 | kBF16 | kF32 | kF64, false,   launch_naive,
     "One thread per element; grid sized to n."},
    {"grid_stride", kF16 | kBF16 | kF32 | kF64, false,   launch_grid_stride,
     "Grid capped at 8 blocks per SM; each thread strides over the array."},
    {"vectorized",  kF16 | kBF16 | kF32 | kF64, true,    launch_vectorized,
     "Grid-stride over 16-byte packets; scalar head/tail make any length and alignment correct."},
};

PYKERN_TABLE(relu, ElementwiseDims, "x", kVariants);

}  // namespace pykern
