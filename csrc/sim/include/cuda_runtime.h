// Simulator stand-in for the CUDA toolkit header of this name (see ../sim_runtime.h).
#pragma once
#include "../sim_runtime.h"
