"""Input checks shared by every sweep: tokens, hook names, cache entries, shapes.

Each check raises a typed error from :mod:`lenswidget.errors` naming what was wrong and
what would be valid, before any forward pass runs.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InvalidOptionError, ShapeMismatchError, UnknownNameError
from ..utils import get_act_name

__all__ = ["check_tokens", "hook_name", "clean_activation", "batch_pos_of", "short_names"]

# hook suffix -> (batch dim, pos dims) of its activation
_PATTERN_LIKE = ("hook_pattern", "hook_attn_scores")


def check_tokens(tokens: Any) -> torch.Tensor:
    """``corrupted_tokens`` as a [batch, pos] integer tensor."""
    if not isinstance(tokens, torch.Tensor):
        raise InvalidOptionError("corrupted_tokens type", type(tokens).__name__, ["torch.Tensor [batch, pos]"])
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise InvalidOptionError("corrupted_tokens dtype", tokens.dtype, ["an integer dtype (token ids)"])
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[-1] == 0:
        raise ShapeMismatchError(f"corrupted_tokens must have shape [batch, pos]; got {tuple(tokens.shape)}")
    return tokens


def short_names(model) -> list:
    """Short activation names with a hook in block 0 of ``model`` (``resid_pre``, ``z``...)."""
    out = []
    for name in getattr(model, "hook_dict", {}):
        if name.startswith("blocks.0."):
            short = name.split(".")[-1].replace("hook_", "")
            out.append(short)
    return out


def hook_name(model, activation_name: str, layer: int) -> str:
    """``get_act_name(activation_name, layer)``, checked against the model's hook points."""
    if not isinstance(activation_name, str):
        raise InvalidOptionError("activation_name type", type(activation_name).__name__, ["str"])
    if "." in activation_name and activation_name in model.hook_dict:  # a full hook name (e.g. an SAE's)
        return activation_name
    try:
        name = get_act_name(activation_name, layer)
    except Exception:
        raise UnknownNameError("activation name", activation_name, short_names(model)) from None
    if name not in model.hook_dict:
        raise UnknownNameError(
            "activation name",
            activation_name,
            short_names(model),
            hint=f"it resolves to hook {name!r}, which this model does not have",
        )
    return name


def clean_activation(clean_cache, name: str, activation_name: str) -> torch.Tensor:
    """``clean_cache[name]``, or an UnknownNameError telling how to cache it."""
    try:
        present = name in clean_cache
    except TypeError:
        present = False
    if not present:
        keys = list(clean_cache.keys()) if hasattr(clean_cache, "keys") else []
        suffix = name.split(".")[-1]
        raise UnknownNameError(
            "clean_cache entry",
            name,
            keys,
            hint=(
                f"patching {activation_name!r} needs it: run model.run_with_cache(clean_tokens) without a "
                f"names_filter, or with names_filter=lambda name: name.endswith({suffix!r})"
            ),
        )
    return clean_cache[name]


def batch_pos_of(name: str, act: torch.Tensor):
    """``(batch, pos)`` implied by an activation's shape (pattern: [batch, head, dest, src])."""
    if name.endswith(_PATTERN_LIKE):
        if act.ndim != 4 or act.shape[-1] != act.shape[-2]:
            return None
        return int(act.shape[0]), int(act.shape[-1])
    if act.ndim < 3:
        return None
    return int(act.shape[0]), int(act.shape[1])


def check_clean_shape(tokens: torch.Tensor, name: str, act: torch.Tensor) -> None:
    """The clean activation must come from prompts shaped like ``tokens``."""
    bp = batch_pos_of(name, act)
    want = (int(tokens.shape[0]), int(tokens.shape[1]))
    if bp != want:
        implied = "" if bp is None else f" (from tokens of shape {bp})"
        raise ShapeMismatchError(
            f"corrupted_tokens have shape {want} [batch, pos] but clean_cache[{name!r}] has shape "
            f"{tuple(act.shape)}{implied}; clean and corrupted prompts must have the same batch size and "
            "length, and the cache needs its batch dim (no remove_batch_dim)"
        )
