// Simulator stand-in for the CUDA toolkit header of this name (see ../sim_fp16.h).
#pragma once
#include "../sim_fp16.h"
