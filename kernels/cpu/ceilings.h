// The CPU's measured ceilings (kernels/cpu/ceilings.cpp): micro-benchmarks, not variants. The
// binder (csrc/cpu/module.cpp) binds them as plain functions of pykern._cpu; the timing is
// Python's (pykern/benchmark/ceilings.py times them through pykern._timing.measure, the one
// timing loop), so each function here does a known amount of work and returns.
#pragma once
#include <cstdint>

#include "cpu.h"

namespace pykern {
namespace cpu {

// What one fma_peak call did: `flops` floating-point operations (2 per lane per fused
// multiply-add), on `chains` independent accumulators of `lanes` elements per thread.
struct FmaRun {
  double flops;
  double checksum;  // the accumulators' sum: finite and positive when the run was sound
  int lanes;
  int chains;
  const char* isa;
};

// `iterations` steps of every chain on each of `threads` threads, in `dtype`, on the active ISA's
// widest vectors.
FmaRun fma_peak(DType dtype, int64_t iterations, int threads);

// STREAM's kernels on float64 arrays of n elements, split into contiguous slices over `threads`.
void stream_copy(const double* a, double* c, int64_t n, int threads);                       // c = a
void stream_triad(double* a, const double* b, const double* c, double s, int64_t n, int threads);  // a = b + s*c

}  // namespace cpu
}  // namespace pykern
