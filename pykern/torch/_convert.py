"""The tensor boundary: torch tensors in, pykern's arrays to the kernels, torch tensors out.

CPU tensors go to pykern as NumPy views (``t.numpy()``, zero-copy) and come back with
``torch.from_numpy``; CUDA tensors go as themselves (pykern reads them through ``__dlpack__``,
handing torch its launch stream, and returns a torch tensor). pykern never copies implicitly,
so the adapter makes a non-contiguous tensor contiguous (a copy, the one this adapter makes:
torch hands backward passes expanded or transposed gradients).
"""
import contextlib

import numpy as np
import torch


def as_array(t: torch.Tensor):
    """A C-contiguous array pykern accepts, sharing ``t``'s memory when it already is one."""
    # Ordered for the common case (a contiguous CPU tensor: about 2 us, half what device.type and
    # a separate detach cost), as a small layer's step converts some thirty tensors.
    if t.is_cpu:
        if t.dtype == torch.bfloat16:
            raise TypeError("a bfloat16 CPU tensor has no NumPy dtype, and pykern's CPU backend computes in "
                            "float32 or float64: pass x.float(), or a CUDA tensor")
        return t.detach().numpy() if t.is_contiguous() else t.detach().contiguous().numpy()
    t = t.detach()
    return t if t.is_contiguous() else t.contiguous()


def as_tensor(result) -> torch.Tensor:
    """pykern's result as a tensor: NumPy arrays are wrapped (zero-copy), torch tensors pass."""
    if isinstance(result, np.ndarray):
        return torch.from_numpy(result)
    if isinstance(result, torch.Tensor):
        return result
    raise TypeError(f"pykern returned a {type(result).__name__}; the torch adapter expects a NumPy "
                    "array or a torch tensor")


@contextlib.contextmanager
def on_current_stream(*tensors):
    """Order pykern's kernels with torch's current CUDA stream, whichever backend runs them.

    pykern reads a CUDA tensor through DLPack with torch's current stream as the consumer
    stream: the cuda backend launches on that stream itself, but the numba backend launches on
    Numba's default stream, the legacy default stream, which is torch's default stream. Under
    ``torch.cuda.stream(s)`` (s is not ordered with the legacy stream: torch creates its streams
    non-blocking) torch's default stream therefore waits for ``s`` before the kernels and ``s``
    waits for it after, so the order is the one torch would give on either backend (for cuda
    the waits are redundant, and cheap). Nothing to do on torch's default stream, nor for CPU
    tensors.
    """
    devices = {t.device for t in tensors if t is not None and t.device.type == "cuda"}
    if not devices:
        yield
        return
    device = devices.pop()
    current = torch.cuda.current_stream(device)
    default = torch.cuda.default_stream(device)
    if current == default:
        yield
        return
    default.wait_stream(current)
    try:
        yield
    finally:
        current.wait_stream(default)
