"""How components call their hook points when a hook may only be watching.

:func:`is_hooked` says whether anything (a forward hook or a forward pre-hook) is attached.
:func:`watch` passes a tensor through a hook point and says whether the hooks changed it, so
a component can keep its exact fast result when hooks only read (e.g. caching), and use the
hooks' values when they edit. In float16/bfloat16 this keeps a cached run bit-identical to an
unhooked one.

>>> from lenswidget.hooks import HookPoint
>>> p = HookPoint()
>>> x = torch.ones(2)
>>> _ = p.add_hook(lambda t, hook: None)
>>> watch(p, x)[1]
False
"""

from __future__ import annotations

from typing import Optional

import torch

from lenswidget.components.versioning import tensor_version


def is_hooked(point) -> bool:
    """Whether anything (a forward hook or a forward pre-hook) is attached to ``point``."""
    return point is not None and bool(point._forward_hooks or point._forward_pre_hooks)


def watch(point, x: torch.Tensor, dtype: Optional[torch.dtype] = None) -> tuple[torch.Tensor, bool]:
    """``(value, changed)``: ``point``'s output for ``x`` (shown to hooks in ``dtype``, default
    ``x.dtype``) and whether a hook replaced or edited it. Unchanged, ``value`` is ``x`` itself."""
    if not is_hooked(point):
        return x, False
    dtype = x.dtype if dtype is None else dtype
    shown = x.to(dtype) if dtype != x.dtype else x
    version = tensor_version(shown)
    reference = None
    if version < 0:  # inference tensors have no version counter: compare with a copy
        reference = shown.clone()
    out = point(shown)
    if out is shown:
        edited = tensor_version(shown) != version if reference is None else not torch.equal(shown, reference)
        if not edited:
            return x, False
    return (out.to(x.dtype) if out.dtype != x.dtype else out), True
