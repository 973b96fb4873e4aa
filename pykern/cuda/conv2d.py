"""2-D convolution in CUDA C++ (variants arrive with the conv2d issue)."""
