// conv2d's implicit-GEMM rung, the default (the variants: kernels/conv2d/table.cu):
//   implicit_gemm  GEMM over (N*P*Q) x K x (C/groups*R*S) with A gathered from x on the fly into
//                  shared memory (never materialized), register-blocked 2-D tiles, double-buffered,
//                  bias + ReLU fused into the store; float32. Tile configurations as data
//                  (kIgemmConfigs): the launcher picks one per shape and GPU, Call::config forces one.
#include "conv2d/conv.cuh"

namespace pykern {
namespace conv2d {
namespace {

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

// The narrowest tile, which makes the most column tiles (the grid-y limit in implicit_gemm_problem).
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

}  // namespace

// ---------------------------------------------------------------------------------------------
// launcher and rule

void launch_implicit_gemm(const Call& c) {
  const Geom g = make_geom(c.dims_as<ConvShape>());
  // c.config: -1, or an index into kIgemmConfigs that the binder checked against configs() (tests
  // force each one, whichever the heuristic prefers on the test GPU).
  kIgemmConfigs[c.config < 0 ? pick_igemm_config(g) : c.config].launch(
      g, c.input<float>(0), c.input<float>(1), c.input<float>(2), c.output<float>(), c.stream, c.name);
}

// Its grid: the narrowest tile makes the most column tiles, which gridDim.y limits.
std::string implicit_gemm_problem(DType, const ConvShape& s) {
  if (s.groups * ((s.K / s.groups + kIgemmMinBN - 1) / kIgemmMinBN) > 65535)
    return "more than 65535 column tiles (grid y limit)";
  return "";
}

// The tile configurations, in the order Call::config indexes them.
std::vector<std::string> implicit_gemm_configs() {
  std::vector<std::string> names;
  for (const IgemmConfig& cfg : kIgemmConfigs) names.push_back(igemm_config_name(cfg));
  return names;
}

const Rung kImplicitGemmRung{launch_implicit_gemm, implicit_gemm_problem, implicit_gemm_configs};

}  // namespace conv2d
}  // namespace pykern
