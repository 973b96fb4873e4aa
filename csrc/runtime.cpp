// Device memory, copies, events and device queries, so pykern needs no GPU array library to
// run its CUDA C++ kernels on host (NumPy) arrays.
#include <pybind11/pybind11.h>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include "common.h"

namespace py = pybind11;

namespace pykern {

DeviceInfo device_info() {
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  auto query = [dev] {
    DeviceInfo d{};
    const char* what = "cudaDeviceGetAttribute";
    check_cuda(cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, dev), what);
    check_cuda(cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, dev), what);
    check_cuda(cudaDeviceGetAttribute(&d.sm_count, cudaDevAttrMultiProcessorCount, dev), what);
    return d;
  };
#ifdef PYKERN_CUDA_SIM
  return query();
#else
  static std::mutex mu;
  static std::map<int, DeviceInfo> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it == cache.end()) it = cache.emplace(dev, query()).first;
  return it->second;
#endif
}

namespace {

// A (count, reason) pair instead of an exception: "no driver" is an expected state that
// pykern.backends() reports, not an error.
py::tuple device_count() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return py::make_tuple(0, std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err));
  }
  return py::make_tuple(n, std::string());
}

py::dict device_properties() {
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp p{};
  check_cuda(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  int driver = 0, runtime = 0;
  check_cuda(cudaDriverGetVersion(&driver), "cudaDriverGetVersion");
  check_cuda(cudaRuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");
  py::dict d;
  d["name"] = std::string(p.name);
  d["compute_capability"] = py::make_tuple(p.major, p.minor);
  d["multiprocessors"] = p.multiProcessorCount;
  d["total_memory"] = static_cast<uint64_t>(p.totalGlobalMem);
  d["l2_cache_bytes"] = p.l2CacheSize;
  d["shared_memory_per_block_optin"] = static_cast<uint64_t>(p.sharedMemPerBlockOptin);
  d["driver_version"] = driver;
  d["runtime_version"] = runtime;
  return d;
}

uintptr_t device_malloc(size_t nbytes) {
  void* p = nullptr;
  // cudaMalloc(0) may return nullptr; a 1-byte floor keeps every buffer a distinct address.
  const cudaError_t err = cudaMalloc(&p, nbytes > 0 ? nbytes : 1);
  if (err == cudaErrorMemoryAllocation) {
    // A MemoryError, as NumPy's allocator gives: the dispatch names the arguments behind the size.
    (void)cudaGetLastError();
    PyErr_SetString(PyExc_MemoryError, ("cudaMalloc of " + std::to_string(nbytes) +
                                        " bytes: out of device memory").c_str());
    throw py::error_already_set();
  }
  check_cuda(err, "cudaMalloc");
  return reinterpret_cast<uintptr_t>(p);
}

void device_free(uintptr_t p) { check_cuda(cudaFree(reinterpret_cast<void*>(p)), "cudaFree"); }

// Copies take a writable/readable Python buffer (a C-contiguous NumPy array) on the host side.
void memcpy_htod(uintptr_t dst, py::buffer src) {
  py::buffer_info b = src.request();
  size_t nbytes = static_cast<size_t>(b.size) * b.itemsize;
  py::gil_scoped_release nogil;
  check_cuda(cudaMemcpy(reinterpret_cast<void*>(dst), b.ptr, nbytes, cudaMemcpyHostToDevice),
             "cudaMemcpy(host to device)");
}

void memcpy_dtoh(py::buffer dst, uintptr_t src) {
  py::buffer_info b = dst.request(true);
  size_t nbytes = static_cast<size_t>(b.size) * b.itemsize;
  py::gil_scoped_release nogil;
  check_cuda(cudaMemcpy(b.ptr, reinterpret_cast<const void*>(src), nbytes, cudaMemcpyDeviceToHost),
             "cudaMemcpy(device to host)");
}

void memcpy_dtod(uintptr_t dst, uintptr_t src, size_t nbytes, uintptr_t stream) {
  check_cuda(cudaMemcpyAsync(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src),
                             nbytes, cudaMemcpyDeviceToDevice, as_stream(stream)),
             "cudaMemcpyAsync(device to device)");
}

void memset_bytes(uintptr_t dst, int value, size_t nbytes, uintptr_t stream) {
  check_cuda(cudaMemsetAsync(reinterpret_cast<void*>(dst), value, nbytes, as_stream(stream)),
             "cudaMemsetAsync");
}

void synchronize() {
  py::gil_scoped_release nogil;
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

// A CUDA event for timing on the GPU's own clock.
class Event {
 public:
  Event() { check_cuda(cudaEventCreate(&ev_), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(ev_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(uintptr_t stream) { check_cuda(cudaEventRecord(ev_, as_stream(stream)), "cudaEventRecord"); }
  void synchronize() {
    py::gil_scoped_release nogil;
    check_cuda(cudaEventSynchronize(ev_), "cudaEventSynchronize");
  }
  float elapsed_ms(const Event& end) const {
    float ms = 0.f;
    check_cuda(cudaEventElapsedTime(&ms, ev_, end.ev_), "cudaEventElapsedTime");
    return ms;
  }

 private:
  cudaEvent_t ev_{};
};

}  // namespace

void bind_runtime(py::module_& m) {
  m.def("device_count", &device_count, "(count, reason): reason is empty when the query worked");
  m.def("device_properties", &device_properties, "Properties of the current device");
  m.def("malloc", &device_malloc, py::arg("nbytes"));
  m.def("free", &device_free, py::arg("ptr"));
  m.def("memcpy_htod", &memcpy_htod, py::arg("dst"), py::arg("src"));
  m.def("memcpy_dtoh", &memcpy_dtoh, py::arg("dst"), py::arg("src"));
  m.def("memcpy_dtod", &memcpy_dtod, py::arg("dst"), py::arg("src"), py::arg("nbytes"),
        py::arg("stream") = 0);
  m.def("memset", &memset_bytes, py::arg("dst"), py::arg("value"), py::arg("nbytes"),
        py::arg("stream") = 0);
  m.def("synchronize", &synchronize);
  py::class_<Event>(m, "Event")
      .def(py::init<>())
      .def("record", &Event::record, py::arg("stream") = 0)
      .def("synchronize", &Event::synchronize)
      .def("elapsed_ms", &Event::elapsed_ms, py::arg("end"));
  // std::invalid_argument (bad dtype for a kernel) reaches Python as TypeError, not ValueError
  // (local: only for exceptions leaving this module, not every pybind11 module in the process):
  // it is always a dtype the Python side should have rejected already.
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });
}

}  // namespace pykern
