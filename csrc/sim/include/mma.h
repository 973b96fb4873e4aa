// Simulator stand-in for the CUDA toolkit header of this name (see ../sim_mma.h).
#pragma once
#include "../sim_mma.h"
