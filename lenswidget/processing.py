"""Weight processing: rewrites of a state dict that leave the model's log-probabilities unchanged.

Every function takes a state dict in lenswidget's (TransformerLens) naming plus the model's
config (or the model itself) and returns the state dict, updated in place: entries are
replaced by new tensors and the old tensors are left untouched, so a state dict that aliases
a live model's parameters stays safe to process. ``inplace=True`` instead writes into the
tensors (no extra memory; only for tensors nobody else holds).

``process_state_dict`` runs the steps in the canonical order and reports the normalization
type the model needs afterwards; ``load_and_process_state_dict`` and ``process_weights_``
apply that to a model.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, MutableMapping

import torch

from lenswidget.errors import ConfigError

logger = logging.getLogger("lenswidget.processing")

StateDict = MutableMapping[str, torch.Tensor]

#: Normalization type a model has after its norm weights were folded away.
FOLDED_NORM = {"LN": "LNPre", "RMS": "RMSPre", "LNPre": "LNPre", "RMSPre": "RMSPre"}


def _cfg(cfg_or_model: Any) -> Any:
    """The config of a model, or the config itself (a dict is accepted too)."""
    cfg = getattr(cfg_or_model, "cfg", cfg_or_model)
    return SimpleNamespace(**cfg) if isinstance(cfg, dict) else cfg


def _gqa(cfg: Any) -> bool:
    n_kv = getattr(cfg, "n_key_value_heads", None)
    return n_kv is not None and n_kv != cfg.n_heads


def _attn_keys(cfg: Any, layer: int) -> dict[str, str]:
    """State-dict keys of one layer's attention weights (GQA models store K/V as ``_W_K``...)."""
    p = f"blocks.{layer}.attn."
    kv = "_" if _gqa(cfg) else ""
    return {
        "W_Q": p + "W_Q", "b_Q": p + "b_Q",
        "W_K": p + kv + "W_K", "b_K": p + kv + "b_K",
        "W_V": p + kv + "W_V", "b_V": p + kv + "b_V",
        "W_O": p + "W_O", "b_O": p + "b_O",
    }


def _fold_into(sd: StateDict, w_key: str, b_key: str | None, scale: torch.Tensor,
               shift: torch.Tensor | None, center: bool, inplace: bool) -> None:
    """Fold ``x * scale + shift`` into a reader ``x @ W + b`` whose input axis is ``-2`` of W."""
    W = sd[w_key]
    if shift is not None:
        if b_key is None:
            if bool((shift != 0).any()):
                raise ConfigError(
                    f"cannot fold a LayerNorm bias into {w_key!r}: it has no bias parameter. "
                    "Load with fold_ln=False for this model"
                )
        else:
            b = sd.get(b_key)
            extra = (shift[None, :] @ W).squeeze(-2)  # shift @ W, over the d_model axis
            sd[b_key] = extra if b is None else (b.add_(extra) if inplace else b + extra)
    W = W.mul_(scale[:, None]) if inplace else W * scale[:, None]
    if center:
        mean = W.mean(-2, keepdim=True)
        W = W.sub_(mean) if inplace else W - mean
    sd[w_key] = W


def fold_layer_norm(state_dict: StateDict, cfg: Any, fold_biases: bool = True,
                    center_weights: bool = True, inplace: bool = False) -> StateDict:
    """Fold each norm's weight (and LayerNorm bias) into the linear maps that read its output.

    ``ln1`` folds into W_Q/W_K/W_V (and their biases), ``ln2`` into W_in and W_gate,
    ``ln_final`` into W_U/b_U. With ``center_weights`` the reading weights are also centred
    along d_model, which is free because LayerNorm's output has zero mean. RMS norms have
    neither a bias nor centring, so both options are ignored for them. Norms already absent
    from the state dict (e.g. a ``*Pre`` model) are skipped; Gemma-2 style post-norms
    (``ln1_post``, ``ln2_post``) are left alone since nothing linear reads them.
    """
    cfg = _cfg(cfg)
    is_ln = getattr(cfg, "normalization_type", "LN") in ("LN", "LNPre")
    fold_biases, center_weights = fold_biases and is_ln, center_weights and is_ln
    sd = state_dict

    def norm(prefix: str) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        w = sd.pop(prefix + ".w", None)
        b = sd.pop(prefix + ".b", None)
        if w is None:
            return None
        return w, (b if fold_biases else None)

    for layer in range(cfg.n_layers):
        ln1 = norm(f"blocks.{layer}.ln1")
        if ln1 is not None:
            k = _attn_keys(cfg, layer)
            for m in "QKV":
                _fold_into(sd, k[f"W_{m}"], k[f"b_{m}"], ln1[0], ln1[1], center_weights, inplace)
        ln2 = norm(f"blocks.{layer}.ln2")
        if ln2 is not None:
            p = f"blocks.{layer}.mlp."
            _fold_into(sd, p + "W_in", p + "b_in", ln2[0], ln2[1], center_weights, inplace)
            if p + "W_gate" in sd:
                _fold_into(sd, p + "W_gate", None, ln2[0], ln2[1], center_weights, inplace)
    lnf = norm("ln_final")
    if lnf is not None:
        _fold_into(sd, "unembed.W_U", "unembed.b_U", lnf[0], lnf[1], center_weights, inplace)
    return sd


def center_writing_weights(state_dict: StateDict, cfg: Any, inplace: bool = False) -> StateDict:
    """Remove the mean (along d_model) of everything that writes to the residual stream.

    Valid only when every reader of the residual stream starts with a LayerNorm (which subtracts
    the mean anyway): for RMS-normalised models it would change the output, so it is skipped.
    """
    cfg = _cfg(cfg)
    if getattr(cfg, "normalization_type", "LN") not in ("LN", "LNPre"):
        logger.info("center_writing_weights skipped: normalization_type %r is not LayerNorm, "
                    "so the residual mean is not ignored by the model",
                    getattr(cfg, "normalization_type", None))
        return state_dict
    sd = state_dict

    def center(key: str) -> None:
        if key in sd:
            t = sd[key]
            mean = t.mean(-1, keepdim=True)
            sd[key] = t.sub_(mean) if inplace else t - mean

    center("embed.W_E")
    center("pos_embed.W_pos")
    for layer in range(cfg.n_layers):
        for key in ("attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out"):
            center(f"blocks.{layer}.{key}")
    return sd


def center_unembed(state_dict: StateDict, cfg: Any = None, inplace: bool = False) -> StateDict:
    """Give every position's logits zero mean over the vocabulary (softmax is shift invariant).

    Skipped for models that soft-cap their output logits: the cap is not shift invariant.
    """
    cfg = _cfg(cfg) if cfg is not None else None
    if cfg is not None and (getattr(cfg, "output_logits_soft_cap", 0) or 0) > 0:
        logger.info("center_unembed skipped: output logits are soft-capped, "
                    "so shifting them would change the probabilities")
        return state_dict
    sd = state_dict
    for key, dims in (("unembed.W_U", -1), ("unembed.b_U", -1)):
        if key in sd:
            t = sd[key]
            mean = t.mean(dims, keepdim=True)
            sd[key] = t.sub_(mean) if inplace else t - mean
    return sd


def _full_value_bias(cfg: Any, b_V: torch.Tensor) -> torch.Tensor:
    """Value bias per query head ([n_heads, d_head]); GQA shares one per key/value group."""
    if b_V.shape[0] != cfg.n_heads:
        b_V = b_V.repeat_interleave(cfg.n_heads // b_V.shape[0], dim=0)
    return b_V


def fold_value_biases(state_dict: StateDict, cfg: Any, inplace: bool = False) -> StateDict:
    """Move each head's value bias into the layer's output bias: b_O += sum_h b_V[h] @ W_O[h].

    Exact because attention weights sum to one, so the bias reaches z unchanged.
    """
    cfg = _cfg(cfg)
    sd = state_dict
    for layer in range(cfg.n_layers):
        k = _attn_keys(cfg, layer)
        if k["b_V"] not in sd or k["W_O"] not in sd:
            continue
        b_V, W_O = sd[k["b_V"]], sd[k["W_O"]]
        folded = _full_value_bias(cfg, b_V).reshape(1, -1) @ W_O.reshape(-1, W_O.shape[-1])
        b_O = sd.get(k["b_O"])
        sd[k["b_O"]] = folded[0] if b_O is None else (b_O.add_(folded[0]) if inplace else b_O + folded[0])
        sd[k["b_V"]] = b_V.zero_() if inplace else torch.zeros_like(b_V)
    return sd


def _balanced_factors(A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors (A', B') with A' @ B' == A @ B, orthogonal columns/rows sharing sqrt(singular values).

    A is [..., m, r], B is [..., r, n]; the SVD is taken of an r x r core via two QR steps.
    """
    Qa, Ra = torch.linalg.qr(A)
    Qb, Rb = torch.linalg.qr(B.transpose(-1, -2))
    U, S, Vh = torch.linalg.svd(Ra @ Rb.transpose(-1, -2))
    root = S.sqrt()
    return (Qa @ U) * root[..., None, :], root[..., :, None] * (Vh @ Qb.transpose(-1, -2))


def refactor_factored_attn_matrices(state_dict: StateDict, cfg: Any) -> StateDict:
    """Re-factor each head's W_Q W_K^T and W_V W_O into balanced SVD-based factors.

    QK: the bias-augmented [W_Q; b_Q] and [W_K; b_K] are replaced by factors with orthogonal
    columns and equal norms (same product). OV: b_V is folded into b_O, then W_V = U S and
    W_O = V^T from the SVD of W_V W_O. Only defined for models without rotary embeddings
    (rotation sits between Q and K) and without grouped key/value heads (shared K/V).
    """
    cfg = _cfg(cfg)
    if getattr(cfg, "positional_embedding_type", "standard") == "rotary":
        raise ConfigError(
            "refactor_factored_attn_matrices is not valid for rotary models: the QK circuit "
            "depends on the query and key positions. Use refactor_factored_attn_matrices=False"
        )
    if _gqa(cfg):
        raise ConfigError(
            "refactor_factored_attn_matrices is not valid with grouped-query attention "
            f"(n_key_value_heads={cfg.n_key_value_heads} < n_heads={cfg.n_heads}): heads share "
            "keys and values. Use refactor_factored_attn_matrices=False"
        )
    sd = state_dict
    fold_value_biases(sd, cfg)
    for layer in range(cfg.n_layers):
        k = _attn_keys(cfg, layer)
        W_Q, b_Q, W_K, b_K = (sd[k[n]] for n in ("W_Q", "b_Q", "W_K", "b_K"))
        Q_aug = torch.cat([W_Q, b_Q[:, None, :]], dim=1)  # [h, d_model+1, d_head]
        K_aug = torch.cat([W_K, b_K[:, None, :]], dim=1)
        Q_new, K_new_T = _balanced_factors(Q_aug, K_aug.transpose(-1, -2))
        K_new = K_new_T.transpose(-1, -2)
        sd[k["W_Q"]], sd[k["b_Q"]] = Q_new[:, :-1].contiguous(), Q_new[:, -1].contiguous()
        sd[k["W_K"]], sd[k["b_K"]] = K_new[:, :-1].contiguous(), K_new[:, -1].contiguous()
        V_new, O_new = _balanced_factors(sd[k["W_V"]], sd[k["W_O"]])
        # Put all of the scale in W_V so W_O has orthonormal rows.
        scale = O_new.norm(dim=-1, keepdim=True)  # [h, d_head, 1] = sqrt(S)
        sd[k["W_V"]] = (V_new * scale.transpose(-1, -2)).contiguous()
        sd[k["W_O"]] = (O_new / scale.clamp_min(torch.finfo(O_new.dtype).tiny)).contiguous()
    return sd


def process_state_dict(
    state_dict: StateDict,
    cfg: Any,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
    fold_value_biases: bool = True,
    refactor_factored_attn_matrices: bool = False,
    inplace: bool = False,
) -> tuple[StateDict, str | None]:
    """Apply the requested steps in order; return the state dict and the normalization type
    the model must use to run it (``"LNPre"``/``"RMSPre"`` after folding, else unchanged).

    Low-precision tensors are processed in float32 and cast back to their dtype. ``inplace``
    lets the steps write into the tensors (see the module docstring); refactoring never does.
    """
    c = _cfg(cfg)
    norm_type = getattr(c, "normalization_type", None)
    dtypes = {k: v.dtype for k, v in state_dict.items()}
    low = {torch.float16, torch.bfloat16}
    for k, v in list(state_dict.items()):
        if v.dtype in low:
            state_dict[k] = v.float()
    sd = state_dict
    if getattr(c, "use_normalization_after_only", False) and (fold_ln or center_writing_weights):
        # as TransformerLens: nothing linear reads a norm that follows its sublayer, and the
        # residual's mean is not removed by any reader
        logger.warning("fold_ln and center_writing_weights skipped: this model's norms follow the "
                       "sublayers (use_normalization_after_only), so there is nothing to fold them into")
        fold_ln = center_writing_weights = False
    if fold_ln and norm_type in ("LN", "RMS"):
        is_ln = norm_type == "LN"
        fold_layer_norm(sd, c, fold_biases=is_ln, center_weights=is_ln, inplace=inplace)
        norm_type = FOLDED_NORM[norm_type]
    elif fold_ln and norm_type not in FOLDED_NORM:
        logger.info("fold_ln skipped: normalization_type %r has no weights to fold", norm_type)
    if center_writing_weights:
        _center_writing(sd, c, inplace=inplace)
    if center_unembed:
        _center_unembed(sd, c, inplace=inplace)
    if fold_value_biases:
        _fold_value_biases(sd, c, inplace=inplace)
    if refactor_factored_attn_matrices:
        _refactor(sd, c)
    for k, v in list(sd.items()):
        original = dtypes.get(k)
        if original is not None and original != v.dtype:
            sd[k] = v.to(original)
    return sd, norm_type


_center_writing = center_writing_weights
_center_unembed = center_unembed
_fold_value_biases = fold_value_biases
_refactor = refactor_factored_attn_matrices


def load_state_dict_strict(model: Any, state_dict: StateDict, assign: bool = False) -> None:
    """Load a state dict, requiring every parameter and rejecting unknown keys.

    ``assign=True`` makes the tensors themselves the parameters (no copy): only for tensors
    nobody else holds, already on the model's device and dtype.
    """
    missing, unexpected = model.load_state_dict(dict(state_dict), strict=False, assign=assign)
    params = dict(model.named_parameters())
    missing = [k for k in missing if k in params]
    if missing or unexpected:
        raise ConfigError(
            "state dict does not match the model: "
            + (f"missing parameters {missing[:8]}" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected keys {list(unexpected)[:8]}" if unexpected else "")
        )


def load_and_process_state_dict(
    model: Any,
    state_dict: StateDict,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
    fold_value_biases: bool = True,
    refactor_factored_attn_matrices: bool = False,
) -> Any:
    """Process ``state_dict`` and load it into ``model``, switching its norms to the folded
    type (``cfg.normalization_type`` updated, ``model._rebuild_norms()`` called) if needed."""
    sd, norm_type = process_state_dict(
        dict(state_dict), model.cfg, fold_ln=fold_ln,
        center_writing_weights=center_writing_weights, center_unembed=center_unembed,
        fold_value_biases=fold_value_biases,
        refactor_factored_attn_matrices=refactor_factored_attn_matrices,
    )
    if norm_type != model.cfg.normalization_type:
        model.cfg.normalization_type = norm_type
        model._rebuild_norms()
    load_state_dict_strict(model, sd)
    return model


def process_weights_(
    model: Any,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
    fold_value_biases: bool = True,
    refactor_factored_attn_matrices: bool = False,
) -> Any:
    """Process a model's own weights in place (see :func:`load_and_process_state_dict`)."""
    params = {k: v.detach() for k, v in model.state_dict().items()}
    return load_and_process_state_dict(
        model, params, fold_ln=fold_ln, center_writing_weights=center_writing_weights,
        center_unembed=center_unembed, fold_value_biases=fold_value_biases,
        refactor_factored_attn_matrices=refactor_factored_attn_matrices,
    )
