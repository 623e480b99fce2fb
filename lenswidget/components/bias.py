"""Skip adding biases that are all zero (most pretrained LLMs have none).

TransformerLens models always carry biases so that weight processing can fold into them;
for models whose biases are zero this saves one output-sized add per linear layer. The
all-zero check is cached on the parameter and redone whenever it changes (its version
counter or storage changes). A bias that needs a gradient is always used.

>>> import torch
>>> b = torch.nn.Parameter(torch.zeros(3), requires_grad=False)
>>> maybe_bias(b) is None
True
>>> with torch.no_grad():
...     _ = b.add_(1)
>>> maybe_bias(b) is b
True
"""

from __future__ import annotations

from typing import Optional

import torch

from lenswidget.components.versioning import tensor_version


def maybe_bias(b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``b``, or None when it is all zeros and no gradient flows to it."""
    if b is None or (b.requires_grad and torch.is_grad_enabled()):
        return b
    key = (tensor_version(b), b.data_ptr(), b.device)
    cached = getattr(b, "_lw_zero", None)
    if cached is None or cached[0] != key:
        cached = (key, not bool(b.any()))
        try:
            b._lw_zero = cached
        except AttributeError:  # pragma: no cover - plain tensors without __dict__
            return b
    return None if cached[1] else b
