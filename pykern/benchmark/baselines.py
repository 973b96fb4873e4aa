"""Library baselines timed in the same run as the variants, as their yardstick: NumPy/BLAS and
torch on the CPU, cuBLAS through CuPy and cuBLAS/cuDNN through torch on a GPU. Each op's spec
lists its own (``OpSpec.baselines``, built with pykern/ops/_baselines.py); here are whether each
library can run and the settings it runs with. Each is optional: a missing library gives the
reason instead of a time."""
from __future__ import annotations

import sys
from functools import lru_cache
from typing import Optional

from ..ops import SPECS
from ..ops._baselines import Baseline


def all_baselines(ops=None) -> list[Baseline]:
    """The baselines of ``ops`` (default: every op), from their specs, in the order they list
    them: per op and device, the first one that runs is the one the ratio refers to, the others
    are timed alongside for context."""
    return [b for op in (ops or SPECS) for b in SPECS[op].baselines()]


# Settings that change what the baselines compute, per library module; every result file states
# those of the libraries installed (baseline_settings).
BASELINE_SETTINGS = {
    "torch": "torch: torch.backends.cudnn.allow_tf32 = False and torch.backends.cuda.matmul.allow_tf32 = "
             "False (fp32 baselines compute in fp32, not TF32); torch.backends.cudnn.benchmark = True "
             "(cuDNN picks its fastest algorithm during the untimed check run)",
    "cupy": "cupy: CUPY_TF32 is left unset (cuBLAS computes fp32 in fp32)",
}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it (torch takes seconds)."""
    import importlib.util
    return module in sys.modules or importlib.util.find_spec(module) is not None


def baseline_settings() -> list:
    """The notes of BASELINE_SETTINGS for the libraries installed here: a note on torch's TF32
    switches describes no baseline on a machine without torch."""
    return [note for module, note in BASELINE_SETTINGS.items() if _installed(module)]


@lru_cache(maxsize=None)
def _lib_reason(lib: str) -> Optional[str]:
    """None when the baseline library can run here, else why not."""
    if lib == "numpy":
        return None
    if lib in ("torch", "torch_cpu"):
        try:
            import torch
        except Exception as e:
            return f"torch is not installed or does not import ({type(e).__name__}: {e})"
        if lib == "torch":
            if not torch.cuda.is_available():
                return "torch sees no CUDA GPU (torch.cuda.is_available() is False)"
            _torch_settings(torch)
        return None
    if lib == "cupy":
        try:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "cupy sees no CUDA GPU"
        except Exception as e:
            return f"cupy is not installed or finds no GPU ({type(e).__name__}: {e})"
        return None
    return f"unknown baseline library {lib!r}"


def _torch_settings(torch) -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
