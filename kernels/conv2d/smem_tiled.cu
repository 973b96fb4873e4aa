// conv2d's shared-memory rung (the variants: kernels/conv2d/table.cu):
//   smem_tiled  an 8x32 output tile per block: input tile + halo and an 8-channel filter slice
//               staged in shared memory, 8 output channels per thread; float32/64
#include "conv2d/conv.cuh"

namespace pykern {
namespace conv2d {
namespace {

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

}  // namespace

// ---------------------------------------------------------------------------------------------
// launcher and rule

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

// Its shared-memory budget and grid (dt's size sets the footprint).
std::string smem_tiled_problem(DType dt, const ConvShape& s) {
  const SmemTiling t = smem_tiling(s, dt == DType::f64 ? 8 : 4);
  if (t.CB < 1)
    return "one channel's input tile with halo plus filter slice needs " + std::to_string(t.bytes_per_channel) +
           " bytes of shared memory, over the " + std::to_string(kSmemBudget) +
           "-byte budget (filter or dilation too large)";
  const int64_t tiles = ((s.P + kSmemTileP - 1) / kSmemTileP) * ((s.Q + kSmemTileQ - 1) / kSmemTileQ) * s.N;
  if (tiles > kIndex32Max) return "more than 2^31 output tiles (grid x limit)";
  if (s.groups * ((s.K / s.groups + kSmemKB - 1) / kSmemKB) > 65535)
    return "more than 65535 blocks of output channels (grid y limit)";
  return "";
}

const Rung kSmemTiledRung{launch_smem_tiled, smem_tiled_problem, nullptr};

}  // namespace conv2d
}  // namespace pykern
