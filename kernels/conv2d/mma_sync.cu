// conv2d's tensor-core rung (the variants: kernels/conv2d/table.cu):
//   mma_sync   implicit GEMM on matmul's mma.sync machinery (kernels/mma_tile.cuh): filters and
//              the im2col of x, gathered on the fly, staged in XOR-swizzled shared tiles through
//              a 3-stage cp.async ring, ldmatrix into mma.sync m16n8k16 fragments; fp16 or bf16
//              in, fp32 accumulate, bias + ReLU in fp32, output in the input's dtype (sm_80+)
#include "conv2d/conv.cuh"
#include "mma_tile.cuh"  // MmaCfg and the ring, fragments and mma.sync calls, shared with matmul's rung

namespace pykern {
namespace conv2d {
namespace {

// GEMM view, per group grp: D = A @ B with rows k (one group's Kg output channels), columns
// m = (n, p, q) (M = N*P*Q output pixels), reduction over crs = (c, r, s) (CRS = Cg*R*S):
//   A[k][crs] = w[grp*Kg + k, c, r, s]                                  (w's rows, as stored)
//   B[crs][m] = x[n, grp*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw]    (0 in the padding)
// The filters are A so that both operands take matmul's layouts unchanged: A row-major with
// contiguous k-rows (16-byte cp.async when CRS % 8 == 0), B's rows a run of pixels, which is a
// run of x when the stride is 1 and the run stays inside one input row.
//
// 64x64x64 block tile, 4 warps of 32x32 (2 x 4 mma tiles), 3 stages: 48 KiB of shared memory.
// Narrower than matmul's 128x128 tile: Kg is often 64 or less, and a layer's M is small.
using ConvMmaTiles = MmaCfg<64, 64, 64, 32, 32, 3>;

// How a thread gathers its share of the B tile: one 8-pixel chunk (a 16-byte swizzled piece, so
// the XOR never splits it) in each of kRowsPer rows of crs, the same chunk for every k-tile, so
// its pixels' coordinates are decoded once per block.
template <typename Cfg>
struct BGather {
  static constexpr int kChunks = Cfg::BN / Cfg::kVec;       // 8-pixel chunks per row of the tile
  static constexpr int kRowStep = Cfg::kThreads / kChunks;  // rows the block covers per pass
  static constexpr int kRowsPer = Cfg::BK / kRowStep;       // rows each thread gathers per k-tile
  static_assert(Cfg::kThreads % kChunks == 0 && Cfg::BK % kRowStep == 0,
                "every thread gathers whole chunks of the same column, in the same number of rows");
};

// W16: the A tile (filters) copied in 16-byte cp.async pieces (CRS % 8 == 0, w 16-byte
// aligned); otherwise element by element with ordinary loads into the same swizzled layout.
template <typename T, typename Cfg, bool W16>
__global__ void __launch_bounds__(Cfg::kThreads)
    conv2d_mma_sync_kernel(Geom g, int k_tiles, const T* __restrict__ x, const T* __restrict__ w,
                           const T* __restrict__ bias, T* __restrict__ y) {
  // x: (N, C, H, W), w: (K, Cg, R, S), bias: (K,) or null, y: (N, K, P, Q).
  // k_tiles: channel tiles per group (gridDim.y = groups * k_tiles); gridDim.x: pixel tiles.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 mma.sync and cp.async need sm_80; the launcher checks before launching
#else
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, V = Cfg::kVec;
  using G = BGather<Cfg>;
  PYKERN_EXTERN_SHARED(128, unsigned char, smem);
  const int m0 = blockIdx.x * BN;  // first pixel of the tile
  const int grp = blockIdx.y / k_tiles;
  const int k0 = (blockIdx.y - grp * k_tiles) * BM;  // first output channel of the tile, within grp
  const T* w_tile = w + (grp * g.Kg + k0) * g.CRS;  // < K*CRS: the table's rule keeps it an int

  // This thread's chunk: pixels m0 + chunk*8 + j, j < 8. Pixels past M get an input row so far
  // below 0 that every tap fails the bounds test (as implicit_gemm does), so they read nothing
  // and gather zeros.
  const int chunk = threadIdx.x % G::kChunks, row0 = threadIdx.x / G::kChunks;
  int ih0[V], iw0[V];
  const T* ximg[V];  // x[n, grp*Cg:]: (Cg, H, W) of pixel j's image
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int m = m0 + chunk * V + j;
    ih0[j] = static_cast<int>(-kIndex32Max), iw0[j] = 0, ximg[j] = x;
    if (m < g.M) {
      const int n = m / g.PQ, pq = m - n * g.PQ;
      const int p = pq / g.Q, q = pq - p * g.Q;
      ih0[j] = p * g.sh - g.ph;
      iw0[j] = q * g.sw - g.pw;
      ximg[j] = x + (static_cast<int64_t>(n) * g.C + static_cast<int64_t>(grp) * g.Cg) * g.HW;
    }
  }
  // The chunk is one run of x for every tap when its 8 pixels are consecutive q of one output
  // row (all inside M, one image, one p) and the stride along W is 1; a tap then copies it with
  // one 16-byte cp.async where the run lies inside the input row and is 16-byte aligned.
  const bool run = g.sw == 1 && ih0[0] == ih0[V - 1] && ximg[0] == ximg[V - 1] && iw0[V - 1] == iw0[0] + V - 1;

  float acc[Cfg::MT][Cfg::NT][4];
  mma_block_loop<T, Cfg>(acc, reinterpret_cast<T*>(smem), (g.CRS + BK - 1) / BK, [&](int kt, T* as, T* bs) {
    const int c0 = kt * BK;  // first reduction column of the k-tile
    load_tile<BM, BK, Cfg::kThreads, W16 ? V : 1, Layout::kSwizzled, Copy::kAsync>(
        w_tile + c0, g.CRS, g.Kg - k0, g.CRS - c0, as, BK);
#pragma unroll
    for (int i = 0; i < G::kRowsPer; ++i) {
      const int row = row0 + i * G::kRowStep, crs = c0 + row;
      T* dst = bs + swizzled_offset(row, chunk * V, BN);
      if (crs >= g.CRS) {  // past the reduction: zeros (x stands in for the unread source)
        cp_async<16>(dst, x, false);
        continue;
      }
      const int c = crs / g.RS, rs = crs - c * g.RS;
      const int r = rs / g.S, s = rs - r * g.S;
      const int dih = r * g.dh, diw = s * g.dw, coff = c * g.HW;
      if (run) {
        const int ih = ih0[0] + dih, iw = iw0[0] + diw;
        if (static_cast<unsigned>(ih) < static_cast<unsigned>(g.H) && iw >= 0 && iw < g.W - (V - 1)) {
          const T* src = ximg[0] + coff + ih * g.W + iw;
          if (aligned16(src)) {
            cp_async<16>(dst, src, true);
            continue;
          }
        }
      }
      // The guarded gather: each pixel's tap on its own, zero in the padding; its plain stores
      // are the block's by the __syncthreads that precedes this stage's compute.
      Pack<T, V> v;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const int ih = ih0[j] + dih, iw = iw0[j] + diw;
        v.v[j] = static_cast<unsigned>(ih) < static_cast<unsigned>(g.H) &&
                         static_cast<unsigned>(iw) < static_cast<unsigned>(g.W)
                     ? ximg[j][coff + ih * g.W + iw]
                     : T(0.0f);
      }
      *reinterpret_cast<Pack<T, V>*>(dst) = v;
    }
  });

  // Epilogue in fp32: bias, then the activation, rounded once to T on the way to y.
  for_each_accumulator<Cfg>(acc, [&](int r, int col, float v) {
    const int kg = k0 + r, m = m0 + col;
    if (kg >= g.Kg || m >= g.M) return;
    const int k = grp * g.Kg + kg, n = m / g.PQ;
    const float b = bias != nullptr ? static_cast<float>(bias[k]) : 0.f;
    y[static_cast<int64_t>(n) * g.K * g.PQ + k * g.PQ + (m - n * g.PQ)] = T(activate(v + b, g.relu));
  });
#endif
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launcher and rule

void launch_mma_sync(const Call& c) {
  using Cfg = ConvMmaTiles;
  const Geom g = make_geom(c.dims_as<ConvShape>());
  require_sm80(c.name);
  dispatch_dtype<__half, __nv_bfloat16>(c.dtype, c.name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = c.input<T>(0);
    const T* w = c.input<T>(1);
    const T* bias = c.input<T>(2);
    T* y = c.output<T>();
    const int k_tiles = (g.Kg + Cfg::BM - 1) / Cfg::BM;
    const dim3 grid(ceil_div(g.M, Cfg::BN), static_cast<unsigned int>(g.groups * k_tiles));
    auto launch = [&](auto kernel) { launch_staged<Cfg>(kernel, grid, c.stream, c.name, g, k_tiles, x, w, bias, y); };
    // 16-byte filter copies need every row start of w 16-byte aligned: CRS a multiple of 8.
    if (g.CRS % Cfg::kVec == 0 && aligned16(w)) launch(conv2d_mma_sync_kernel<T, Cfg, true>);
    else launch(conv2d_mma_sync_kernel<T, Cfg, false>);
  });
}

// Its grid: channel tiles of every group along y, which gridDim.y limits; and the pixel index,
// which its last tile forms up to BN - 1 past M.
std::string mma_sync_problem(DType, const ConvShape& s) {
  if (s.groups * ((s.K / s.groups + ConvMmaTiles::BM - 1) / ConvMmaTiles::BM) > 65535)
    return "more than 65535 channel tiles (grid y limit)";
  if (!fits_index32({s.N, s.P, s.Q}, ConvMmaTiles::BN))
    return "N*P*Q (output pixels over the batch) must stay " + std::to_string(ConvMmaTiles::BN) +
           " below 2^31 (32-bit pixel index of its last tile)";
  return "";
}

const Rung kMmaSyncRung{launch_mma_sync, mma_sync_problem, nullptr};

}  // namespace conv2d
}  // namespace pykern
