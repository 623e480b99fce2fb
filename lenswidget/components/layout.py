"""Parameters whose memory layout matches ``nn.Linear`` while their shape follows TransformerLens.

TransformerLens shapes multiply on the right (``x @ W``), e.g. ``W_Q`` is
``[n_heads, d_model, d_head]``. Storing them as a transposed view of an ``[out, in]`` buffer
lets the forward pass call ``F.linear`` on a free reshape, without copying weights.
The layout survives ``load_state_dict`` (``copy_``) and ``.to(dtype/device)``.

>>> p = linear_param((3, 2, 4), storage_order=(0, 2, 1))  # storage [3, 4, 2]
>>> p.shape, p.transpose(1, 2).is_contiguous()
(torch.Size([3, 2, 4]), True)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


def linear_param(shape: Sequence[int], storage_order: Sequence[int], dtype=None, device=None) -> nn.Parameter:
    """A parameter of ``shape`` whose contiguous storage is ``shape`` permuted by ``storage_order``."""
    storage_shape = [shape[i] for i in storage_order]
    storage = torch.empty(storage_shape, dtype=dtype, device=device)
    inverse = [0] * len(storage_order)
    for pos, dim in enumerate(storage_order):
        inverse[dim] = pos
    return nn.Parameter(storage.permute(*inverse))
