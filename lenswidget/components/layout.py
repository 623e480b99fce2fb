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


def has_fast_layout(param: torch.Tensor, storage_order: Sequence[int]) -> bool:
    """True when ``param`` is a permuted view of a contiguous ``storage_order`` buffer."""
    return param.permute(*storage_order).is_contiguous()


def relayout_(module: nn.Module, layouts: dict) -> int:
    """Give ``module``'s parameters named in ``layouts`` ({name: storage_order}) the fast layout.

    Parameters loaded with ``load_state_dict(..., assign=True)`` or replaced via ``.data``
    arrive contiguous in TransformerLens shape; this copies each such one once into the
    ``F.linear``-friendly layout (values, dtype, device and requires_grad unchanged).
    Returns the number of parameters re-laid-out.
    """
    changed = 0
    for name, order in layouts.items():
        p = module._parameters.get(name)
        if p is None or has_fast_layout(p, order):
            continue
        new = linear_param(tuple(p.shape), order, dtype=p.dtype, device=p.device)
        with torch.no_grad():
            new.copy_(p)
        new.requires_grad_(p.requires_grad)
        module._parameters[name] = new
        changed += 1
    return changed
