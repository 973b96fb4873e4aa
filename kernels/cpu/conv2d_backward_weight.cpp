// conv2d's weight gradient on the CPU, compiled (pykern/ops/conv2d_backward.py, the spec):
// dw = d conv2d / dw applied to dy, NCHW, any stride / padding / dilation / groups, float32 and
// float64, summed in a fixed order: the same result on every run and for every thread count.
//
// The ladder (the table at the bottom):
//   implicit_gemm  per group, the GEMM dw_g (Kg x CRS) = dy_g (Kg x N*P*Q) * im2col(x_g)^T
//                  (N*P*Q x CRS) on matmul's packed loops and SIMD micro-kernel (kernels/cpu/gemm.h):
//                  the im2col operand is never stored; each KC x NR panel of it (KC pixels x NR
//                  filter taps) is gathered from x as the loops pack it; the reduction runs over
//                  every pixel of every image in order; one thread
//   threaded       the reduction cut into fixed chunks of pixels (how many: from the shape alone,
//                  never the thread count), each chunk's GEMM cut into column ranges of dw; threads
//                  take (chunk, group, columns) items from a counter, each chunk summing into its
//                  own partial dw, and the partials are added in chunk order. dw is small (few
//                  tiles) and its reduction long: tiles alone would leave threads idle
//
// Accuracy (error_model "terms"): every dw element sums its own x * dy terms in the input dtype:
// pixels ascending within a KC block, the blocks in order (implicit_gemm); per chunk so, then the
// chunks in order (threaded). The chunks depend on the shape only, so threaded gives the same
// bits on any thread count. Spatial padding is packed as zeros that multiply like values
// (0 * Inf = NaN, as in the spec and torch): every product the GEMM forms is one the spec forms.
#include <atomic>
#include <cmath>

#include "conv.h"
#include "gemm.h"

namespace pykern {
namespace cpu {
namespace {

// ------------------------------------------------------------------------------------------
// The implicit GEMM of one group over a range of pixels and taps (a gemm.h Op)
// ------------------------------------------------------------------------------------------
// Rows: the group's Kg output channels. Columns: taps [c0, c0 + N) of the group's CRS (c, r, s).
// Reduction: pixels [t0, t0 + K) of all images, t = n*PQ + p*Q + q.
template <class T>
struct ConvBackwardWeight {
  ConvGeom g;
  const T* x;   // x: (N, C, H, W)
  const T* dy;  // dy: (N, K, P, Q)
  T* c;         // the group's (Kg, CRS) rows of dw, or of a chunk's partial dw
  int64_t group, t0, c0;
  int64_t M, N, K;
  gemm::Epilogue<T> epi;  // none

  ConvBackwardWeight(const ConvGeom& geom, const T* x_, const T* dy_, T* dw, int64_t grp, int64_t pixel0,
                     int64_t pixels, int64_t tap0, int64_t taps)
      : g(geom), x(x_), dy(dy_), c(dw + grp * geom.Kg * geom.CRS), group(grp), t0(pixel0), c0(tap0) {
    M = g.Kg;
    N = taps;
    K = pixels;
  }

  // dy_g's rows [ic, ic+mc) x pixels [pc, pc+kc) into MR-row panels: one contiguous read of dy
  // per row and image.
  template <class B>
  PYKERN_INLINE void pack_a(int64_t ic, int64_t mc, int64_t pc, int64_t kc, T* ap) const {
    constexpr int MR = B::MR;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      T* dst = ap + ir * kc;
      const int rows = int(mc - ir < MR ? mc - ir : MR);
      for (int64_t kk = 0; kk < kc;) {
        const int64_t t = t0 + pc + kk, n = t / g.PQ, pix = t - n * g.PQ;
        const int64_t len = kc - kk < g.PQ - pix ? kc - kk : g.PQ - pix;
        T* o = dst + kk * MR;
        for (int i = 0; i < rows; ++i) {
          const T* src = dy + (n * g.K + group * g.Kg + ic + ir + i) * g.PQ + pix;  // dy[n, k, pixels]
          for (int64_t u = 0; u < len; ++u) o[u * MR + i] = src[u];
        }
        for (int i = rows; i < MR; ++i)
          for (int64_t u = 0; u < len; ++u) o[u * MR + i] = T(0);
        kk += len;
      }
    }
  }

  // im2col(x_g)^T's pixels [pc, pc+kc) x taps [jc, jc+nc) into NR-column panels: for each tap a
  // run of pixels along one output row reads one input row (contiguously at stride 1), zeros
  // where the window leaves the input.
  template <class B>
  PYKERN_INLINE void pack_b(int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* bp) const {
    constexpr int NR = B::NR;
    const int64_t RS = g.R * g.S, HW = g.H * g.W;
    for (int64_t jr = 0; jr < nc; jr += NR) {
      T* dst = bp + jr * kc;
      const int cols = int(nc - jr < NR ? nc - jr : NR);
      int64_t xoff[NR], rows[NR], colsh[NR];  // per tap: channel offset, row and column shift
      for (int j = 0; j < cols; ++j) {
        const int64_t tap = c0 + jc + jr + j, ch = tap / RS, r = tap / g.S % g.R, s = tap % g.S;
        xoff[j] = ch * HW;
        rows[j] = r * g.dh - g.ph;
        colsh[j] = s * g.dw - g.pw;
      }
      for (int64_t kk = 0; kk < kc;) {
        const int64_t t = t0 + pc + kk, n = t / g.PQ, pix = t - n * g.PQ, p = pix / g.Q, q = pix - p * g.Q;
        const int64_t len = kc - kk < g.Q - q ? kc - kk : g.Q - q;
        const T* img = x + (n * g.C + group * g.Cg) * HW;  // x[n, the group's channels]: (Cg, H, W)
        T* o = dst + kk * NR;
        for (int j = 0; j < cols; ++j) {
          const int64_t ih = p * g.sh + rows[j], iw0 = q * g.sw + colsh[j];
          if (uint64_t(ih) >= uint64_t(g.H)) {
            for (int64_t u = 0; u < len; ++u) o[u * NR + j] = T(0);
            continue;
          }
          const T* row = img + xoff[j] + ih * g.W;  // x[n, c, ih, :]: (W,)
          if (g.sw == 1) {
            int64_t lo = -iw0, hi = g.W - iw0;  // the run's pixels whose column lies in the input
            lo = lo < 0 ? 0 : lo > len ? len : lo;
            hi = hi < lo ? lo : hi > len ? len : hi;
            for (int64_t u = 0; u < lo; ++u) o[u * NR + j] = T(0);
            for (int64_t u = lo; u < hi; ++u) o[u * NR + j] = row[iw0 + u];
            for (int64_t u = hi; u < len; ++u) o[u * NR + j] = T(0);
          } else {
            for (int64_t u = 0; u < len; ++u) {
              const int64_t iw = iw0 + u * g.sw;
              o[u * NR + j] = uint64_t(iw) < uint64_t(g.W) ? row[iw] : T(0);
            }
          }
        }
        for (int64_t u = 0; u < len; ++u)
          for (int j = cols; j < NR; ++j) o[u * NR + j] = T(0);
        kk += len;
      }
    }
  }

  PYKERN_INLINE T* c_run(int64_t i, int64_t j, int64_t* ldc, int64_t* run) const {
    *ldc = g.CRS;
    *run = N - j;
    return c + i * g.CRS + c0 + j;
  }
};

// ------------------------------------------------------------------------------------------
// Window dot products (stride 1)
// ------------------------------------------------------------------------------------------
// At stride 1, with x zero-padded to (Hp, Wp) planes and each dy row widened to Wp columns with
// zeros, the terms of dw[k, c, r, s] from one image are ONE dot product of two contiguous runs:
// dy's plane (n, k), P*Wp elements, against x's padded plane (n, c) from offset r*dh*Wp + s*dw
// (row p of the run meets x's row p + r*dh from column s*dw, as the spec's window does). Nothing
// is packed or transposed: the implicit GEMM spends most of a small layer's time gathering and
// transposing its operands (each gathered element meets only Kg rows). Each dy plane's run is
// rounded up to whole 64-byte vectors with zeros, and the x copy has zeros after its last plane
// for the windows that run past it.
// The widening zeros of dy meet x values the spec never multiplies (columns past the window, or
// the next plane): exact while x is finite, so x holding Inf or NaN takes the implicit GEMM.
// Order: each output keeps a vector of partial sums (lane l: the run's elements l, l + W, ...),
// images in order, then adds its lanes in order: fixed by the ISA, whatever the thread count.
template <class T>
struct Windows {
  ConvGeom g;
  const T* xp;   // (N*C planes of Hp*Wp) + slack
  const T* dyp;  // (N*K runs of L)
  int64_t Wp, plane, L;
  T* dw;               // (K, Cg, R, S)
  const int64_t* window;  // [t]: tap t's window in a group's planes (t past CRS: the last tap's)
};

// Below this many bytes of padded x and widened dy (the group's planes, every image) the operands
// stay in L2 whatever the loop order, and window_rows runs tile by tile with the images inside:
// a tile's sums stay in registers over all images, where image by image each tile reloaded and
// stored its 16 vector sums and recomputed its taps' windows every 5 vector steps (the small
// CNN's 16->32 8x8 layer: 80-element runs).
constexpr int64_t kWindowsResidentBytes = int64_t(512) << 10;

// The row block of dw at output channels k0.. (TM of them) of group grp, every tap. A row or tap
// past the group's repeats its last one and is not stored. Each output's vector of sums runs over
// the images in order, so both loop orders below give the same bits:
//   resident operands: per TN-tap tile, every image, the sums in registers;
//   else: per image, every tile, its sums kept in `acc` (one TM x TN block of vectors per tile)
//   between images, so that an image's dy rows and x planes stay in cache while all its tiles
//   use them.
template <class T, class V, int TM, int TN>
PYKERN_INLINE void window_rows(const Windows<T>& w, int64_t grp, int64_t k0, V* acc) {
  constexpr int W = int(sizeof(V) / sizeof(T));
  const ConvGeom& g = w.g;
  const int64_t tiles = (g.CRS + TN - 1) / TN;
  const int rows = int(g.Kg - k0 < TM ? g.Kg - k0 : TM);
  int64_t krow[TM];
  for (int i = 0; i < TM; ++i) krow[i] = grp * g.Kg + k0 + (i < rows ? i : rows - 1);
  // sums[i][j] += the run of dy[n, krow[i]] . tap t0 + j's window of x[n, the group's channels]
  auto add_image = [&](int64_t n, int64_t t0, V (&sums)[TM][TN]) {
    const T* a[TM];
    for (int i = 0; i < TM; ++i) a[i] = w.dyp + (n * g.K + krow[i]) * w.L;  // dy[n, k] widened: (L,)
    const T* img = w.xp + (n * g.C + grp * g.Cg) * w.plane;               // x[n, the group's channels]
    const T* b[TN];
    for (int j = 0; j < TN; ++j) b[j] = img + w.window[t0 + j];
    for (int64_t e = 0; e < w.L; e += W) {
      V av[TM], bv[TN];
      for (int i = 0; i < TM; ++i) av[i] = gemm::load<V>(a[i] + e);
      for (int j = 0; j < TN; ++j) bv[j] = gemm::load<V>(b[j] + e);
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) sums[i][j] += av[i] * bv[j];
    }
  };
  const int64_t operand_bytes = g.N * (g.Cg * w.plane + TM * w.L) * int64_t(sizeof(T));
  if (operand_bytes <= kWindowsResidentBytes) {
    for (int64_t tile = 0; tile < tiles; ++tile) {
      V sums[TM][TN];
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) sums[i][j] = V{};
      for (int64_t n = 0; n < g.N; ++n) add_image(n, tile * TN, sums);
      V* mine = acc + tile * TM * TN;
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) mine[i * TN + j] = sums[i][j];
    }
  } else {
    for (int64_t e = 0; e < tiles * TM * TN; ++e) acc[e] = V{};
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t tile = 0; tile < tiles; ++tile) {
        V sums[TM][TN];
        V* mine = acc + tile * TM * TN;
        for (int i = 0; i < TM; ++i)
          for (int j = 0; j < TN; ++j) sums[i][j] = mine[i * TN + j];
        add_image(n, tile * TN, sums);
        for (int i = 0; i < TM; ++i)
          for (int j = 0; j < TN; ++j) mine[i * TN + j] = sums[i][j];
      }
  }
  for (int64_t tile = 0; tile < tiles; ++tile)
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < TN && tile * TN + j < g.CRS; ++j) {
        const V& v = acc[(tile * TM + i) * TN + j];
        T sum = v[0];
        for (int l = 1; l < W; ++l) sum += v[l];
        w.dw[krow[i] * g.CRS + tile * TN + j] = sum;
      }
}

// Row block `item` of the call (item = group x row block), one ISA; acc: room for its tiles.
template <class T, class V, int TM, int TN>
PYKERN_INLINE void window_tiles(const Windows<T>& w, int64_t item, T* acc) {
  const int64_t rb = (w.g.Kg + TM - 1) / TM;
  window_rows<T, V, TM, TN>(w, item / rb, item % rb * TM, reinterpret_cast<V*>(acc));
}

// Tiles per ISA: AVX-512 4 x 4 (16 accumulators and 8 operands of 32 registers), AVX2 and the
// baseline 3 x 3 (9 and 6 of 16).
#if PYKERN_X86
template <class T, class V>
PYKERN_TARGET_AVX512 void window_tiles_avx512(const Windows<T>& w, int64_t item, T* acc) {
  window_tiles<T, V, 4, 4>(w, item, acc);
}
template <class T, class V>
PYKERN_TARGET_AVX2 void window_tiles_avx2(const Windows<T>& w, int64_t item, T* acc) {
  window_tiles<T, V, 3, 3>(w, item, acc);
}
#endif
template <class T, class V>
void window_tiles_baseline(const Windows<T>& w, int64_t item, T* acc) {
  window_tiles<T, V, 3, 3>(w, item, acc);
}

template <class T>
struct WindowVectors;
template <>
struct WindowVectors<float> {
  using Base = f32x4;
  using Avx2 = f32x8;
  using Avx512 = f32x16;
};
template <>
struct WindowVectors<double> {
  using Base = f64x2;
  using Avx2 = f64x4;
  using Avx512 = f64x8;
};

// The tiles' function for the active ISA, and its tile size.
template <class T>
void (*window_path(int* tm, int* tn))(const Windows<T>&, int64_t, T*) {
  using Vs = WindowVectors<T>;
#if PYKERN_X86
  switch (active_isa()) {
    case Isa::avx512: *tm = *tn = 4; return window_tiles_avx512<T, typename Vs::Avx512>;
    case Isa::avx2: *tm = *tn = 3; return window_tiles_avx2<T, typename Vs::Avx2>;
    default: break;
  }
#endif
  *tm = *tn = 3;
  return window_tiles_baseline<T, typename Vs::Base>;
}

// dw by window dot products on `threads` threads (tiles split among them, never a sum); false,
// having written nothing, where this is not the method: a stride above 1, x not finite, or
// padded copies past PaddedPlanes' limit.
template <class T>
bool run_windows_on(const Call& call, int threads) {
  const ConvGeom g(call.dims);
  const T* x = call.input<T>(0);
  const T* dy = call.input<T>(1);
  if (g.sh != 1 || g.sw != 1) return false;
  for (int64_t i = 0; i < g.x_elems(); ++i)
    if (!std::isfinite(x[i])) return false;
  const int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw, run = g.P * Wp;
  constexpr int64_t lanes = int64_t(64 / sizeof(T));
  const int64_t L = (run + lanes - 1) / lanes * lanes;
  // A window starts up to (R-1)*dh rows and (S-1)*dw columns into its plane and reads L elements:
  // past the last plane's end by (S-1)*dw + L - P*Wp (stride 1: Hp = P + (R-1)*dh).
  const int64_t slack = (g.S - 1) * g.dw + (L - run);
  const PaddedPlanes<T> xp(x, g.N * g.C, g.H, g.W, g.ph, g.ph, g.pw, g.pw, threads, 0, slack, true);
  const PaddedPlanes<T> dyp(dy, g.N * g.K, g.P, g.Q, 0, 0, 0, Wp - g.Q, threads, L, 0, true);
  if (xp.p == nullptr || dyp.p == nullptr) return false;
  int tm = 0, tn = 0;
  const auto rows = window_path<T>(&tm, &tn);
  const int64_t RS = g.R * g.S, taps = (g.CRS + tn - 1) / tn * tn;
  Scratch<int64_t> window{size_t(taps)};
  for (int64_t t = 0; t < taps; ++t) {
    const int64_t u = t < g.CRS ? t : g.CRS - 1, c = u / RS, r = u / g.S % g.R, s = u % g.S;
    window.p[t] = c * Hp * Wp + r * g.dh * Wp + s * g.dw;
  }
  const Windows<T> w{g, xp.p, dyp.p, Wp, Hp * Wp, L, call.output<T>(), window.p};
  const int64_t items = g.G * ((g.Kg + tm - 1) / tm);
  int parts = gemm::threads_for(2.0 * double(g.K) * double(g.CRS) * double(g.N * run), threads);
  parts = int64_t(parts) < items ? parts : int(items);
  // Each part's vector sums for one row block: tiles x tm x tn vectors of 64 bytes.
  const size_t per_part = size_t((g.CRS + tn - 1) / tn * tm * tn) * size_t(lanes);
  Scratch<T> acc(per_part * size_t(parts));
  std::atomic<int64_t> next{0};
  parallel_optional(parts, [&](int part, int) {  // row blocks from a counter: any parts do them all
    for (int64_t it; (it = next.fetch_add(1)) < items;) rows(w, it, acc.p + per_part * size_t(part));
  });
  return true;
}

// ------------------------------------------------------------------------------------------
// The fixed split of the reduction
// ------------------------------------------------------------------------------------------
// Chunks of at least kMinChunkPixels pixels, at most as many as keep the partial dws under
// kPartialElems elements (16 MiB of float32) and at most kMaxChunks; sizes rounded up to 64 pixels.
// From the shape alone, so every thread count sums the same chunks.
constexpr int64_t kMinChunkPixels = 1024, kPartialElems = int64_t(1) << 22, kMaxChunks = 64;
static_assert(kMinChunkPixels >= 4 * gemm::Blockings<float>::Avx512::KC,
              "a chunk spans several KC blocks: each chunk's GEMM packs A and B afresh, and adds a partial "
              "dw to combine; shorter chunks would spend more on those than on the FMAs");

struct Chunks {
  int64_t size, count;
  Chunks(int64_t pixels, int64_t dw_elems) {
    int64_t most = 1 + kPartialElems / dw_elems;
    most = most < kMaxChunks ? most : kMaxChunks;
    int64_t want = (pixels + kMinChunkPixels - 1) / kMinChunkPixels;
    want = want < most ? want : most;
    size = (pixels + want - 1) / want;
    size = (size + 63) / 64 * 64;
    count = (pixels + size - 1) / size;
  }
};

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------
template <class T>
void run_implicit_gemm(const Call& call) {
  using Op = ConvBackwardWeight<T>;
  const ConvGeom g(call.dims);
  const auto path = gemm::simd_path<T, Op>();
  for (int64_t grp = 0; grp < g.G; ++grp)
    gemm::run_serial(Op(g, call.input<T>(0), call.input<T>(1), call.output<T>(), grp, 0, g.N * g.PQ, 0, g.CRS), path);
}

template <class T>
void threaded_gemm(const Call& call);

template <class T>
void run_threaded(const Call& call) {
  threaded_gemm<T>(call);
}

template <class T>
void run_windows(const Call& call) {
  if (!run_windows_on<T>(call, call.threads)) threaded_gemm<T>(call);
}

template <class T>
void threaded_gemm(const Call& call) {
  using Op = ConvBackwardWeight<T>;
  const ConvGeom g(call.dims);
  const auto path = gemm::simd_path<T, Op>();
  const T* x = call.input<T>(0);
  const T* dy = call.input<T>(1);
  T* dw = call.output<T>();
  const int64_t pixels = g.N * g.PQ, dw_elems = g.w_elems();
  const Chunks chunks(pixels, dw_elems);
  const int parts = gemm::threads_for(2.0 * double(g.K) * double(g.CRS) * double(pixels), call.threads);
  // Column ranges (whole NR panels) only give the threads enough items (about four each): they
  // split outputs, not sums, so their number may follow the thread count.
  const int64_t panels = (g.CRS + path.nr - 1) / path.nr, per_range = chunks.count * g.G;
  int64_t ranges = (4 * int64_t(parts) + per_range - 1) / per_range;
  ranges = ranges < (panels + 1) / 2 ? ranges : (panels + 1) / 2;
  ranges = ranges < 1 ? 1 : ranges;
  const int64_t items = per_range * ranges;
  // Chunk 0 sums into dw itself, chunk i > 0 into partial i - 1; all allocated before any thread
  // starts (a thread never throws bad_alloc).
  Scratch<T> partial(size_t(chunks.count - 1) * size_t(dw_elems));
  const gemm::SerialScratch own = gemm::serial_scratch(path, g.Kg, chunks.size);
  Scratch<T> scratch(own.total() * size_t(parts));
  std::atomic<int64_t> next{0}, done{0}, next_slice{0};
  // Items, then slices of dw's elements, from counters; a part waits only for the items other
  // parts have taken (the partials complete before they are added), never for a part to arrive:
  // the parts are optional (parallel_optional), and the caller alone does it all if need be.
  constexpr int64_t kSlices = 16;
  parallel_optional(parts, [&](int part, int) {
    T* mine = scratch.p + own.total() * size_t(part);
    for (int64_t item; (item = next.fetch_add(1)) < items;) {
      const int64_t chunk = item / (g.G * ranges), grp = item / ranges % g.G, range = item % ranges;
      const int64_t t0 = chunk * chunks.size, t1 = t0 + chunks.size < pixels ? t0 + chunks.size : pixels;
      const int64_t c0 = panels * range / ranges * path.nr, c1 = panels * (range + 1) / ranges * path.nr;
      T* into = chunk == 0 ? dw : partial.p + size_t(chunk - 1) * size_t(dw_elems);
      gemm::run_serial_in(Op(g, x, dy, into, grp, t0, t1 - t0, c0, (c1 < g.CRS ? c1 : g.CRS) - c0), path, mine, own);
      done.fetch_add(1, std::memory_order_release);
    }
    spin_until([&] { return done.load(std::memory_order_acquire) >= items; });
    // Every element adds the partials in chunk order; parts take slices of the elements.
    for (int64_t sl; (sl = next_slice.fetch_add(1)) < kSlices;) {
      const int64_t lo = dw_elems * sl / kSlices, hi = dw_elems * (sl + 1) / kSlices;
      for (int64_t ch = 1; ch < chunks.count; ++ch) {
        const T* src = partial.p + size_t(ch - 1) * size_t(dw_elems);
        for (int64_t e = lo; e < hi; ++e) dw[e] += src[e];
      }
    }
  });
}

std::vector<int64_t> sizes(const int64_t* dims) {  // x, dy, dw
  const ConvGeom g(dims);
  return {g.x_elems(), g.y_elems(), g.w_elems()};
}

// ------------------------------------------------------------------------------------------
// Table
// ------------------------------------------------------------------------------------------
const Variant kVariants[] = {
    // name            dtypes       launcher
    {"implicit_gemm", kF32 | kF64, by_dtype<run_implicit_gemm<float>, run_implicit_gemm<double>>,
     "implicit GEMM dy * im2col(x)^T per group on matmul's SIMD micro-kernel: im2col panels gathered "
     "from x as packed, no column buffer; pixels summed in order; one thread"},
    {"threaded", kF32 | kF64, by_dtype<run_threaded<float>, run_threaded<double>>,
     "implicit_gemm with the pixels cut in fixed chunks (partial dw per chunk, added in chunk order: "
     "the same bits on any thread count) and dw's columns, items from a counter"},
    {"windows", kF32 | kF64, by_dtype<run_windows<float>, run_windows<double>>,
     "stride 1: each dw element's terms per image as one dot product of a dy plane and a shifted window of "
     "the padded x, SIMD lanes x a 4x4 register tile, nothing packed; threads split tiles (else: threaded)"},
};

}  // namespace

PYKERN_CPU_TABLE(conv2d_backward_weight, "N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups", "x, dy",
                 kVariants, sizes, conv_unsupported);

}  // namespace cpu
}  // namespace pykern
