// pykern CUDA simulator: nvcuda::wmma with an opaque accumulator layout.
//
// matrix_a / matrix_b fragments: each thread loads the whole 16x16 tile itself (as float: fp16
// and bf16 convert exactly). Accumulator fragments: each thread owns 8 of the 256 elements,
// scattered by a fixed permutation that is neither row- nor column-ordered, and mma_sync
// computes only those. store_matrix_sync therefore writes only the calling thread's share:
// until every lane of the warp has stored (a __syncwarp), the tile in memory is incomplete, so
// a kernel that reads it back without __syncwarp reads stale or NaN data, as it could on a GPU.
// Not modelled: the real register layout and tensor-core rounding (products are summed in
// fp32, k = 0..15 in order).
#pragma once
#include <cstdint>

#include "cuda_sim.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment;

namespace detail {
constexpr int kElems = 256, kPerLane = kElems / 32;
// Element e = row * 16 + col of a 16x16 accumulator is owned by lane owner(e): for each j, the
// 32 elements 32j .. 32j+31 go to 32 distinct lanes, so every lane owns exactly 8.
constexpr int owner(int e) { return ((e % 32) * 13 + e / 32) % 32; }
// The element lane `lane` holds in slot j: the e in [32j, 32j+32) with owner(e) == lane.
inline int element(int lane, int j) {
  for (int i = 0; i < 32; ++i)
    if (owner(32 * j + i) == lane) return 32 * j + i;
  return -1;
}
struct OwnTable {
  int16_t e[32][kPerLane];
  OwnTable() {
    for (int l = 0; l < 32; ++l)
      for (int j = 0; j < kPerLane; ++j) e[l][j] = static_cast<int16_t>(element(l, j));
  }
};
inline const OwnTable& own() {
  static const OwnTable t;
  return t;
}
template <class T>
void check_ptr(const T* p, unsigned ldm, const char* what) {
  // CUDA requires 256-bit aligned tile pointers and ldm a multiple of 16 bytes.
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) ::pykern_sim::fail(what);
  if ((ldm * sizeof(T)) % 16 != 0) ::pykern_sim::fail(what);
}
}  // namespace detail

template <class T, class Layout>
struct fragment<matrix_a, 16, 16, 16, T, Layout> {
  float x[detail::kElems];  // (16 rows of M, 16 of K), row-major
};
template <class T, class Layout>
struct fragment<matrix_b, 16, 16, 16, T, Layout> {
  float x[detail::kElems];  // (16 of K, 16 columns of N), row-major
};
template <class Layout>
struct fragment<accumulator, 16, 16, 16, float, Layout> {
  static constexpr int num_elements = detail::kPerLane;
  float x[detail::kPerLane];  // this lane's share, slot j = element own().e[lane][j]
};

template <class Use, class T, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  static_assert(!std::is_same<Use, accumulator>::value, "accumulators load with a layout argument");
  detail::check_ptr(p, ldm, "wmma::load_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 16 bytes");
  constexpr bool row = std::is_same<Layout, row_major>::value;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      f.x[r * 16 + c] = static_cast<float>(row ? p[r * ldm + c] : p[c * ldm + r]);
}

template <class Layout>
void load_matrix_sync(fragment<accumulator, 16, 16, 16, float, Layout>& f, const float* p, unsigned ldm,
                      layout_t layout) {
  detail::check_ptr(p, ldm, "wmma::load_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 16 bytes");
  const unsigned lane = ::pykern_sim::lane_id();
  for (int j = 0; j < detail::kPerLane; ++j) {
    const int e = detail::own().e[lane][j], r = e / 16, c = e % 16;
    f.x[j] = layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
  }
}

template <class Layout>
void fill_fragment(fragment<accumulator, 16, 16, 16, float, Layout>& f, float v) {
  for (float& e : f.x) e = v;
}

template <class TA, class LA, class TB, class LB, class LC, class LD>
void mma_sync(fragment<accumulator, 16, 16, 16, float, LD>& d, const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
              const fragment<matrix_b, 16, 16, 16, TB, LB>& b, const fragment<accumulator, 16, 16, 16, float, LC>& c) {
  const unsigned lane = ::pykern_sim::lane_id();
  float out[detail::kPerLane];
  for (int j = 0; j < detail::kPerLane; ++j) {
    const int e = detail::own().e[lane][j], r = e / 16, col = e % 16;
    float acc = c.x[j];
    for (int k = 0; k < 16; ++k) acc += a.x[r * 16 + k] * b.x[k * 16 + col];
    out[j] = acc;
  }
  for (int j = 0; j < detail::kPerLane; ++j) d.x[j] = out[j];
}

template <class Layout>
void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float, Layout>& f, unsigned ldm,
                       layout_t layout) {
  detail::check_ptr(p, ldm, "wmma::store_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 16 bytes");
  const unsigned lane = ::pykern_sim::lane_id();
  for (int j = 0; j < detail::kPerLane; ++j) {
    const int e = detail::own().e[lane][j], r = e / 16, c = e % 16;
    (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[j];
  }
}

}  // namespace wmma
}  // namespace nvcuda
