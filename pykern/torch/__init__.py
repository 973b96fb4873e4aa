"""pykern for PyTorch: pykern's kernels as torch custom operators and drop-in nn modules.

    import pykern.torch as pkt
    y = pkt.conv2d(x, w, b, stride=1, padding=1, activation="relu")   # autograd works
    model.conv1 = pkt.nn.Conv2d(1, 8, 3, padding=1, backend="numpy")   # same args, same state dict

Optional: ``pip install "pykern[torch]"``. ``import pykern`` never imports torch; this package
does. CPU tensors run on the NumPy backend (zero-copy through ``.numpy()``), CUDA tensors on the
cuda (else numba) backend, ordered with torch's current stream. See ops.py for the operators.
"""
from . import nn
from .ops import conv2d, linear, matmul, relu

__all__ = ["conv2d", "linear", "matmul", "relu", "nn"]
