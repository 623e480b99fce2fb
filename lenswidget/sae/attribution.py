"""Direct feature attribution: what each SAE feature writes to a logit (or logit difference).

For an SAE (or transcoder) whose output hook writes to the residual stream, the activation
there is ``sum_f act_f * d_f + b_dec (+ skip) + error``, with decoder rows ``d_f``. Each term is
mapped into the residual stream (:mod:`.writers`), scaled by the final norm's cached scale and
dotted with ``W_U[:, answer] - W_U[:, incorrect]``: the same maths as the cache's
``logit_attrs`` (direct logit attribution). The terms therefore sum to the component's DLA.

>>> fa = direct_feature_attribution(model, sae, "The capital of France is", " Paris")  # doctest: +SKIP
>>> fa.top(5)                      # [(feature, attribution)] at the last position   # doctest: +SKIP
>>> fa.features.sum(-1) + fa.bias + fa.skip + fa.error - fa.component               # ~0  # doctest: +SKIP

:func:`feature_logit_effects` lists the tokens a feature's decoder direction promotes and
suppresses (the dashboard's "logit effects").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Union

import torch

from lenswidget.errors import InvalidOptionError, UnknownNameError

from .transformer import resolve_sae
from .writers import residual_writer

__all__ = ["FeatureAttribution", "direct_feature_attribution", "feature_logit_effects", "logit_direction"]

TokenInput = Union[str, int, torch.Tensor]


@dataclass
class FeatureAttribution:
    """Attributions to the logit (difference), each over [batch, pos] (``features``: [batch, pos, d_sae]).

    ``component`` is the direct logit attribution of the whole activation at ``hook_name``;
    ``features.sum(-1) + bias + skip + error == component`` (to float rounding).
    """

    features: torch.Tensor
    error: torch.Tensor
    bias: torch.Tensor
    skip: torch.Tensor
    component: torch.Tensor
    acts: torch.Tensor
    hook_name: str

    def top(self, k: int = 10, pos: int = -1, batch: int = 0, absolute: bool = False) -> List[tuple]:
        """The ``k`` features with the largest attribution at (batch, pos): ``[(feature, value)]``."""
        row = self.features[batch, pos].float()
        k = max(0, min(int(k), row.numel()))
        _, idx = torch.topk(row.abs() if absolute else row, k)
        return [(int(i), float(row[i])) for i in idx.tolist()]

    def __repr__(self) -> str:
        return (f"FeatureAttribution(hook={self.hook_name!r}, features={tuple(self.features.shape)}, "
                f"top={self.top(3)})")


def logit_direction(model, answer_tokens: TokenInput, incorrect_tokens: Optional[TokenInput] = None) -> torch.Tensor:
    """``W_U[:, answer] (- W_U[:, incorrect])``: [d_model], or [batch, d_model] for per-prompt tokens."""
    d = model.tokens_to_residual_directions(answer_tokens)
    if incorrect_tokens is not None:
        bad = model.tokens_to_residual_directions(incorrect_tokens)
        if bad.shape != d.shape:
            raise InvalidOptionError("incorrect_tokens shape", tuple(bad.shape), [f"the answers' shape {tuple(d.shape)}"])
        d = d - bad
    return d


def _scaled_direction(cache, d: torch.Tensor, batch: int, pos: int) -> torch.Tensor:
    """The direction ``g`` [batch, pos, d_model] with ``logit attribution(v) = v . g`` (final norm applied)."""
    if d.dim() == 1:
        d = d[None, None]
    elif d.dim() == 2:  # one answer per prompt
        d = d[:, None]
    try:
        full = torch.broadcast_to(d, (batch, pos, d.shape[-1])).contiguous()
    except RuntimeError:
        raise InvalidOptionError("answer tokens shape", tuple(d.shape[:-1]),
                                 [f"one token, [batch={batch}], [batch, 1] or [batch, pos={pos}]"]) from None
    # centring (LayerNorm) is a symmetric projection, so it may act on the direction instead of v
    return cache.apply_ln_to_stack(full[None], layer=-1)[0]


def _need(cache, name: str, why: str) -> torch.Tensor:
    if name not in cache:
        raise UnknownNameError("cache entry", name, [k for k in cache.keys() if ".hook_sae_" in k],
                               hint=why)
    return cache[name]


def direct_feature_attribution(
    model: Any,
    sae: Any,
    input: Any = None,
    answer_tokens: Optional[TokenInput] = None,
    incorrect_tokens: Optional[TokenInput] = None,
    *,
    cache: Any = None,
) -> FeatureAttribution:
    """Each feature's direct contribution to the answer logit (minus ``incorrect_tokens``'), per position.

    Runs ``model.run_with_cache_with_saes(input, saes=[sae], use_error_term=True)`` unless ``cache``
    (from such a run, with ``ln_final.hook_scale``) is given. Use a processed (fold_ln) model so
    that ``W_U`` holds the final norm's weights.
    """
    sae = resolve_sae(model, sae)
    if answer_tokens is None:
        raise InvalidOptionError("answer_tokens", None, ["a single-token string", "a token id", "a tensor of ids"])
    out = sae.cfg.hook_name_out
    if cache is None:
        if input is None:
            raise InvalidOptionError("input (needed when no cache is given)", None, ["str", "list of str", "tokens"])
        _, cache = model.run_with_cache_with_saes(input, saes=[sae], use_error_term=True)
    hint = "run model.run_with_cache_with_saes(input, saes=[sae], use_error_term=True)"
    acts = _need(cache, f"{out}.hook_sae_acts_post", hint)
    error = _need(cache, f"{out}.hook_sae_error", hint + " (the error term must be on)")
    output = _need(cache, f"{out}.hook_sae_output", hint)
    sae_in = _need(cache, f"{out}.hook_sae_input", hint)
    write = residual_writer(model, out)
    B, T = acts.shape[:2]
    g = _scaled_direction(cache, logit_direction(model, answer_tokens, incorrect_tokens), B, T)
    g = g.to(torch.float32)
    flat = lambda t: t.flatten(-2) if sae.cfg.reshape_activations == "hook_z" and t.dim() == 4 else t  # noqa: E731
    with torch.no_grad():
        sae._norm_in(sae_in)  # the per-token output normalisation of this input, if any
        scale, shift = sae.output_affine()
        sae._norm_state = None
        scale = torch.as_tensor(scale, dtype=torch.float32)
        shift = torch.as_tensor(shift, dtype=torch.float32)
        dirs = write(sae.decoder_directions().float())  # [d_sae, d_model]
        per_unit = torch.einsum("fd,bpd->bpf", dirs, g)
        features = acts.float() * per_unit * (scale if scale.dim() == 0 else scale.float())
        bias_vec = sae.b_dec.float() * scale + shift  # [B, T, d_out] or [d_out]
        bias = (write(bias_vec if bias_vec.dim() > 1 else bias_vec.expand(B, T, -1)) * g).sum(-1)
        if sae.cfg.has_skip:
            skip = (write(sae.skip(sae_in).float()) * g).sum(-1)
        else:
            skip = torch.zeros(B, T)
        err = (write(flat(error).float()) * g).sum(-1)
        component = (write(flat(output).float()) * g).sum(-1)
    return FeatureAttribution(features, err, bias, skip, component, acts, out)


def feature_logit_effects(model: Any, sae: Any, feature: int, k: int = 10) -> dict:
    """Tokens whose logits feature ``feature``'s decoder direction raises and lowers most.

    ``{"promoted": [(token_str, value)], "suppressed": [...]}`` from ``d_f @ W_U`` (centred for
    LayerNorm models), ignoring the final norm's per-token scale.
    """
    d_sae = sae.cfg.d_sae
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < d_sae:
        from lenswidget.errors import OutOfRangeError

        raise OutOfRangeError("feature", feature, 0, d_sae - 1)
    write = residual_writer(model, sae.cfg.hook_name_out)
    with torch.no_grad():
        v = write(sae.decoder_directions()[feature].float())
        if model.cfg.normalization_type in ("LN", "LNPre"):
            v = v - v.mean()
        logits = v @ model.W_U.float()
        k = max(0, min(int(k), logits.numel()))
        top, bottom = torch.topk(logits, k), torch.topk(-logits, k)
    name = (lambda i: model.to_single_str_token(int(i))) if model.tokenizer is not None else str  # noqa: E731
    return {"promoted": [(name(i), float(v)) for v, i in zip(top.values.tolist(), top.indices.tolist())],
            "suppressed": [(name(i), -float(v)) for v, i in zip(bottom.values.tolist(), bottom.indices.tolist())]}
