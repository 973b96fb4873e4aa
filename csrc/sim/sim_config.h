// pykern CUDA simulator: run-time settings and counters, shared by sim_runtime.cpp and the
// Python bindings (sim_bind.cpp), which include no device emulation.
#pragma once
#include <cstdint>
#include <string>

namespace pykern_sim {

struct Config {
  std::string order = "forward";  // thread (and block) order: forward, reverse, random
  uint64_t seed = 0;              // for order == "random"
  int cc_major = 9, cc_minor = 0;  // what cudaDeviceGetAttribute reports (H100)
  int sm_count = 132;
};

struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0, barriers = 0, switches = 0;
  // ldmatrix: 8x8 matrices loaded, and the shared-memory wavefronts beyond one per matrix that
  // its eight 16-byte rows cost (rows in the same 4-bank group conflict): 0 when conflict-free.
  uint64_t ldmatrix_matrices = 0, ldmatrix_extra_wavefronts = 0;
};

Config get_config();
void set_config(const Config& c);  // std::invalid_argument on a bad value
Stats get_stats();
void reset_stats();

}  // namespace pykern_sim
