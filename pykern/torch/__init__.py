"""pykern for PyTorch: pykern's kernels as torch custom operators and drop-in nn modules.

    import pykern.torch as pkt
    y = pkt.conv2d(x, w, b, stride=1, padding=1, activation="relu")   # autograd works
    model.conv1 = pkt.nn.Conv2d(1, 8, 3, padding=1, backend="numpy")   # same args, same state dict

Optional: install torch first (the [torch] extra does not name it, see _require_torch), then
``pip install "pykern[torch]"``. ``import pykern`` never imports torch; this package does. CPU
tensors run on the NumPy backend (zero-copy through ``.numpy()``), CUDA tensors on the cuda
(else numba) backend, ordered with torch's current stream. See ops.py for the operators. From
this import on, pykern's threaded CPU kernels run on torch's OpenMP threads, not a second pool
beside them (pykern.cpu._compiled.share_torch_threads; PYKERN_CPU_POOL=own to keep its own).
"""
TORCH_PIN = "torch==2.13.0"  # the build the README installs first (its CPU build on a CPU-only machine)
MIN_TORCH = (2, 4)  # torch.library.register_fake (ops.py)


def _require_torch() -> None:
    """ImportError naming what to install: the [torch] extra does not install torch itself."""
    why = ("the [torch] extra does not install torch, so that it never pulls PyPI's multi-GB CUDA build onto "
           f"a CPU-only machine: install it first, e.g. '{TORCH_PIN} --index-url "
           f"https://download.pytorch.org/whl/cpu' (the CPU build), or '{TORCH_PIN}' (a CUDA build on Linux), "
           "then pip install \".[torch]\"")
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"pykern.torch needs PyTorch >= {MIN_TORCH[0]}.{MIN_TORCH[1]}, which is not installed; "
                          + why, name="torch") from e
    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    if version < MIN_TORCH:
        raise ImportError(f"pykern.torch needs PyTorch >= {MIN_TORCH[0]}.{MIN_TORCH[1]}, found {torch.__version__}; "
                          + why, name="torch")


_require_torch()

from ..cpu import _compiled  # noqa: E402
from . import nn  # noqa: E402
from .ops import conv2d, linear, matmul, relu  # noqa: E402

# pykern's threaded CPU kernels run on torch's OpenMP threads from here on (see the function).
_compiled.share_torch_threads()

__all__ = ["conv2d", "linear", "matmul", "relu", "nn"]
