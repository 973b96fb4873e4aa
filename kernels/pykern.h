// Host-visible declarations shared by kernels/*.cu and csrc/*.cpp (compiled by the host
// compiler too, so no device code here).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <cuda_runtime_api.h>

namespace pykern {

// Element types crossing the Python boundary; Python passes the NumPy dtype name.
enum class DType { f16, bf16, f32, f64 };

DType parse_dtype(const std::string& name);
const char* dtype_name(DType dt);

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

inline unsigned int ceil_div(int64_t a, int64_t b) { return static_cast<unsigned int>((a + b - 1) / b); }

}  // namespace pykern
