"""Small helpers shared across lenswidget (TransformerLens ``utils``-compatible).

>>> get_act_name("resid_pre", 5)
'blocks.5.hook_resid_pre'
>>> get_act_name("z", 2, "attn")
'blocks.2.attn.hook_z'
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

_LAYER_TYPE_ALIAS = {"a": "attn", "m": "mlp", "b": "", "block": "", "blocks": "", "attention": "attn"}
_ACT_ALIAS = {
    "attn": "pattern",
    "attn_logits": "attn_scores",
    "key": "k",
    "query": "q",
    "value": "v",
    "mlp_pre": "pre",
    "mlp_mid": "mid",
    "mlp_post": "post",
}
_ATTN_ACTS = {"k", "v", "q", "z", "rot_k", "rot_q", "result", "pattern", "attn_scores"}
_MLP_ACTS = {"pre", "post", "mid", "pre_linear"}
_NORM_ACTS = {"scale", "normalized"}


def get_act_name(name: str, layer: int | None = None, layer_type: str | None = None) -> str:
    """Full hook name from a short activation name.

    ``name`` may be a full hook name (returned unchanged), a short name (``"resid_pre"``,
    ``"pattern"``/``"attn"``, ``"q"``, ``"post"``, ``"scale"`` ...) or a compact one such as
    ``"k6a"`` (= ``k``, layer 6, attn). ``layer_type`` is ``"attn"``/``"a"``, ``"mlp"``/``"m"``,
    ``"ln1"``, ``"ln2"``... and is only needed where the name alone is ambiguous.

    >>> get_act_name("scale", 3, "ln1"), get_act_name("scale"), get_act_name("k6a")
    ('blocks.3.ln1.hook_scale', 'ln_final.hook_scale', 'blocks.6.attn.hook_k')
    """
    if ("." in name or name.startswith("hook_")) and layer is None and layer_type is None:
        return name
    m = re.match(r"([a-z_]+?)(\d+)([a-z]*)$", name)
    if m is not None and layer is None:
        name, layer, layer_type = m.group(1), int(m.group(2)), m.group(3) or None
    name = _ACT_ALIAS.get(name, name)
    out = "" if layer is None else f"blocks.{int(layer)}."
    if name in _ATTN_ACTS:
        layer_type = "attn"
    elif name in _MLP_ACTS:
        layer_type = "mlp"
    elif layer_type in _LAYER_TYPE_ALIAS:
        layer_type = _LAYER_TYPE_ALIAS[layer_type]
    if layer_type:
        out += f"{layer_type}."
    out += f"hook_{name}"
    if name in _NORM_ACTS and layer is None:
        out = f"ln_final.{out}"
    return out


def lm_cross_entropy_loss(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    per_token: bool = False,
) -> torch.Tensor:
    """Next-token cross-entropy of ``logits`` [batch, pos, vocab] against ``tokens`` [batch, pos].

    Returns the mean loss (a scalar), or with ``per_token=True`` the loss per predicted
    position, shape [batch, pos - 1]. ``attention_mask`` (1 = real token) excludes padding
    from the mean (a position counts when both it and its target are real tokens).
    """
    log_probs = F.log_softmax(logits.float(), dim=-1)
    target = tokens[..., 1:].to(log_probs.device)
    per = -log_probs[..., :-1, :].gather(-1, target.unsqueeze(-1)).squeeze(-1)
    if attention_mask is not None:
        mask = attention_mask.to(per.device)
        mask = (mask[..., 1:] * mask[..., :-1]).to(per.dtype)
        per = per * mask
        if per_token:
            return per
        return per.sum() / mask.sum().clamp(min=1)
    return per if per_token else per.mean()
