// Device-side helpers shared by kernels/*.cu.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "pykern.h"

namespace pykern {

// The DType of each element type a kernel is instantiated for.
template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<__half> { static constexpr DType value = DType::f16; };
template <>
struct DTypeOf<__nv_bfloat16> { static constexpr DType value = DType::bf16; };
template <>
struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <>
struct DTypeOf<double> { static constexpr DType value = DType::f64; };

template <typename T>
struct TypeTag {
  using type = T;
};

// The launchers' one dtype dispatch: calls fn(TypeTag<T>{}) for the T among Ts whose DType is dt,
// so kernels are instantiated for exactly those types; any other dtype throws
// std::invalid_argument (Python TypeError) naming `what` and the dtypes it takes. The bindings
// refuse dtypes outside a variant's table row first, so this throws only where a row promises a
// dtype its launcher does not handle. Single-type launchers call require_dtype directly.
template <typename... Ts, typename Fn>
void dispatch_dtype(DType dt, const char* what, Fn&& fn) {
  const bool ran = ((dt == DTypeOf<Ts>::value ? (fn(TypeTag<Ts>{}), true) : false) || ...);
  if (!ran) require_dtype(what, DTypes{((1u << static_cast<unsigned>(DTypeOf<Ts>::value)) | ...)}, dt);
}

}  // namespace pykern
