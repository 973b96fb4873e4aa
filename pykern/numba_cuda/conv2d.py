"""2-D convolution in Numba CUDA (variants arrive with the conv2d issue)."""
