// conv2d's explicit-GEMM rung (the variants: kernels/conv2d/table.cu):
//   im2col_gemm  per image: im2col into a device buffer, then matmul_f32_best (kernels/matmul/)
//                per group, then one bias/ReLU pass; float32
#include "conv2d/conv.cuh"
#include "matmul.h"

namespace pykern {
namespace conv2d {
namespace {

constexpr int kElementwiseBlock = 256;

__global__ void __launch_bounds__(kElementwiseBlock)
im2col_kernel(Geom g, const float* __restrict__ xn, float* __restrict__ col) {
  // xn: (C, H, W), one image; col: (C*R*S, P*Q): row c*R*S + r*S + s holds, for every output
  // pixel, the input that filter tap multiplies (0 in the padding). pq fastest: stores are
  // coalesced, loads coalesced for stride 1. 64-bit: C*R*S*P*Q has no 32-bit bound.
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(g.C) * g.RS * g.PQ) return;
  const int pq = static_cast<int>(i % g.PQ);
  const int crs = static_cast<int>(i / g.PQ);  // < C*R*S, bounded by the filter bank's size
  const int c = crs / g.RS, rs = crs - c * g.RS;
  const int r = rs / g.S, s = rs - r * g.S;
  const int p = pq / g.Q, q = pq - p * g.Q;
  const int ih = p * g.sh - g.ph + r * g.dh, iw = q * g.sw - g.pw + s * g.dw;
  float v = 0.f;
  if (static_cast<unsigned>(ih) < static_cast<unsigned>(g.H) &&
      static_cast<unsigned>(iw) < static_cast<unsigned>(g.W))
    v = xn[c * g.HW + ih * g.W + iw];
  col[i] = v;
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseBlock)
bias_act_kernel(Geom g, const T* __restrict__ bias, T* __restrict__ y) {
  // y: (N, K, P, Q) in place, bias: (K,) or null. The GEMM cannot take an epilogue, so this
  // is the one extra memory pass of im2col_gemm.
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(g.N) * g.K * g.PQ) return;
  const int k = static_cast<int>((i / g.PQ) % g.K);
  y[i] = epilogue(y[i], bias, k, g.relu);
}

// Stream-ordered scratch memory that is freed on every path out of the launcher: release()
// on success checks the free; an exception path frees in the destructor without throwing.
class StreamBuffer {
 public:
  StreamBuffer(size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes > 0) check_cuda(cudaMallocAsync(&ptr_, bytes, stream), "cudaMallocAsync(conv2d im2col buffer)");
  }
  ~StreamBuffer() {
    if (ptr_ != nullptr) (void)cudaFreeAsync(ptr_, stream_);
  }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;
  float* get() const { return static_cast<float*>(ptr_); }
  void release() {
    void* p = ptr_;
    ptr_ = nullptr;
    if (p != nullptr) check_cuda(cudaFreeAsync(p, stream_), "cudaFreeAsync(conv2d im2col buffer)");
  }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// launcher and rule

// One GEMM per image and group: y[n, group] (Kg, P*Q) = w[group] (Kg, CRS) @ col (CRS, P*Q).
// Per image rather than one (K, CRS) @ (CRS, N*P*Q) GEMM because the per-image product lands in
// y's NCHW layout directly (the batched one would need a transpose pass and an N-times larger
// buffer), and one image's col (at most ~7 MiB for the ResNet layers) stays in the H100's
// 50 MiB L2 between the im2col write and the GEMM's reads. The cost is N*groups launches and
// skinny GEMMs when P*Q is small (7x7 maps): implicit_gemm is the variant for those.
void launch_im2col_gemm(const Call& c) {
  const Geom g = make_geom(c.dims_as<ConvShape>());
  const float* xf = c.input<float>(0);
  const float* wf = c.input<float>(1);
  const float* bias = c.input<float>(2);
  float* yf = c.output<float>();
  // A 1x1, stride-1, unpadded filter's col is the image itself, (C, H*W): skip the copy.
  const bool identity = g.R == 1 && g.S == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
  const int64_t col_elems = static_cast<int64_t>(g.C) * g.RS * g.PQ;  // col: (C*R*S, P*Q)
  StreamBuffer col(identity ? 0 : static_cast<size_t>(col_elems) * sizeof(float), c.stream);
  for (int n = 0; n < g.N; ++n) {
    const float* xn = xf + static_cast<int64_t>(n) * g.C * g.HW;  // (C, H, W)
    const float* cn = xn;
    if (!identity) {
      // Stream order makes reusing the buffer safe: image n+1's im2col runs after image n's GEMMs.
      PYKERN_LAUNCH(ceil_div(col_elems, kElementwiseBlock), kElementwiseBlock, 0, c.stream,
                    im2col_kernel)(g, xn, col.get());
      check_launch(c.name, "im2col");
      cn = col.get();
    }
    for (int grp = 0; grp < g.groups; ++grp) {
      matmul_f32_best(wf + static_cast<int64_t>(grp) * g.Kg * g.CRS,        // (Kg, CRS)
                      cn + static_cast<int64_t>(grp) * g.CRS * g.PQ,        // (CRS, P*Q)
                      yf + (static_cast<int64_t>(n) * g.K + static_cast<int64_t>(grp) * g.Kg) * g.PQ,  // (Kg, P*Q)
                      g.Kg, g.PQ, g.CRS, c.stream, c.name);
    }
  }
  if (bias != nullptr || g.relu) {
    const int64_t total = static_cast<int64_t>(g.N) * g.K * g.PQ;
    PYKERN_LAUNCH(ceil_div(total, kElementwiseBlock), kElementwiseBlock, 0, c.stream,
                  bias_act_kernel<float>)(g, bias, yf);
    check_launch(c.name, "bias/relu");
  }
  col.release();
}

// Its GEMM (M = Kg, N = P*Q, K = CRS) would throw mid-launch on a shape it refuses: refuse here
// with matmul's own rule, so `supports` agrees.
std::string im2col_gemm_problem(DType, const ConvShape& s) {
  const std::string gemm = matmul_f32_best_problem(s.K / s.groups, s.P * s.Q, s.C / s.groups * s.R * s.S);
  return gemm.empty() ? "" : "its GEMM (matmul_f32_best, M = K/groups, N = P*Q, K = C/groups*R*S): " + gemm;
}

const Rung kIm2colGemmRung{launch_im2col_gemm, im2col_gemm_problem, nullptr};

}  // namespace conv2d
}  // namespace pykern
