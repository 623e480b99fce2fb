"""SAEs given to the SAE views (residual explorer, patcher, feature dashboard).

The views take lenswidget :class:`~lenswidget.sae.SAE` objects or SAELens ones (converted
with ``SAE.from_saelens``, sharing their weights), on any model with the SAE's hook: a
plain ``HookedTransformer`` is enough, since the views read activations from a cache and
use ``lenswidget.sae``'s maths on them. ``check`` refuses a mismatched SAE up front with
the same checks as ``HookedSAETransformer.add_sae``: hook names, widths, dtype, device.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

import torch

from ..errors import ConfigError, InvalidOptionError, ShapeMismatchError, UnknownNameError

_LABEL = re.compile(r"^blocks\.(\d+)\.(?:(attn|mlp)\.)?hook_(\w+)$")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def as_sae(obj: Any) -> Any:
    """A lenswidget SAE from a lenswidget or SAELens SAE (else a TypeError naming what was given)."""
    from ..sae import SAE
    from ..sae.saelens import is_saelens_sae

    if isinstance(obj, SAE):
        return obj
    if is_saelens_sae(obj):
        cached = getattr(obj, "_lenswidget_sae", None)
        if cached is None:
            cached = SAE.from_saelens(obj)
            obj.__dict__["_lenswidget_sae"] = cached
        return cached
    raise TypeError(f"expected a lenswidget.SAE (or a SAELens SAE), got {type(obj).__name__}")


def check(model: Any, sae: Any) -> Any:
    """``sae`` as a lenswidget SAE that fits ``model`` (hooks exist, widths and device match)."""
    from ..sae.widths import hook_device, hook_width

    sae = as_sae(sae)
    sae.check()
    cfg = sae.cfg
    flat = cfg.reshape_activations == "hook_z"
    for role, name, width in (("hook_name", cfg.hook_name, cfg.d_in), ("hook_name_out", cfg.hook_name_out, cfg.d_out)):
        if name not in model.hook_dict or ".hook_sae_" in name:
            raise UnknownNameError(f"hook for the SAE's {role}", name,
                                   [n for n in model.hook_dict if ".hook_sae_" not in n])
        got = hook_width(model, name, z_flat=flat)
        if got is not None and got != width:
            raise ShapeMismatchError(f"the SAE's {'d_in' if role == 'hook_name' else 'd_out'}={width} does not match "
                                     f"hook {name!r}, whose activation has width {got} on this model")
        dev = hook_device(model, name)
        if dev is not None and dev.type != sae.device.type:
            raise ConfigError(f"the SAE for {cfg.hook_name!r} is on {sae.device} but the model computes {name!r} on "
                              f"{dev}; move it with sae.to({str(dev)!r})")
    return sae


def check_all(model: Any, saes: Any) -> list:
    """A list of checked SAEs from one SAE or an iterable of them; hook names must be distinct."""
    items = [saes] if not isinstance(saes, (list, tuple)) else list(saes)
    out = [check(model, s) for s in items]
    names = [s.cfg.hook_name for s in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise InvalidOptionError("saes (two SAEs read the same hook)", dup, ["one SAE per hook"])
    return out


def attached(model: Any) -> list:
    """The SAEs attached to a ``HookedSAETransformer`` (``model.acts_to_saes``), else []."""
    table = getattr(model, "acts_to_saes", None)
    return list(table.values()) if isinstance(table, dict) else []


def label(sae: Any) -> str:
    """Short name of an SAE's hook: ``L12 resid_post``, ``L8 mlp_out``, ``L3 z`` (else the hook name)."""
    name = str(sae.cfg.hook_name)
    m = _LABEL.match(name)
    text = f"L{m.group(1)} {m.group(3)}" if m else name
    if sae.cfg.is_transcoder:
        out = _LABEL.match(str(sae.cfg.hook_name_out))
        text += f" → {out.group(3) if out else sae.cfg.hook_name_out}"
    return text


def labels(saes: Iterable[Any]) -> list[str]:
    return [label(s) for s in saes]


def stop_layer(hook: str, n_layers: int) -> Optional[int]:
    """The ``stop_at_layer`` that still computes ``hook`` (None: run the whole model)."""
    m = _BLOCK.match(hook)
    if m:
        return min(int(m.group(1)) + 1, n_layers)
    return 0 if hook in ("hook_embed", "hook_pos_embed") else None


@torch.no_grad()
def hook_activation(model: Any, hook: str, tokens: torch.Tensor) -> torch.Tensor:
    """The activation at ``hook`` on ``tokens`` [batch, pos], from a forward pass stopped after it."""
    stop = stop_layer(hook, int(model.cfg.n_layers))
    kwargs = {} if stop is None else {"stop_at_layer": stop}
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=[hook], return_cache_object=False,
                                    **kwargs)
    return cache[hook]


def top_effects(model: Any, sae: Any, idx: int, k: int) -> tuple[list[str], torch.Tensor, list[str], torch.Tensor]:
    """``(promoted, values, suppressed, values)``: the ``k`` tokens feature ``idx``'s decoder
    direction raises / lowers most, strongest first. The numbers are
    :func:`lenswidget.sae.attribution.feature_logit_effects` (sae-core's one implementation);
    this only picks the extremes and their strings."""
    from ..sae.attribution import feature_logit_effects
    from .residual.answers import token_strings

    effect = feature_logit_effects(model, sae, [idx])[0].float().cpu()
    k = min(int(k), effect.numel())
    up, down = effect.topk(k), (-effect).topk(k)
    return token_strings(model, up.indices), up.values, token_strings(model, down.indices), -down.values
