// Host-visible declarations shared by kernels/*.cu and csrc/*.cpp (compiled by the host
// compiler too, so no device code here).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <cuda_runtime_api.h>

namespace pykern {

// Element types crossing the Python boundary; Python passes the NumPy dtype name.
enum class DType { f16, bf16, f32, f64 };

DType parse_dtype(const std::string& name);
const char* dtype_name(DType dt);

// A set of DTypes, one bit per enumerator: the dtypes column of a variant table.
struct DTypes {
  unsigned bits;
  constexpr bool has(DType dt) const { return (bits >> static_cast<unsigned>(dt)) & 1u; }
};
constexpr DTypes operator|(DTypes a, DTypes b) { return {a.bits | b.bits}; }
constexpr DTypes kF16{1u << static_cast<unsigned>(DType::f16)};
constexpr DTypes kBF16{1u << static_cast<unsigned>(DType::bf16)};
constexpr DTypes kF32{1u << static_cast<unsigned>(DType::f32)};
constexpr DTypes kF64{1u << static_cast<unsigned>(DType::f64)};

// "float32, float64": the names in `set`, in DType order.
std::string dtype_list(DTypes set);

// The optional parameters a variant handles, one bit each: the optional last column of a variant
// table (pykern's `takes`; Python passes such a parameter only when set, and only to variants that
// take it). Each constant is named after its Python parameter, in csrc/variant_tables.py's TAKES.
struct Takes {
  unsigned bits;
  constexpr bool has(Takes t) const { return (bits & t.bits) == t.bits; }
};
constexpr Takes operator|(Takes a, Takes b) { return {a.bits | b.bits}; }
constexpr Takes kTakesNothing{0u};
constexpr Takes kTransposeA{1u};  // matmul's transpose_a: a stored (K, M)
constexpr Takes kTransposeB{2u};  // matmul's transpose_b: b stored (N, K)

// std::invalid_argument (Python TypeError) naming `what` and the dtypes it takes, unless
// `takes` holds dt. The bindings call it with each table row's dtypes before its launcher.
void require_dtype(const std::string& what, DTypes takes, DType dt);

// One row of an op's variant table, the last section of kernels/<op>.cu. The bindings (csrc/)
// bind every row as <op>_<name>, refusing dtypes outside the row, and pykern/cuda/ registers
// every row in table order. The rows are also read, as text, by csrc/variant_tables.py at
// build time, so keep each one a brace-enclosed {name, dtypes, default, launcher, technique}
// with, optionally, a last `takes` column.
template <typename Launcher>
struct Variant {
  const char* name;       // the registry's variant name
  DTypes dtypes;          // input dtypes the launcher takes
  bool is_default;        // the op's default CUDA variant (one row per table)
  Launcher launch;        // the host function that checks the shape and launches the kernels
  const char* technique;  // one line naming the technique and its limits (pk.variants())
  Takes takes = kTakesNothing;  // optional parameters it handles; the bindings refuse the others
};

// An op's table as the bindings see it.
template <typename Launcher>
struct VariantTable {
  const Variant<Launcher>* rows;
  int count;
  const Variant<Launcher>* begin() const { return rows; }
  const Variant<Launcher>* end() const { return rows + count; }
};

template <typename Launcher, int N>
constexpr VariantTable<Launcher> table_of(const Variant<Launcher> (&rows)[N]) {
  return {rows, N};
}

// Every CUDA runtime error becomes a C++ exception, which pybind11 turns into a Python
// RuntimeError carrying the CUDA error string: a bad launch never kills the interpreter.
inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    // Clear the sticky-free error state so the next call starts clean.
    (void)cudaGetLastError();
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(err) +
                             ": " + cudaGetErrorString(err));
  }
}

// Call right after a <<<>>> launch: reports bad configurations (too many threads, too much
// shared memory, no kernel image for this GPU) at once instead of at the next sync.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

// What launchers need to know about the current GPU.
struct DeviceInfo {
  int cc_major, cc_minor;  // compute capability
  int sm_count;            // streaming multiprocessors
};

// The current device's DeviceInfo, queried once per device and then cached: launchers ask on
// every launch (im2col_gemm once per image), and each attribute query is a driver call. The
// simulator build queries every time, since tests reconfigure its device between launches.
DeviceInfo device_info();

inline unsigned int ceil_div(int64_t a, int64_t b) { return static_cast<unsigned int>((a + b - 1) / b); }

// The product of non-negative sizes, checked: std::length_error (Python ValueError) naming `what`
// when it leaves int64. Launchers size their grids and loops with it, so a shape that bypassed
// Python's checks is refused rather than wrapped into a small count.
inline int64_t checked_product(const std::string& what, std::initializer_list<int64_t> factors) {
  int64_t p = 1;
  for (int64_t f : factors)
    if (f < 0 || __builtin_mul_overflow(p, f, &p))
      throw std::length_error(what + ": the size overflows 64 bits");
  return p;
}

}  // namespace pykern
