"""Matrix multiply in CUDA C++ (variants arrive with the matmul issue)."""
