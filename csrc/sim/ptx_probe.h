// One-warp kernels that run the warp-level matrix wrappers of kernels/mma.cuh alone, so the
// tests (tests/test_cuda_sim_ptx.py) can hold the simulator's fragment layouts to a table
// transcribed from the PTX ISA's figures. Built only into pykern._cuda_sim.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace ptx_probe {

// ldmatrix.x{count}{.trans}: src is 32 rows of 8 uint16 (device memory); lane l gives the
// address of row rows[l] of a shared copy of src; out[l * 4 + i] gets lane l's register i.
void ldmatrix(int count, bool trans, const void* src, const void* rows, void* out);

// One mma.sync: kind "f16", "bf16" (m16n8k16) or "tf32" (m16n8k8). a: 32 x 4 uint32, b: 32 x 2
// uint32, c and d: 32 x 4 float, lane-major: each lane's registers, as the caller packed them.
void mma(const std::string& kind, const void* a, const void* b, const void* c, void* d);

// The simulator's layout formulas: for each lane, the (row, col) of each element of fragment
// `what` ("a_m16n8k16", "b_m16n8k16", "cd_m16n8", "a_m16n8k8_tf32", "b_m16n8k8_tf32",
// "ldmatrix", "ldmatrix_trans").
std::vector<std::vector<std::pair<int, int>>> layout(const std::string& what);

}  // namespace ptx_probe
