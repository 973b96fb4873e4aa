# pykern._cpu: the compiled CPU kernels (kernels/cpu/*.cpp, one file per op, each ending with its
# variant table) bound by csrc/cpu/module.cpp. Host C++ only, no CUDA. Included from the
# top-level CMakeLists.txt before any CUDA-only early return.
#
# No -march: the build must run on any CPU of its architecture. Each kernel file compiles its
# bodies once per instruction set through __attribute__((target(...))) (kernels/cpu/cpu.h) and
# picks one at run time, so the flags here are only the optimization level and the FP contract.
file(GLOB PYKERN_CPU_KERNELS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/kernels/cpu/*.cpp)
# NO_EXTRAS: no LTO (it would add link time to every rebuild; the kernels are not cross-file).
pybind11_add_module(_cpu MODULE NO_EXTRAS ${CMAKE_CURRENT_SOURCE_DIR}/csrc/cpu/module.cpp ${PYKERN_CPU_KERNELS})
target_compile_features(_cpu PRIVATE cxx_std_17)
target_include_directories(_cpu PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/kernels/cpu)
# -O3: the loops must vectorize. -ffp-contract=fast: a*b+c may become one FMA (at most one
# rounding instead of two; the accuracy contract is per output, never bit equality with NumPy).
# -fno-trapping-math: compares and selects on NaN may vectorize (they raise no exception we read).
# -Wno-psabi: the vector types of wider ISAs stay inside their own target functions.
target_compile_options(_cpu PRIVATE -O3 -ffp-contract=fast -fno-trapping-math -Wno-psabi)
find_package(Threads REQUIRED)
target_link_libraries(_cpu PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
install(TARGETS _cpu LIBRARY DESTINATION pykern)
message(STATUS "pykern: building pykern._cpu (compiled CPU kernels) with ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
