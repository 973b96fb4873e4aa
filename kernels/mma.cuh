// Named wrappers for the warp-level matrix PTX that the tensor-core rungs use, so one kernel
// source builds for both compilers: under nvcc each is the inline `asm volatile` it names; in
// the simulator (csrc/sim/sim_ptx.h) each runs the instruction as the PTX ISA defines it, with
// its fragment layouts and warp-collective semantics. All of them are .sync.aligned: every lane
// of the warp must call the same one.
//
//   ldmatrix<N, TRANS>(r, row)   ldmatrix.sync.aligned.m8n8.xN{.trans}.shared.b16   (sm_75+)
//   mma_m16n8k16<T>(d, a, b, c)  mma.sync.aligned.m16n8k16.row.col.f32.T.T.f32,
//                                T = __half or __nv_bfloat16                       (sm_80+)
//   mma_m16n8k8_tf32(d, a, b, c) mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (sm_80+)
//
// Fragments, per lane (groupID g = lane >> 2, threadID_in_group t = lane % 4):
//   m16n8k16 a: (16, 16) in 4 registers of 2 elements: rows g, g+8; columns 2t, 2t+1, +8
//   m16n8k16 b: (16, 8) in 2 registers of 2: rows 2t, 2t+1, +8; column g
//   c, d:       (16, 8) in 4 floats: rows g (c0, c1) and g+8 (c2, c3); columns 2t, 2t+1
// csrc/sim/sim_ptx.h has every layout as the ISA's formulas.
#pragma once
#include <cstdint>
#include <type_traits>

#if defined(PYKERN_CUDA_SIM)
#include "sim_ptx.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace pykern {

// A generic pointer into shared memory as the 32-bit .shared address PTX operands take.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// N 8x8 matrices of 16-bit elements from shared memory: lane 8i + j gives the address of row j
// of matrix i (16-byte aligned; lanes 8N.. give none that is read), and r[i] receives this
// lane's two elements of matrix i: row lane/4, columns 2*(lane%4) and +1, or with TRANS the
// transpose's (rows 2*(lane%4) and +1 of column lane/4), the first in the low half.
template <int N, bool TRANS>
__device__ __forceinline__ void ldmatrix(uint32_t (&r)[N], const void* row) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::ptx::ldmatrix<N, TRANS>(r, row);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  const unsigned p = smem_addr(row);
  if constexpr (N == 1 && !TRANS) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(p));
  } else if constexpr (N == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(p));
  } else if constexpr (N == 2 && !TRANS) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(p));
  } else if constexpr (N == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(p));
  } else if constexpr (!TRANS) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(p));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(p));
  }
#endif
}

// d = a @ b + c on one warp's 16x8x16 tile, T (fp16 or bf16) in, fp32 accumulate; d may be c.
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                             const float (&c)[4]) {
  constexpr bool kBF16 = std::is_same<T, __nv_bfloat16>::value;
  static_assert(kBF16 || std::is_same<T, __half>::value, "mma.sync m16n8k16 takes fp16 or bf16 here");
#if defined(PYKERN_CUDA_SIM)
  using ::pykern_sim::ptx::Elem;
  ::pykern_sim::ptx::mma_m16n8(kBF16 ? Elem::kBF16 : Elem::kF16, d, a, b, c);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (kBF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
  }
#endif
}

// d = a @ b + c on one warp's 16x8x8 tile of tf32 values (fp32 registers; the low 13 mantissa
// bits are not used: round with cvt.rna.tf32.f32 first), fp32 accumulate; d may be c.
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                 const float (&c)[4]) {
#if defined(PYKERN_CUDA_SIM)
  ::pykern_sim::ptx::mma_m16n8(::pykern_sim::ptx::Elem::kTF32, d, a, b, c);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#endif
}

}  // namespace pykern
