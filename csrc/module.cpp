// pykern._cuda: the CUDA C++ kernels and the small slice of the CUDA runtime pykern needs
// (device memory, copies, events); pykern._cuda_sim is the same code built for the CPU
// simulator (csrc/sim/). Python-side wrappers live in pykern/cuda/ and pykern/_device.py.
//
// One generic binder: every variant table registers itself (PYKERN_TABLE at the bottom of its
// file, kernels/pykern.h) and bind_tables walks them, defining for each op
//   <op>_<variant>(ins, out, dims, dtype, stream=0, config=-1)   one per row: ins a tuple of input
//       pointers in the spec's order (0 for an absent optional one), out the output pointer, dims
//       the op's PYKERN_DIMS fields in order, dtype a NumPy dtype name, pointers and stream ints
//   <op>_variants      the rows as dicts (name, technique, dtypes, default, kernel, takes), in order
//   <op>_fields        the dims field names, in order
//   <op>_info          {"inputs", "optional", "unsupported"}: the registration line's members
//   <op>_unsupported(variant, dims, dtype) -> "" or why that row cannot run them
//   <op>_configs(variant) -> the names `config` indexes for that row ([] for none)
// A bound launcher checks, in this order, what makes a direct call memory-safe and nothing else:
// the dtype in the row's set (TypeError), the number of pointers and dims, non-negative dims, the
// takes flags, the config index, the table's `unsupported` rule (the index-width policy and kernel
// limits of kernels/pykern.h; ValueError), and non-null pointers (ValueError).
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "common.h"

namespace py = pybind11;

namespace pykern {

DType parse_dtype(const std::string& name) {
  if (name == "float16") return DType::f16;
  if (name == "bfloat16") return DType::bf16;
  if (name == "float32") return DType::f32;
  if (name == "float64") return DType::f64;
  throw std::invalid_argument("unsupported dtype '" + name + "'");
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::f32: return "float32";
    case DType::f64: return "float64";
  }
  return "?";
}

py::list dtype_names(DTypes set) {
  py::list names;
  for (DType dt : {DType::f16, DType::bf16, DType::f32, DType::f64})
    if (set.has(dt)) names.append(dtype_name(dt));
  return names;
}

py::list takes_names(Takes takes) {
  py::list names;
  for (const TakeFlag& f : kTakeFlags)
    if (takes.has(f.bit)) names.append(f.field);
  return names;
}

std::string dtype_list(DTypes set) {
  std::string list;
  for (DType dt : {DType::f16, DType::bf16, DType::f32, DType::f64})
    if (set.has(dt)) list += std::string(list.empty() ? "" : ", ") + dtype_name(dt);
  return list;
}

void require_dtype(const std::string& what, DTypes takes, DType dt) {
  if (!takes.has(dt))
    throw std::invalid_argument(what + ": unsupported dtype " + dtype_name(dt) + " (takes " + dtype_list(takes) +
                                ")");
}

namespace {

// A function-local static: tables register from static initializers in other files, whose order
// relative to this file's is unspecified.
std::vector<Table>& registry() {
  static std::vector<Table> tables;
  return tables;
}

// "a, b, c" -> {"a", "b", "c"}.
std::vector<std::string> split_names(const std::string& list) {
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const size_t b = list.find_first_not_of(' ', start);
    const size_t e = list.find_last_not_of(' ', end - 1);
    names.push_back(b < end ? list.substr(b, e - b + 1) : "");
    start = end + 1;
  }
  return names;
}

std::string join(const std::vector<std::string>& names, const char* sep = ", ") {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : sep) + n;
  return s;
}

// What the binder knows about one table, derived once from its registration.
struct TableInfo {
  const Table* table;
  std::string op;
  std::vector<std::string> inputs;  // names, '?' stripped
  std::vector<bool> optional;
  std::vector<std::string> fields;
  std::vector<std::pair<int, TakeFlag>> flags;  // dims index of each kTakeFlags field in this table
  std::vector<std::string> config_rows;  // rows with configurations, in table order
};

std::shared_ptr<const TableInfo> describe(const Table& t) {
  auto info = std::make_shared<TableInfo>();
  info->table = &t;
  info->op = t.op;
  for (std::string name : split_names(t.inputs)) {
    const bool opt = !name.empty() && name.back() == '?';
    if (opt) name.pop_back();
    info->inputs.push_back(name);
    info->optional.push_back(opt);
  }
  if (info->inputs.size() > static_cast<size_t>(kMaxInputs))
    throw std::logic_error(info->op + ": more inputs than Call holds (kMaxInputs)");
  info->fields = split_names(t.fields);
  if (static_cast<int>(info->fields.size()) != t.field_count)
    throw std::logic_error(info->op + ": its dims declare " + std::to_string(t.field_count) + " fields");
  for (const TakeFlag& f : kTakeFlags)
    for (size_t i = 0; i < info->fields.size(); ++i)
      if (info->fields[i] == f.field) info->flags.emplace_back(static_cast<int>(i), f);
  for (int r = 0; r < t.row_count; ++r) {
    const Variant& row = t.rows[r];
    for (const TakeFlag& f : kTakeFlags) {
      bool is_field = false;
      for (const auto& fl : info->flags) is_field |= fl.second.field == f.field;
      if (row.takes.has(f.bit) && !is_field)
        throw std::logic_error(info->op + "_" + row.name + ": takes " + f.field + ", which is no dims field");
    }
    if (t.extras.configs != nullptr && !t.extras.configs(row).empty()) info->config_rows.push_back(row.name);
  }
  return info;
}

int config_count(const TableInfo& info, const Variant& row) {
  return info.table->extras.configs != nullptr ? static_cast<int>(info.table->extras.configs(row).size()) : 0;
}

// ValueError (pybind11 translates std::domain_error) naming the row.
[[noreturn]] void refuse(const std::string& kernel, const std::string& why) {
  throw std::domain_error(kernel + ": " + why);
}

void require_dims(const TableInfo& info, const std::string& kernel, const std::vector<int64_t>& dims) {
  if (dims.size() != info.fields.size())
    refuse(kernel, "expected " + std::to_string(info.fields.size()) + " dims (" + join(info.fields) + "), got " +
                       std::to_string(dims.size()));
}

// The checks a direct caller's launch passes before the launcher runs (see the file comment).
Call checked_call(const TableInfo& info, const Variant& row, const std::string& kernel,
                  const std::vector<uintptr_t>& ins, uintptr_t out, const std::vector<int64_t>& dims,
                  const std::string& dtype, uintptr_t stream, int config) {
  Call call{};
  call.dtype = parse_dtype(dtype);
  require_dtype(kernel, row.dtypes, call.dtype);
  if (ins.size() != info.inputs.size())
    refuse(kernel, "expected " + std::to_string(info.inputs.size()) + " input pointers (" + join(info.inputs) +
                       "), got " + std::to_string(ins.size()));
  require_dims(info, kernel, dims);
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] < 0)
      refuse(kernel, "dims must be non-negative, got " + info.fields[i] + "=" + std::to_string(dims[i]));
  for (const auto& [index, flag] : info.flags)
    if (dims[index] != 0 && !row.takes.has(flag.bit))
      refuse(kernel, std::string(flag.refusal) + " (its table row's takes column)");
  const int configs = config_count(info, row);
  if (configs == 0 && config != -1)
    refuse(kernel, "config must be -1: " + (info.config_rows.empty()
                                                 ? "no " + info.op + " variant has configurations"
                                                 : "only " + name_list(info.config_rows) + " has configurations"));
  if (config < -1 || config >= configs)
    refuse(kernel, "config must be -1 (auto) or in [0, " + std::to_string(configs) + "), got " +
                       std::to_string(config));
  call.dims = dims.data();
  call.config = config;
  call.stream = as_stream(stream);
  call.name = kernel.c_str();
  if (info.table->extras.unsupported != nullptr) {
    const std::string why = info.table->extras.unsupported(row, call);
    if (!why.empty()) refuse(kernel, why);
  }
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i] == 0 && !info.optional[i]) refuse(kernel, info.inputs[i] + " is a null pointer");
    call.in[i] = reinterpret_cast<const void*>(ins[i]);
  }
  if (out == 0) refuse(kernel, "the output is a null pointer");
  call.out = reinterpret_cast<void*>(out);
  return call;
}

void bind_table(py::module_& m, const Table& t) {
  const std::shared_ptr<const TableInfo> info = describe(t);
  const std::string op = t.op;
  py::list rows;
  for (int r = 0; r < t.row_count; ++r) {
    const Variant* row = &t.rows[r];
    const std::string kernel = op + "_" + row->name;
    m.def(kernel.c_str(),
          [info, row, kernel](const std::vector<uintptr_t>& ins, uintptr_t out, const std::vector<int64_t>& dims,
                              const std::string& dtype, uintptr_t stream, int config) {
            row->launch(checked_call(*info, *row, kernel, ins, out, dims, dtype, stream, config));
          },
          py::arg("ins"), py::arg("out"), py::arg("dims"), py::arg("dtype"), py::arg("stream") = 0,
          py::arg("config") = -1, row->technique);
    py::dict d;
    d["name"] = row->name;
    d["technique"] = row->technique;
    d["dtypes"] = dtype_names(row->dtypes);
    d["default"] = row->is_default;
    d["kernel"] = kernel;
    d["takes"] = takes_names(row->takes);
    rows.append(d);
  }
  m.attr((op + "_variants").c_str()) = rows;
  m.attr((op + "_fields").c_str()) = py::tuple(py::cast(info->fields));
  py::dict d;
  d["inputs"] = info->inputs;
  py::list optional;
  for (size_t i = 0; i < info->inputs.size(); ++i)
    if (info->optional[i]) optional.append(info->inputs[i]);
  d["optional"] = optional;
  d["unsupported"] = t.extras.unsupported != nullptr;
  m.attr((op + "_info").c_str()) = d;

  auto find_row = [info](const std::string& variant) -> const Variant* {
    for (int r = 0; r < info->table->row_count; ++r)
      if (variant == info->table->rows[r].name) return &info->table->rows[r];
    return nullptr;
  };
  m.def((op + "_unsupported").c_str(),
        [info, find_row](const std::string& variant, const std::vector<int64_t>& dims, const std::string& dtype) {
          const Variant* row = find_row(variant);
          if (row == nullptr) return "unknown " + info->op + " variant '" + variant + "'";
          Call call{};
          call.dtype = parse_dtype(dtype);
          if (!row->dtypes.has(call.dtype))
            return std::string("unsupported dtype ") + dtype_name(call.dtype) + " (takes " +
                   dtype_list(row->dtypes) + ")";
          const std::string kernel = info->op + "_" + row->name;
          require_dims(*info, kernel, dims);
          call.dims = dims.data();
          call.name = kernel.c_str();
          return info->table->extras.unsupported != nullptr ? info->table->extras.unsupported(*row, call)
                                                            : std::string();
        },
        py::arg("variant"), py::arg("dims"), py::arg("dtype"),
        ("\"\" when the row `variant` can run these dims and dtype, else why not (what its launcher would "
         "refuse); dims: " + join(info->fields)).c_str());
  m.def((op + "_configs").c_str(),
        [info, find_row](const std::string& variant) {
          const Variant* row = find_row(variant);
          if (row == nullptr) throw std::domain_error("unknown " + info->op + " variant '" + variant + "'");
          return info->table->extras.configs != nullptr ? info->table->extras.configs(*row)
                                                        : std::vector<std::string>();
        },
        py::arg("variant"), "The configurations `config` indexes for the row `variant`, in order");
}

}  // namespace

void register_table(const Table& table) { registry().push_back(table); }

void bind_tables(py::module_& m) {
  py::list ops;
  for (const Table& t : registry()) {
    bind_table(m, t);
    ops.append(t.op);
  }
  m.attr("TABLES") = ops;  // the ops whose tables this build registered
}

}  // namespace pykern

namespace {
void bind_all(pybind11::module_& m) {
  pykern::bind_runtime(m);
  pykern::bind_tables(m);
}
}  // namespace

// The same bindings in both builds; the simulator (csrc/sim/) adds its settings and self-test.
#ifdef PYKERN_CUDA_SIM
namespace pykern {
void bind_sim(pybind11::module_& m);
}
PYBIND11_MODULE(_cuda_sim, m) {
  m.doc() = "pykern CUDA C++ kernels (see kernels/) run on the CPU by the simulator in csrc/sim/";
  bind_all(m);
  pykern::bind_sim(m);
}
#else
PYBIND11_MODULE(_cuda, m) {
  m.doc() = "pykern CUDA C++ kernels (see kernels/) and runtime helpers";
  bind_all(m);
}
#endif
