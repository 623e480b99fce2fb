"""Activation functions by name (the ``act_fn`` config field).

>>> import torch
>>> get_act_fn("relu")(torch.tensor([-1.0, 2.0]))
tensor([0., 2.])
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lenswidget.errors import InvalidOptionError


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "gelu_new": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "quick_gelu": _quick_gelu,
}


def get_act_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation called ``name``; unknown names raise InvalidOptionError."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise InvalidOptionError("act_fn", name, list(ACTIVATIONS)) from None
