// conv2d, NCHW cross-correlation with torch.nn.functional.conv2d semantics (the spec is
// pykern/ops/conv2d.py): x: (N, C, H, W), w: (K, C/groups, R, S), bias: (K,) or none ->
// y: (N, K, P, Q); stride, padding, dilation per axis; groups; optional fused ReLU after bias.
//
// Variants, from simplest to fastest (every one fuses bias + ReLU into its own launch sequence):
//   direct         one thread per output element, loops over (c, r, s); float32/64, all features
//   smem_tiled     an 8x32 output tile per block: input tile + halo and an 8-channel filter slice
//                  staged in shared memory, 8 output channels per thread; float32/64
//   im2col_gemm    per image: im2col into a device buffer, then matmul_f32_best (kernels/matmul.cu)
//                  per group, then one bias/ReLU pass; float32
//   implicit_gemm  GEMM over (N*P*Q) x K x (C/groups*R*S) with A gathered from x on the fly into
//                  shared memory (never materialized), register-blocked 2-D tiles, double-buffered,
//                  bias + ReLU fused into the store; float32
//
// Abbreviations: PQ = P*Q output pixels per image; Cg = C/groups, Kg = K/groups channels per
// group; CRS = Cg*R*S, the reduction length of one output (a filter's size).
//
// Index widths: kernels/pykern.h's tiled policy for every variant (direct too: it shares the
// Geom of 32-bit sizes): the table's rule refuses shapes where one image of x (C*H*W), of y
// (K*P*Q), the filter bank (K*Cg*R*S) or N*P*Q reaches 2^31 (geom_problem); within those bounds
// in-image offsets are 32-bit ints (cheaper address math, fewer registers) and only the
// per-image base offsets, which grow with N, are 64-bit.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "conv2d.h"
#include "dispatch.cuh"
#include "launch.cuh"
#include "matmul.h"

namespace pykern {
namespace {

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
std::string geom_problem(const ConvShape& s) {
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

Geom make_geom(const ConvShape& s) {
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

// ---------------------------------------------------------------------------------------------
// direct
constexpr int kDirectBlock = 256;

template <typename T>
__global__ void __launch_bounds__(kDirectBlock)
conv2d_direct_kernel(Geom g, const T* __restrict__ x, const T* __restrict__ w,
                     const T* __restrict__ bias, T* __restrict__ y) {
  // x: (N, C, H, W), w: (K, Cg, R, S), bias: (K,) or null, y: (N, K, P, Q).
  // One thread per element of y, q fastest: a warp reads neighbouring x columns (coalesced
  // for stride 1) and mostly one filter (broadcast). 64-bit: N*K*P*Q may exceed 2^31.
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(g.N) * g.K * g.PQ) return;
  const int q = static_cast<int>(i % g.Q);
  int64_t rest = i / g.Q;
  const int p = static_cast<int>(rest % g.P);
  rest /= g.P;
  const int k = static_cast<int>(rest % g.K);
  const int n = static_cast<int>(rest / g.K);
  const int grp = k / g.Kg;
  const T* xg = x + (static_cast<int64_t>(n) * g.C + static_cast<int64_t>(grp) * g.Cg) * g.HW;  // (Cg, H, W)
  const T* wk = w + static_cast<int64_t>(k) * g.CRS;  // (Cg, R, S)
  const int ih0 = p * g.sh - g.ph, iw0 = q * g.sw - g.pw;
  T acc = T(0);
  for (int c = 0; c < g.Cg; ++c) {
    for (int r = 0; r < g.R; ++r) {
      const int ih = ih0 + r * g.dh;
      // Unsigned compare: one test covers both ih < 0 (wraps to huge) and ih >= H.
      const bool row_in = static_cast<unsigned>(ih) < static_cast<unsigned>(g.H);
      for (int s = 0; s < g.S; ++s) {
        const int iw = iw0 + s * g.dw;
        // Padding is zeros that multiply like any value (0 * Inf is NaN, as in the spec and
        // torch), so padded taps are not skipped.
        T v = T(0);
        if (row_in && static_cast<unsigned>(iw) < static_cast<unsigned>(g.W)) v = xg[c * g.HW + ih * g.W + iw];
        acc += v * wk[(c * g.R + r) * g.S + s];
      }
    }
  }
  y[i] = epilogue(acc, bias, k, g.relu);
}

// ---------------------------------------------------------------------------------------------
// smem_tiled
constexpr int kSmemTileP = 8;   // output rows per block
constexpr int kSmemTileQ = 32;  // output columns per block
constexpr int kSmemKB = 8;      // output channels per block, held as registers by every thread
constexpr int kSmemMaxCB = 8;   // input channels staged per pair of __syncthreads
constexpr int kSmemThreads = kSmemTileP * kSmemTileQ;
// Below the 48 KiB every GPU grants without an opt-in attribute, so any shape that fits is
// launchable as is; larger filters/dilations are refused (the table's rule says which).
constexpr int64_t kSmemBudget = 48 * 1024;
static_assert(kSmemTileQ == 32, "one warp per output row: x loads along W and y stores along Q "
                                "are then coalesced");
static_assert(kSmemThreads <= 1024, "a block holds at most 1024 threads");

struct SmemTiling {
  int IH, IW;  // input tile with halo for one output tile: ((TP-1)*sh + (R-1)*dh + 1, ...)
  int CB;      // channels staged per step, limited by the budget
  int64_t bytes_per_channel, bytes;
};

SmemTiling smem_tiling(const ConvShape& s, int64_t itemsize) {
  SmemTiling t{};
  // int64 first: the budget check below is what makes these small.
  int64_t ih = (kSmemTileP - 1) * s.sh + (s.R - 1) * s.dh + 1;
  int64_t iw = (kSmemTileQ - 1) * s.sw + (s.S - 1) * s.dw + 1;
  // ih * iw saturated: with strides near 2^31 the raw product (up to ~2^70) wraps int64 and
  // can land on a small positive byte count that passes the budget. Saturated, it stays over
  // the budget and the shape is refused. R*S < 2^31 (filter bank bound), so that term fits.
  t.bytes_per_channel = (index32_product({ih, iw}) + s.R * s.S * kSmemKB) * itemsize;
  int64_t cb = std::min<int64_t>({kSmemMaxCB, s.C / s.groups, kSmemBudget / t.bytes_per_channel});
  t.IH = static_cast<int>(std::min<int64_t>(ih, kIndex32Max));
  t.IW = static_cast<int>(std::min<int64_t>(iw, kIndex32Max));
  t.CB = static_cast<int>(cb);
  t.bytes = cb * t.bytes_per_channel;
  return t;
}

template <typename T>
__global__ void __launch_bounds__(kSmemThreads)
conv2d_smem_tiled_kernel(Geom g, int IH, int IW, int CB, int tiles_q, int tiles_p, int k_blocks,
                         const T* __restrict__ x, const T* __restrict__ w,
                         const T* __restrict__ bias, T* __restrict__ y) {
  // x: (N, C, H, W), w: (K, Cg, R, S), bias: (K,) or null, y: (N, K, P, Q).
  // Dynamic shared memory, typed per T (an extern array cannot be declared once per T):
  //   tile: (CB, IH, IW)         input channels c0.. with the halo the filter reaches
  //   wsh:  (CB, R, S, kSmemKB)  the block's kSmemKB filters for those channels, channel-minor
  //                              so a tap's kSmemKB weights are adjacent (broadcast reads)
  PYKERN_EXTERN_SHARED(16, unsigned char, smem_raw);
  T* tile = reinterpret_cast<T*>(smem_raw);
  T* wsh = tile + CB * IH * IW;

  int bx = blockIdx.x;
  const int tq = bx % tiles_q;
  bx /= tiles_q;
  const int tp = bx % tiles_p;
  const int n = bx / tiles_p;
  // A block's kSmemKB filters all lie in one group (k_blocks per group), so they share its
  // input channels and one staged tile serves all of them.
  const int grp = blockIdx.y / k_blocks;
  const int kb0 = (blockIdx.y % k_blocks) * kSmemKB;  // first filter of the block, within grp
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kSmemTileQ + tx;
  const int p = tp * kSmemTileP + ty, q = tq * kSmemTileQ + tx;
  const int ih_base = tp * kSmemTileP * g.sh - g.ph;  // input row of tile row 0
  const int iw_base = tq * kSmemTileQ * g.sw - g.pw;
  const T* xg = x + (static_cast<int64_t>(n) * g.C + static_cast<int64_t>(grp) * g.Cg) * g.HW;  // (Cg, H, W)
  const T* wg = w + static_cast<int64_t>(grp) * g.Kg * g.CRS;  // (Kg, Cg, R, S)

  T acc[kSmemKB];
#pragma unroll
  for (int kk = 0; kk < kSmemKB; ++kk) acc[kk] = T(0);

  for (int c0 = 0; c0 < g.Cg; c0 += CB) {
    const int cbn = min(CB, g.Cg - c0);
    // Stage the input tile: one warp per tile row, zero where the row/column is padding.
    for (int cr = ty; cr < cbn * IH; cr += kSmemTileP) {
      const int c = cr / IH;
      const int ih = ih_base + (cr - c * IH);
      const bool row_ok = static_cast<unsigned>(ih) < static_cast<unsigned>(g.H);
      for (int col = tx; col < IW; col += kSmemTileQ) {
        const int iw = iw_base + col;
        T v = T(0);
        if (row_ok && static_cast<unsigned>(iw) < static_cast<unsigned>(g.W))
          v = xg[(c0 + c) * g.HW + ih * g.W + iw];
        tile[cr * IW + col] = v;
      }
    }
    // Stage the filter slice; filters past the group's end are zero (their outputs are not
    // stored, the zeros only keep the arithmetic finite).
    for (int e = tid; e < cbn * g.RS * kSmemKB; e += kSmemThreads) {
      const int kk = e % kSmemKB;
      const int crs = e / kSmemKB;  // (c - c0)*R*S + r*S + s
      T v = T(0);
      if (kb0 + kk < g.Kg) v = wg[(kb0 + kk) * g.CRS + c0 * g.RS + crs];
      wsh[e] = v;
    }
    __syncthreads();
    for (int c = 0; c < cbn; ++c) {
      for (int r = 0; r < g.R; ++r) {
        // Threads past P or Q read the tile in bounds too (it spans kSmemTileP x kSmemTileQ
        // outputs); they just never store.
        const T* trow = tile + (c * IH + ty * g.sh + r * g.dh) * IW + tx * g.sw;
        const T* wtap = wsh + (c * g.RS + r * g.S) * kSmemKB;
        for (int s = 0; s < g.S; ++s) {
          const T v = trow[s * g.dw];
#pragma unroll
          for (int kk = 0; kk < kSmemKB; ++kk) acc[kk] += v * wtap[s * kSmemKB + kk];
        }
      }
    }
    __syncthreads();  // the next step overwrites tile and wsh
  }

  if (p >= g.P || q >= g.Q) return;
#pragma unroll
  for (int kk = 0; kk < kSmemKB; ++kk) {
    if (kb0 + kk >= g.Kg) break;
    const int k = grp * g.Kg + kb0 + kk;
    y[(static_cast<int64_t>(n) * g.K + k) * g.PQ + p * g.Q + q] = epilogue(acc[kk], bias, k, g.relu);
  }
}

// ---------------------------------------------------------------------------------------------
// im2col_gemm
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

// ---------------------------------------------------------------------------------------------
// implicit_gemm
//
// GEMM view: y^T = A @ B with rows m = (n, p, q) (M = N*P*Q), columns k (one group's Kg),
// reduction over crs = (c, r, s) (CRS = Cg*R*S):
//   A[m][crs] = x[n, grp*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw]   (0 in the padding)
//   B[crs][k] = w[grp*Kg + k, c, r, s]                                 (w's rows, transposed)
// Rows are output pixels so that a warp's stores along m hit consecutive q of one y plane.
template <int BM_, int BN_, int BK_, int TM_, int TN_, int MinBlocks_>
struct IgemmTile {
  static constexpr int BM = BM_;  // block tile rows (output pixels)
  static constexpr int BN = BN_;  // block tile columns (output channels)
  static constexpr int BK = BK_;  // reduction slice staged per step
  static constexpr int TM = TM_;  // rows per thread
  static constexpr int TN = TN_;  // columns per thread
  static constexpr int MinBlocks = MinBlocks_;  // __launch_bounds__: caps registers per thread
  static constexpr int TX = BM / TM, TY = BN / TN;  // thread grid over the tile
  static constexpr int NT = TX * TY;                // threads per block
  static constexpr int A_PER = BM * BK / NT;        // A elements a thread gathers per step
  static constexpr int B_PER = BN * BK / NT;        // B elements a thread loads per step
  static constexpr int B_SPLIT = BK / B_PER;        // threads sharing one filter row per step
  static constexpr int BNP = BN + 4;                // padded Bs row: see the store pattern below
  static_assert(TM % 4 == 0 && TN % 4 == 0, "fragments are read from shared memory as float4");
  static_assert(BM % TM == 0 && BN % TN == 0, "the thread grid must cover the tile exactly");
  static_assert(NT % 32 == 0, "whole warps only");
  static_assert(NT % BM == 0 && (NT / BM) * A_PER == BK,
                "A gather: each thread owns one tile row and A_PER adjacent reduction columns, "
                "NT/BM threads per row covering BK columns exactly");
  static_assert(BK % B_PER == 0 && B_SPLIT * BN == NT,
                "B load: B_SPLIT threads per filter row, each B_PER adjacent columns, cover the "
                "BN x BK slice exactly");
  static_assert((2 * BK * (BM + BNP)) * 4 <= 48 * 1024, "static shared memory is capped at 48 KiB");
  static_assert(2 * BK <= 64, "filter offsets run up to 2*BK past w's end; the table's rule "
                              "keeps w 64 elements below 2^31 for that");
};

template <class Tile>
__global__ void __launch_bounds__(Tile::NT, Tile::MinBlocks)
conv2d_implicit_gemm_kernel(Geom g, int k_tiles, const float* __restrict__ x,
                            const float* __restrict__ w, const float* __restrict__ bias,
                            float* __restrict__ y, bool vec_store, int dc, int dr, int ds) {
  // x: (N, C, H, W), w: (K, Cg, R, S), bias: (K,) or null, y: (N, K, P, Q).
  // k_tiles: column tiles per group. (dc, dr, ds): BK written in the mixed radix (Cg, R, S),
  // so a thread's (c, r, s) advances by one step without a division.
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, TM = Tile::TM, TN = Tile::TN;
  constexpr int TX = Tile::TX, TY = Tile::TY, A_PER = Tile::A_PER, B_PER = Tile::B_PER;
  // As: (2, BK, BM)  gathered x, reduction-major so a thread's 4 adjacent rows are one float4.
  // Bs: (2, BK, BNP) filter slice, transposed the same way. Two buffers: the next step's
  // tile is stored while the current one is read, so one __syncthreads per step suffices.
  PYKERN_SHARED(__align__(16) float, As, [2][BK][BM]);
  PYKERN_SHARED(__align__(16) float, Bs, [2][BK][Tile::BNP]);

  const int t = threadIdx.x;
  const int m0 = blockIdx.x * BM;
  const int grp = blockIdx.y / k_tiles;
  const int n0 = (blockIdx.y - grp * k_tiles) * BN;  // first column of the tile, within grp

  // Gather role: row am of the tile, reduction columns ak0 .. ak0 + A_PER - 1 of each step.
  // A warp covers 32 consecutive rows = neighbouring output pixels: coalesced x reads.
  const int am = t % BM;
  const int ak0 = (t / BM) * A_PER;
  // Rows past M get an input row so far below 0 that every tap fails the bounds test (it stays
  // > INT_MIN: (R-1)*dh < H + 2*ph < 2^31), so no separate row predicate is kept.
  int ih0 = static_cast<int>(-kIndex32Max), iw0 = 0;
  const float* xrow = x;  // x[n, grp*Cg:]: (Cg, H, W) of this row's image
  if (m0 + am < g.M) {
    const int m = m0 + am;
    const int n = m / g.PQ, pq = m - n * g.PQ;
    const int p = pq / g.Q, q = pq - p * g.Q;
    ih0 = p * g.sh - g.ph;
    iw0 = q * g.sw - g.pw;
    xrow = x + (static_cast<int64_t>(n) * g.C + static_cast<int64_t>(grp) * g.Cg) * g.HW;
  }
  // (ac, ar, as) = ak0 + step*BK in the radix (Cg, R, S).
  int ac = ak0 / g.RS;
  int ar = (ak0 - ac * g.RS) / g.S;
  int as = ak0 - ac * g.RS - ar * g.S;

  // Load role: filter row bn of the tile, reduction columns bk0 .. bk0 + B_PER - 1.
  const int bn = t / Tile::B_SPLIT;
  const int bk0 = (t % Tile::B_SPLIT) * B_PER;
  const bool bcol_ok = n0 + bn < g.Kg;
  // woff: offset of w[grp*Kg + n0 + bn, bk0 + step*BK], advanced one step per load; an int
  // (w has < 2^31 - 64 elements) where a pointer would take two registers. b_left: columns of
  // the row left from there, 0 for filters past Kg, so one compare covers both bounds.
  int woff = bcol_ok ? (grp * g.Kg + n0 + bn) * g.CRS + bk0 : 0;
  int b_left = bcol_ok ? g.CRS - bk0 : 0;

  float a_next[A_PER], b_next[B_PER];  // the next step, in flight while the current computes
  auto load_step = [&]() {
    int c = ac, r = ar, s = as;
#pragma unroll
    for (int j = 0; j < A_PER; ++j) {
      const int ih = ih0 + r * g.dh, iw = iw0 + s * g.dw;
      float v = 0.f;
      // c < Cg is the reduction bound: the columns past CRS are exactly those with c >= Cg.
      if (c < g.Cg && static_cast<unsigned>(ih) < static_cast<unsigned>(g.H) &&
          static_cast<unsigned>(iw) < static_cast<unsigned>(g.W))
        v = __ldg(xrow + c * g.HW + ih * g.W + iw);
      a_next[j] = v;
      // Next column: s fastest, then r, then c: the memory order of w's rows.
      if (++s == g.S) {
        s = 0;
        if (++r == g.R) { r = 0; ++c; }
      }
    }
    // Advance the gather state one step (BK columns): mixed-radix addition with carries;
    // ds < S and dr < R, so each digit needs at most one subtraction.
    as += ds;
    int carry = as >= g.S;
    as -= carry * g.S;
    ar += dr + carry;
    carry = ar >= g.R;
    ar -= carry * g.R;
    ac += dc + carry;
#pragma unroll
    for (int j = 0; j < B_PER; ++j) {
      float v = 0.f;
      if (j < b_left) v = __ldg(w + woff + j);
      b_next[j] = v;
    }
    woff += BK;  // past the row's end once b_left <= 0; never dereferenced then
    b_left -= BK;
  };
  auto store_step = [&](int buf) {
    // As: a warp writes 32 consecutive rows of one reduction column: conflict-free.
#pragma unroll
    for (int j = 0; j < A_PER; ++j) As[buf][ak0 + j][am] = a_next[j];
    // Bs: a warp writes 32/B_SPLIT filters x B_SPLIT column groups; the 4-float row padding
    // moves those groups to different banks.
#pragma unroll
    for (int j = 0; j < B_PER; ++j) Bs[buf][bk0 + j][bn] = b_next[j];
  };

  // Compute role: rows gi*TX*4 + tm*4 + {0..3} and columns gj*TY*4 + tn*4 + {0..3}: groups of
  // 4 adjacent rows/columns (one float4 from shared memory each), spread so a warp's 16 tm
  // read 16 consecutive float4s and its stores along m touch few sectors.
  const int tm = t % TX, tn = t / TX;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

  const int steps = (g.CRS + BK - 1) / BK;
  load_step();
  store_step(0);
  __syncthreads();
  int cur = 0;
  for (int left = steps; left > 0; --left, cur ^= 1) {
    const bool more = left > 1;
    if (more) load_step();  // global loads in flight during the FMAs below
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float af[TM], bf[TN];
#pragma unroll
      for (int gi = 0; gi < TM / 4; ++gi) {
        const float4 v = *reinterpret_cast<const float4*>(&As[cur][kk][gi * TX * 4 + tm * 4]);
        af[gi * 4 + 0] = v.x; af[gi * 4 + 1] = v.y; af[gi * 4 + 2] = v.z; af[gi * 4 + 3] = v.w;
      }
#pragma unroll
      for (int gj = 0; gj < TN / 4; ++gj) {
        const float4 v = *reinterpret_cast<const float4*>(&Bs[cur][kk][gj * TY * 4 + tn * 4]);
        bf[gj * 4 + 0] = v.x; bf[gj * 4 + 1] = v.y; bf[gj * 4 + 2] = v.z; bf[gj * 4 + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(af[i], bf[j], acc[i][j]);
    }
    // Buffer cur^1 was last read in the previous step, which every thread finished before
    // that step's __syncthreads; the one below publishes it for the next step.
    if (more) store_step(cur ^ 1);
    __syncthreads();
  }

  // Fused epilogue: bias + activation applied to the registers on their way to y. A thread's
  // rows come in groups of 4 adjacent output pixels m -> (n, pq); each output channel k gets the
  // group's 4 values as one float4 store where they are one image's pq..pq+3 (below), else one
  // store per row inside M.
#pragma unroll
  for (int gi = 0; gi < TM / 4; ++gi) {
    const int mb = m0 + gi * TX * 4 + tm * 4;  // first of this thread's 4 adjacent rows
    if (mb >= g.M) continue;
    int64_t yoff[4];  // y offset of (n, channel 0, pq) for each row; rows past M clamped, never stored
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int m = min(mb + i, g.M - 1);
      const int n = m / g.PQ;
      yoff[i] = static_cast<int64_t>(n) * g.K * g.PQ + (m - n * g.PQ);
    }
    // vec_store: PQ % 4 == 0 and y 16-byte aligned; mb % 4 == 0, so 4 rows inside M are one
    // image's pixels pq..pq+3 with pq % 4 == 0: an aligned float4 per output channel.
    const bool vec = vec_store && mb + 3 < g.M;
#pragma unroll
    for (int gj = 0; gj < TN / 4; ++gj)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kg = n0 + gj * TY * 4 + tn * 4 + j;
        if (kg >= g.Kg) continue;
        const int k = grp * g.Kg + kg;
        float v[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) v[i] = epilogue(acc[gi * 4 + i][gj * 4 + j], bias, k, g.relu);
        float* yk = y + static_cast<int64_t>(k) * g.PQ;  // channel k of image 0
        if (vec) {
          *reinterpret_cast<float4*>(yk + yoff[0]) = make_float4(v[0], v[1], v[2], v[3]);
        } else {
#pragma unroll
          for (int i = 0; i < 4; ++i)
            if (mb + i < g.M) yk[yoff[i]] = v[i];
        }
      }
  }
}

template <class Tile>
void implicit_gemm_with(const Geom& g, const float* x, const float* w, const float* bias, float* y,
                        cudaStream_t stream, const char* what) {
  const int k_tiles = (g.Kg + Tile::BN - 1) / Tile::BN;
  const dim3 grid(ceil_div(g.M, Tile::BM), static_cast<unsigned int>(g.groups * k_tiles));
  const bool vec_store = g.PQ % 4 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0;
  const int ds = Tile::BK % g.S;
  const int dr = (Tile::BK / g.S) % g.R;
  const int dc = Tile::BK / g.RS;
  PYKERN_LAUNCH(grid, Tile::NT, 0, stream, conv2d_implicit_gemm_kernel<Tile>)(
      g, k_tiles, x, w, bias, y, vec_store, dc, dr, ds);
  check_launch(what);
}

// One tile configuration as data: its shape (for the heuristic and the name) and its launch.
struct IgemmConfig {
  int BM, BN, BK, TM, TN;
  int min_kg;  // narrower layers (Kg < min_kg) would leave most of a tile's columns idle
  void (*launch)(const Geom&, const float* x, const float* w, const float* bias, float* y, cudaStream_t,
                 const char* what);
};

template <class Tile>
constexpr IgemmConfig igemm_config(int min_kg) {
  return {Tile::BM, Tile::BN, Tile::BK, Tile::TM, Tile::TN, min_kg, implicit_gemm_with<Tile>};
}

// The tile configurations, largest first: the heuristic below takes the first that fits, and
// the tests force each one by index.
constexpr IgemmConfig kIgemmConfigs[] = {
    //                     BM   BN  BK TM TN minBlocks
    igemm_config<IgemmTile<128, 128, 8, 8, 8, 2>>(65),  // 256 thr, 8x8/thread: most FMAs per smem read
    igemm_config<IgemmTile<128, 64, 8, 8, 4, 2>>(0),    // 256 thr: Kg <= 64 layers, or 2x the blocks of the first
    igemm_config<IgemmTile<64, 64, 8, 4, 4, 3>>(0),     // 256 thr: 4x the blocks of the first for small M*K
    igemm_config<IgemmTile<64, 32, 8, 4, 4, 4>>(0),     // 128 thr: 8x the blocks of the first (7x7 feature maps)
};
constexpr int kIgemmConfigCount = sizeof(kIgemmConfigs) / sizeof(kIgemmConfigs[0]);

// The narrowest tile, which makes the most column tiles (the grid-y limit in row_problem).
constexpr int igemm_min_bn() {
  int bn = kIgemmConfigs[0].BN;
  for (const IgemmConfig& c : kIgemmConfigs) bn = c.BN < bn ? c.BN : bn;
  return bn;
}
constexpr int kIgemmMinBN = igemm_min_bn();

std::string igemm_config_name(const IgemmConfig& c) {
  return std::to_string(c.BM) + "x" + std::to_string(c.BN) + "x" + std::to_string(c.BK) + "_t" +
         std::to_string(c.TM) + "x" + std::to_string(c.TN);
}

int64_t igemm_blocks(const Geom& g, int bm, int bn) {
  return ((static_cast<int64_t>(g.M) + bm - 1) / bm) * g.groups * ((g.Kg + bn - 1) / bn);
}

// The largest tile that still gives every SM at least one block; bigger tiles do more FMAs per
// shared-memory read, but an idle SM costs more than that. Tiles wider than Kg only waste
// columns, so 128-wide tiles need Kg > 64. Without a GPU at hand this is a reasoned guess,
// not a measured one: on an H100 (132 SMs) the ResNet layers at N=16 get, as indices,
// 56^2x64: 1, 28^2x128: 1, 14^2x256: 2, 7^2x512: 3, 1x1 56^2 64->256: 0, 7x7/2 224^2: 1.
int pick_igemm_config(const Geom& g) {
  const int64_t sms = device_info().sm_count;
  for (int i = 0; i + 1 < kIgemmConfigCount; ++i) {
    const IgemmConfig& c = kIgemmConfigs[i];
    if (g.Kg >= c.min_kg && igemm_blocks(g, c.BM, c.BN) >= sms) return i;
  }
  return kIgemmConfigCount - 1;  // the smallest, whatever the shape
}

// The launchers (below), which row_problem tells apart.
void launch_direct(const Call& c);
void launch_smem_tiled(const Call& c);
void launch_im2col_gemm(const Call& c);
void launch_implicit_gemm(const Call& c);

// "" when the row with launcher `launch` can run shape s, which geom_problem accepted, in dtype
// dt (whose size sets smem_tiled's footprint): the row's own limits.
std::string row_problem(Launcher launch, DType dt, const ConvShape& s) {
  if (launch == launch_direct) {
    if (static_cast<double>(s.N) * s.K * s.P * s.Q / kDirectBlock > kIndex32Max)
      return "N*K*P*Q needs more than 2^31 blocks of one thread per output";
  } else if (launch == launch_smem_tiled) {
    const SmemTiling t = smem_tiling(s, dt == DType::f64 ? 8 : 4);
    if (t.CB < 1)
      return "one channel's input tile with halo plus filter slice needs " +
             std::to_string(t.bytes_per_channel) + " bytes of shared memory, over the " +
             std::to_string(kSmemBudget) + "-byte budget (filter or dilation too large)";
    const int64_t tiles =
        ((s.P + kSmemTileP - 1) / kSmemTileP) * ((s.Q + kSmemTileQ - 1) / kSmemTileQ) * s.N;
    if (tiles > kIndex32Max) return "more than 2^31 output tiles (grid x limit)";
    if (s.groups * ((s.K / s.groups + kSmemKB - 1) / kSmemKB) > 65535)
      return "more than 65535 blocks of output channels (grid y limit)";
  } else if (launch == launch_im2col_gemm) {
    // Its GEMM (M = Kg, N = P*Q, K = CRS) would throw mid-launch on a shape it refuses: refuse
    // here with matmul's own rule, so `supports` agrees.
    const std::string gemm = matmul_f32_best_problem(s.K / s.groups, s.P * s.Q, s.C / s.groups * s.R * s.S);
    if (!gemm.empty()) return "its GEMM (matmul_f32_best, M = K/groups, N = P*Q, K = C/groups*R*S): " + gemm;
  } else if (launch == launch_implicit_gemm) {
    if (s.groups * ((s.K / s.groups + kIgemmMinBN - 1) / kIgemmMinBN) > 65535)
      return "more than 65535 column tiles (grid y limit)";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_direct(const Call& c) {
  const Geom g = make_geom(c.dims_as<ConvShape>());
  const int64_t total = static_cast<int64_t>(g.N) * g.K * g.PQ;
  dispatch_dtype<float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PYKERN_LAUNCH(ceil_div(total, kDirectBlock), kDirectBlock, 0, c.stream, conv2d_direct_kernel<T>)(
        g, c.input<T>(0), c.input<T>(1), c.input<T>(2), c.output<T>());
    check_launch(c.name);
  });
}

void launch_smem_tiled(const Call& c) {
  const ConvShape s = c.dims_as<ConvShape>();
  const Geom g = make_geom(s);
  const int tiles_q = (g.Q + kSmemTileQ - 1) / kSmemTileQ;
  const int tiles_p = (g.P + kSmemTileP - 1) / kSmemTileP;
  const int k_blocks = (g.Kg + kSmemKB - 1) / kSmemKB;
  const dim3 grid(static_cast<unsigned int>(tiles_q * tiles_p * g.N),
                  static_cast<unsigned int>(g.groups * k_blocks));
  const dim3 block(kSmemTileQ, kSmemTileP);
  dispatch_dtype<float, double>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const SmemTiling t = smem_tiling(s, sizeof(T));
    PYKERN_LAUNCH(grid, block, static_cast<size_t>(t.bytes), c.stream, conv2d_smem_tiled_kernel<T>)(
        g, t.IH, t.IW, t.CB, tiles_q, tiles_p, k_blocks, c.input<T>(0), c.input<T>(1), c.input<T>(2),
        c.output<T>());
    check_launch(c.name);
  });
}

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

void launch_implicit_gemm(const Call& c) {
  const Geom g = make_geom(c.dims_as<ConvShape>());
  // c.config: -1, or an index into kIgemmConfigs that the binder checked against configs() (tests
  // force each one, whichever the heuristic prefers on the test GPU).
  kIgemmConfigs[c.config < 0 ? pick_igemm_config(g) : c.config].launch(
      g, c.input<float>(0), c.input<float>(1), c.input<float>(2), c.output<float>(), c.stream, c.name);
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
};

namespace {

// The table's rule (Python's `supports` and the binder both ask it): the 32-bit index bounds of
// geom_problem, then the row's own limits (shared-memory budget, grid), naming the rows of the
// table that do take the shape.
std::string unsupported(const Variant& row, const Call& c) {
  const ConvShape s = c.dims_as<ConvShape>();
  std::string why = geom_problem(s);
  if (!why.empty()) return why;
  why = row_problem(row.launch, c.dtype, s);
  if (why.empty()) return "";
  std::vector<std::string> others;
  for (const Variant& other : kVariants)
    if (&other != &row && other.dtypes.has(c.dtype) && row_problem(other.launch, c.dtype, s).empty())
      others.push_back(other.name);
  return others.empty() ? why : why + "; use " + name_list(others, "or");
}

// implicit_gemm's tile configurations, in the order Call::config indexes them.
std::vector<std::string> configs(const Variant& row) {
  std::vector<std::string> names;
  if (row.launch == launch_implicit_gemm)
    for (const IgemmConfig& cfg : kIgemmConfigs) names.push_back(igemm_config_name(cfg));
  return names;
}

}  // namespace

PYKERN_TABLE(conv2d, ConvShape, "x, w, bias?", kVariants, unsupported, configs);

}  // namespace pykern
