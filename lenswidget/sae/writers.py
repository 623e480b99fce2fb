"""How a hook point's activation is written into the residual stream (a linear map, no bias).

Feature attribution pushes decoder rows, the error term and the decoder bias through this map,
then through the final norm's scale and ``W_U``. Supported output hooks:

* the residual stream and what is added to it: ``hook_resid_pre/mid/post``, ``hook_attn_out``,
  ``hook_mlp_out``, ``hook_embed``, ``hook_pos_embed`` (identity);
* ``attn.hook_z`` (flattened heads, through ``W_O``) and ``mlp.hook_post`` (through ``W_out``),
  when no post-norm sits between them and the residual stream.
"""

from __future__ import annotations

from typing import Callable

import torch

from lenswidget.errors import InvalidOptionError

__all__ = ["residual_writer", "WRITER_HOOKS"]

_IDENTITY = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out", "hook_embed",
             "hook_pos_embed")
WRITER_HOOKS = _IDENTITY + ("attn.hook_z", "mlp.hook_post")


def _layer(name: str) -> int:
    return int(name.split(".")[1])


def residual_writer(model, hook_name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f(v [..., width]) -> [..., d_model]``: the residual-stream vector that ``v`` at ``hook_name`` adds.

    For ``attn.hook_z`` the width is ``n_heads * d_head`` (heads flattened, as hook_z SAEs see them).
    """
    cfg = model.cfg
    if hook_name.endswith(_IDENTITY):
        return lambda v: v
    post_norms = bool(getattr(cfg, "use_normalization_before_and_after", False))
    if hook_name.endswith("attn.hook_z") and not post_norms:
        W_O = model.blocks[_layer(hook_name)].attn.W_O  # [n_heads, d_head, d_model]
        W = W_O.reshape(-1, W_O.shape[-1])
        return lambda v: v.to(W.dtype) @ W
    if hook_name.endswith("mlp.hook_post") and not post_norms:
        W_out = model.blocks[_layer(hook_name)].mlp.W_out  # [d_mlp, d_model]
        return lambda v: v.to(W_out.dtype) @ W_out
    raise InvalidOptionError(
        f"output hook for feature attribution ({hook_name!r} does not write linearly to the residual stream"
        + (" on a model with post-norms" if post_norms else "") + "); supported hooks end with",
        hook_name.split(".")[-1], WRITER_HOOKS)
