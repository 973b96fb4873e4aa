"""Drop-in modules: torch.nn's Conv2d, Linear and ReLU computed by pykern's kernels.

Each subclasses the torch module, so the constructor arguments, parameters, initialization and
state-dict keys are torch's own: swapping ``nn.Conv2d`` for ``pykern.torch.nn.Conv2d`` is one
line, and a state dict saved from either loads into the other. Extra keyword-only arguments:
``backend`` ("auto", "numpy", "numba", "cuda") and ``variant`` (None: the backend's default).
"""
from typing import Optional

import torch
import torch.nn.functional as F

from . import ops


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d on pykern's conv2d; ``activation="relu"`` fuses a ReLU after the bias."""

    def __init__(self, *args, backend: str = "auto", variant: Optional[str] = None,
                 activation: Optional[str] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.backend, self.variant, self.activation = backend, variant, activation

    def _conv_forward(self, input, weight, bias):
        padding = self.padding
        if self.padding_mode != "zeros" or isinstance(padding, str):
            # Non-zero padding modes and padding="same" (possibly uneven) are torch's own pad,
            # as in torch's Conv2d; the convolution then runs unpadded.
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            input, padding = F.pad(input, self._reversed_padding_repeated_twice, mode=mode), 0
        return ops.conv2d(input, weight, bias, stride=self.stride, padding=padding, dilation=self.dilation,
                          groups=self.groups, activation=self.activation, backend=self.backend,
                          variant=self.variant)

    def extra_repr(self):
        extra = f", backend={self.backend!r}, variant={self.variant!r}"
        return super().extra_repr() + extra + (f", activation={self.activation!r}" if self.activation else "")


class Linear(torch.nn.Linear):
    """torch.nn.Linear on pykern's matmul (x @ w.T with the transpose_b flag: no copy of w)."""

    def __init__(self, *args, backend: str = "auto", variant: Optional[str] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.backend, self.variant = backend, variant

    def forward(self, input):
        return ops.linear(input, self.weight, self.bias, backend=self.backend, variant=self.variant)

    def extra_repr(self):
        return super().extra_repr() + f", backend={self.backend!r}, variant={self.variant!r}"


class ReLU(torch.nn.ReLU):
    """torch.nn.ReLU on pykern's relu. ``inplace=True`` is accepted for drop-in use but the
    result is a new tensor (the input is left as it was)."""

    def __init__(self, inplace: bool = False, *, backend: str = "auto", variant: Optional[str] = None):
        super().__init__(inplace)
        self.backend, self.variant = backend, variant

    def forward(self, input):
        return ops.relu(input, backend=self.backend, variant=self.variant)

    def extra_repr(self):
        return ", ".join(filter(None, [super().extra_repr(), f"backend={self.backend!r}", f"variant={self.variant!r}"]))
