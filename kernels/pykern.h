// Host-visible declarations shared by kernels/*.cu and csrc/*.cpp (compiled by the host
// compiler too, so no device code here).
#pragma once
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>
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

// ------------------------------------------------------------------------------------------
// Calls: one launcher signature for every op
// ------------------------------------------------------------------------------------------

// The number of ',' separated names in a PYKERN_DIMS / PYKERN_TABLE list.
constexpr int count_names(const char* list) {
  int n = 1;
  for (const char* p = list; *p; ++p) n += *p == ',';
  return n;
}

// An op's problem dims: a struct of int64_t fields only (Python ints arrive that wide), declared
// as PYKERN_DIMS(Name, field, ...) so that the names the binder exports (<op>_fields, which
// tests compare with the op spec's dims_fields) are the declaration itself. A launcher reads
// them with call.dims<Name>().
#define PYKERN_DIMS(Name, ...)                                              \
  struct Name {                                                             \
    int64_t __VA_ARGS__;                                                    \
    static constexpr const char* kFields = #__VA_ARGS__;                    \
  };                                                                        \
  static_assert(sizeof(Name) == sizeof(int64_t) * ::pykern::count_names(#__VA_ARGS__), \
                #Name ": dims are int64_t fields only, read from one flat int64 array")

// Elementwise ops (relu, relu_backward): n elements of every operand.
PYKERN_DIMS(ElementwiseDims, n);

constexpr int kMaxInputs = 4;

// One launch as the generic binder (csrc/module.cpp) hands it to a launcher, after checking it:
// dtype in the row's set, the dims count, the takes flags and config, the table's `unsupported`
// rule, and non-null pointers. So launchers assume all of that and refuse nothing Python's
// `supports` would not (validate once).
struct Call {
  DType dtype;
  const void* in[kMaxInputs];  // the inputs in the spec's `inputs` order; nullptr: an absent optional one
  void* out;                   // the output
  const int64_t* dims;         // the op's dims, flat, in its PYKERN_DIMS order
  int config;                  // -1: the launcher's own pick; else an index into its row's configs
  cudaStream_t stream;
  const char* name;            // "<op>_<variant>", the table row's: what every error names

  template <typename Dims>
  Dims dims_as() const {
    Dims d;
    std::memcpy(&d, dims, sizeof d);
    return d;
  }
  template <typename T>
  const T* input(int i) const { return static_cast<const T*>(in[i]); }
  template <typename T>
  T* output() const { return static_cast<T*>(out); }
};

using Launcher = void (*)(const Call& call);

// One row of an op's variant table, the last section of the file that registers it. The binder
// binds every row as <op>_<name> and pykern/cuda/ registers every row in table order. The rows
// are also read, as text, by csrc/variant_tables.py at build time, so keep each one a
// brace-enclosed {name, dtypes, default, launcher, technique} with, optionally, a last `takes`
// column.
struct Variant {
  const char* name;       // the registry's variant name
  DTypes dtypes;          // input dtypes the launcher takes
  bool is_default;        // the op's default CUDA variant (one row per table)
  Launcher launch;        // the host function that launches the kernels
  const char* technique;  // one line naming the technique and its limits (pk.variants())
  Takes takes = kTakesNothing;  // optional parameters it handles; the binder refuses the others
};

// A table's optional members, all generic in the binder:
//   unsupported(row, call): "" when row can run call's dtype and dims, else why not; the binder
//     refuses a launch with it and binds it as <op>_unsupported, which Python's `supports` calls,
//     so the two always agree. Every index-width bound and kernel limit (shared memory, grid)
//     of the table's launchers lives here. (call's pointers are null when Python asks.)
//   configs(row): names of the configurations call.config indexes for that row ({} for none),
//     bound as <op>_configs(variant).
using Unsupported = std::string (*)(const Variant& row, const Call& call);
using ConfigNames = std::vector<std::string> (*)(const Variant& row);
struct TableExtras {
  Unsupported unsupported = nullptr;
  ConfigNames configs = nullptr;
};

// One op's registered table.
struct Table {
  const char* op;
  const char* fields;  // its PYKERN_DIMS field names, "M, N, K, ..."
  int field_count;
  const char* inputs;  // "x, w, bias?": the spec's inputs in order, '?' marking an optional one
  const Variant* rows;
  int row_count;
  TableExtras extras;
};

// Appends to the registry the binder walks (csrc/module.cpp). The kernel files are compiled into
// the extension module itself, not a static library, so every table's static registrar runs.
void register_table(const Table& table);
struct TableRegistrar {
  explicit TableRegistrar(const Table& table) { register_table(table); }
};

// The registration line at the bottom of a table file, after its rows:
//   PYKERN_TABLE(op, Dims, "inputs", rows[, unsupported[, configs]]);
// csrc/variant_tables.py reads this line and the rows it names, as text.
#define PYKERN_TABLE(op, Dims, inputs, ...)                                                   \
  static const ::pykern::TableRegistrar pykern_table_registrar_##op{                         \
      ::pykern::make_table(#op, Dims::kFields, inputs, __VA_ARGS__)}

template <int N>
constexpr Table make_table(const char* op, const char* fields, const char* inputs, const Variant (&rows)[N],
                           Unsupported unsupported = nullptr, ConfigNames configs = nullptr) {
  return Table{op, fields, count_names(fields), inputs, rows, N, TableExtras{unsupported, configs}};
}

// The optional parameters that are dims fields (0 or 1): a row whose takes column lacks one gets
// it 0, or the binder refuses the call with `refusal`. Python names them in the row's `takes`.
struct TakeFlag {
  Takes bit;
  const char* field;    // the dims field, also the Python parameter
  const char* refusal;  // what the binder says when a row that does not take it gets it set
};
constexpr TakeFlag kTakeFlags[] = {
    {kTransposeA, "transpose_a", "takes no transposed operands"},
    {kTransposeB, "transpose_b", "takes no transposed operands"},
};

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
// `kernel` is the Call's name, the table row's: no launcher types a variant's name.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }
// One step of a launcher that launches several kernels: errors name "<kernel>(<step>)".
inline void check_launch(const char* kernel, const char* step) {
  check_cuda(cudaGetLastError(), (std::string(kernel) + "(" + step + ")").c_str());
}

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

// ------------------------------------------------------------------------------------------
// Index widths: one policy per kind of kernel
// ------------------------------------------------------------------------------------------
// Elementwise and direct kernels (relu, relu_backward, both conv2d gradients):
//   64-bit flat indices (int64_t) throughout; the only bound is that sizes and their products fit
//   int64 (size64_problem). A launcher whose one-thread-per-element grid could pass gridDim.x's
//   2^31 - 1 launches in chunks or strides, or its table's rule refuses the shape.
// Tiled GEMM and convolution kernels (matmul; conv2d's variants, direct included, which shares
// their 32-bit geometry):
//   sizes, and offsets inside a tile or one image, as int (cheaper address arithmetic and fewer
//   registers in the inner loops); only tile and image origins are 64-bit. Their table's rule
//   refuses every shape where such an int product would reach 2^31 (fits_index32), with the
//   margin the tile arithmetic steps past the edge.
// Enforced in one place: a table's `unsupported` rule, which the binder runs before every launch
// (and Python's `supports` asks), so launchers index without re-checking. The binder itself
// refuses negative dims for every table.
constexpr int64_t kIndex32Max = 2147483647;

// The product of non-negative factors, saturated just above kIndex32Max: compare it with a
// 32-bit bound without overflowing int64 on the way.
constexpr int64_t index32_product(std::initializer_list<int64_t> factors) {
  int64_t p = 1;
  for (int64_t f : factors) {
    if (f != 0 && p > (kIndex32Max + 1) / f) return kIndex32Max + 1;
    p *= f;
  }
  return p;
}

// Whether the product of non-negative `factors` stays at most kIndex32Max - margin: the tiled
// kernels' bound.
constexpr bool fits_index32(std::initializer_list<int64_t> factors, int64_t margin = 0) {
  return index32_product(factors) <= kIndex32Max - margin;
}

// "" when the product of the non-negative `factors` fits int64 (then *out holds it), else why not,
// naming `what`: the 64-bit kernels' bound. Rules size grids and loops with it, so a shape that
// bypassed Python's checks is refused rather than wrapped into a small count.
inline std::string size64_problem(const std::string& what, std::initializer_list<int64_t> factors, int64_t* out) {
  int64_t p = 1;
  for (int64_t f : factors)
    if (f < 0 || __builtin_mul_overflow(p, f, &p)) return what + ": the size overflows 64 bits";
  *out = p;
  return "";
}

// "a", "a and b", "a, b and c" (`last` "or": "a, b or c"): table rows named in a message, read
// from the table rather than typed.
inline std::string name_list(const std::vector<std::string>& names, const char* last = "and") {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i)
    s += (i == 0 ? "" : i + 1 == names.size() ? std::string(" ") + last + " " : ", ") + names[i];
  return s;
}

}  // namespace pykern
