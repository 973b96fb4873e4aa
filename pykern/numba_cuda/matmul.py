"""Matrix multiply in Numba CUDA (variants arrive with the matmul issue)."""
