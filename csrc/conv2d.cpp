// Bindings for kernels/conv2d.cu (variants arrive with the conv2d issue).
#include "common.h"

namespace pykern {
void bind_conv2d(pybind11::module_& /*m*/) {}
}  // namespace pykern
