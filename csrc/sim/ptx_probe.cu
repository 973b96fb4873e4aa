// One-warp kernels around the ldmatrix and mma.sync wrappers (see ptx_probe.h).
#include <stdexcept>

#include "launch.cuh"
#include "mma.cuh"
#include "ptx_probe.h"
#include "pykern.h"

namespace ptx_probe {
namespace {

template <int N, bool TRANS>
__global__ void ldmatrix_kernel(const uint16_t* src, const int* rows, uint32_t* out) {
  PYKERN_SHARED(__align__(16) uint16_t, s, [32 * 8]);  // 32 rows of one 16-byte matrix row each
  const int lane = threadIdx.x;
  for (int j = 0; j < 8; ++j) s[lane * 8 + j] = src[lane * 8 + j];
  __syncwarp();
  uint32_t r[N];
  pykern::ldmatrix<N, TRANS>(r, s + rows[lane] * 8);
  for (int i = 0; i < N; ++i) out[lane * 4 + i] = r[i];
}

template <int KIND>  // 0 f16, 1 bf16, 2 tf32
__global__ void mma_kernel(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  const int lane = threadIdx.x;
  uint32_t ra[4], rb[2];
  float rc[4], rd[4];
  for (int i = 0; i < 4; ++i) ra[i] = a[lane * 4 + i], rc[i] = c[lane * 4 + i];
  for (int i = 0; i < 2; ++i) rb[i] = b[lane * 2 + i];
  if constexpr (KIND == 0) pykern::mma_m16n8k16<__half>(rd, ra, rb, rc);
  else if constexpr (KIND == 1) pykern::mma_m16n8k16<__nv_bfloat16>(rd, ra, rb, rc);
  else pykern::mma_m16n8k8_tf32(rd, ra, rb, rc);
  for (int i = 0; i < 4; ++i) d[lane * 4 + i] = rd[i];
}

template <int N>
void launch_ldmatrix(bool trans, const uint16_t* src, const int* rows, uint32_t* out) {
  if (trans) PYKERN_LAUNCH(1, 32, 0, 0, ldmatrix_kernel<N, true>)(src, rows, out);
  else PYKERN_LAUNCH(1, 32, 0, 0, ldmatrix_kernel<N, false>)(src, rows, out);
}

}  // namespace

void ldmatrix(int count, bool trans, const void* src, const void* rows, void* out) {
  const auto* s = static_cast<const uint16_t*>(src);
  const auto* r = static_cast<const int*>(rows);
  auto* o = static_cast<uint32_t*>(out);
  if (count == 1) launch_ldmatrix<1>(trans, s, r, o);
  else if (count == 2) launch_ldmatrix<2>(trans, s, r, o);
  else if (count == 4) launch_ldmatrix<4>(trans, s, r, o);
  else throw std::invalid_argument("ldmatrix loads 1, 2 or 4 matrices");
  pykern::check_launch("ptx_probe ldmatrix");
}

void mma(const std::string& kind, const void* a, const void* b, const void* c, void* d) {
  const auto* ra = static_cast<const uint32_t*>(a);
  const auto* rb = static_cast<const uint32_t*>(b);
  const auto* rc = static_cast<const float*>(c);
  auto* rd = static_cast<float*>(d);
  if (kind == "f16") PYKERN_LAUNCH(1, 32, 0, 0, mma_kernel<0>)(ra, rb, rc, rd);
  else if (kind == "bf16") PYKERN_LAUNCH(1, 32, 0, 0, mma_kernel<1>)(ra, rb, rc, rd);
  else if (kind == "tf32") PYKERN_LAUNCH(1, 32, 0, 0, mma_kernel<2>)(ra, rb, rc, rd);
  else throw std::invalid_argument("mma kind must be f16, bf16 or tf32, got '" + kind + "'");
  pykern::check_launch("ptx_probe mma");
}

std::vector<std::vector<std::pair<int, int>>> layout(const std::string& what) {
  namespace ptx = ::pykern_sim::ptx;
  std::vector<std::vector<std::pair<int, int>>> lanes(32);
  for (unsigned l = 0; l < 32; ++l) {
    auto add = [&](ptx::RowCol p) { lanes[l].emplace_back(p.row, p.col); };
    if (what == "a_m16n8k16") for (int i = 0; i < 8; ++i) add(ptx::a_m16n8k16(l, i));
    else if (what == "b_m16n8k16") for (int i = 0; i < 4; ++i) add(ptx::b_m16n8k16(l, i));
    else if (what == "cd_m16n8") for (int i = 0; i < 4; ++i) add(ptx::cd_m16n8(l, i));
    else if (what == "a_m16n8k8_tf32") for (int i = 0; i < 4; ++i) add(ptx::a_m16n8k8_tf32(l, i));
    else if (what == "b_m16n8k8_tf32") for (int i = 0; i < 2; ++i) add(ptx::b_m16n8k8_tf32(l, i));
    else if (what == "ldmatrix" || what == "ldmatrix_trans")
      for (int j = 0; j < 2; ++j) add(ptx::ldmatrix_element(l, j, what == "ldmatrix_trans"));
    else throw std::invalid_argument("unknown fragment '" + what + "'");
  }
  return lanes;
}

}  // namespace ptx_probe
