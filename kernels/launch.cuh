// Thin named wrappers for the three CUDA constructs a host C++ compiler cannot parse, so the
// same kernel files also build into the CPU simulator pykern._cuda_sim (csrc/sim/,
// docs/simulator.md). Under nvcc they expand to exactly the CUDA they name:
//   PYKERN_LAUNCH(grid, block, smem, stream, kernel)(args...)  kernel<<<grid, block, smem, stream>>>(args...)
//   PYKERN_SHARED(type, name, dims)                             __shared__ type name dims
//   PYKERN_EXTERN_SHARED(align, type, name)                     extern __shared__ __align__(align) type name[]
// The kernel goes last in PYKERN_LAUNCH so that template arguments, commas included, need no
// parentheses. The simulator needs PYKERN_SHARED to find each block's shared arrays (it
// refills them with NaN at every block start, so a read of data no thread of this block wrote
// shows up as NaN).
#pragma once

#ifdef PYKERN_CUDA_SIM
#define PYKERN_LAUNCH(grid, block, smem, stream, ...) \
  ::pykern_sim::make_launch(grid, block, smem, stream, __VA_ARGS__, #__VA_ARGS__)
#define PYKERN_SHARED(type, name, dims)              \
  static type name dims;                             \
  static unsigned long long name##_pksim_epoch = 0;  \
  ::pykern_sim::fresh_shared(&name, sizeof(name), name##_pksim_epoch)
#define PYKERN_EXTERN_SHARED(align, type, name) \
  type* const name = static_cast<type*>(::pykern_sim::dynamic_smem(align))
#else
#define PYKERN_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define PYKERN_SHARED(type, name, dims) __shared__ type name dims
#define PYKERN_EXTERN_SHARED(align, type, name) extern __shared__ __align__(align) type name[]
#endif
