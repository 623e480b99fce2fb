"""SAEs given to the SAE views (residual explorer, patcher, feature dashboard).

The views run on a :class:`~lenswidget.sae.HookedSAETransformer` (as in SAELens: load the
model with ``HookedSAETransformer.from_pretrained``) and take lenswidget or SAELens SAEs,
checked and converted as ``add_sae`` does (``resolve_sae``, ``model._check_sae``), so a
mismatched SAE is refused before anything runs. Every number
comes from ``lenswidget.sae``: activations from ``run_with_cache_with_saes`` (error term on,
so the model's run is unchanged) or ``feature_activations`` (the dashboard's corpus pass),
attributions from :mod:`lenswidget.sae.attribution`, patching from :mod:`lenswidget.sae.patching`.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Iterable, Optional, Sequence

import torch

from ..errors import InvalidOptionError

_LABEL = re.compile(r"^blocks\.(\d+)\.(?:(attn|mlp)\.)?hook_(\w+)$")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def panels_esm(saes: Sequence[Any]) -> str:
    """The SAE panels' bundle (``static/saes.js``, src/saes/) as a ``data:`` module URL for a
    widget with ``saes``, else ``""``.

    The residual explorer's and the patcher's ``Frame`` imports it at run time (src/shared/
    frame.ts), so their own bundles carry only that loader.
    """
    from .assets import STATIC

    path = STATIC / "saes.js"
    if not saes or not path.is_file():
        return ""
    return "data:text/javascript;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def check(model: Any, sae: Any) -> Any:
    """``sae`` as a lenswidget SAE that fits ``model``: ``resolve_sae`` (a ``HookedSAETransformer`` is
    required) and ``add_sae``'s checks (names, widths, dtype, device)."""
    from ..sae.transformer import resolve_sae

    lw = resolve_sae(model, sae)
    model._check_sae(lw)
    return lw


def check_all(model: Any, saes: Any) -> list:
    """Checked SAEs from one SAE or a list of them (one per input hook)."""
    items = list(saes) if isinstance(saes, (list, tuple)) else [saes]
    out = [check(model, s) for s in items]
    names = [str(s.cfg.hook_name) for s in out]
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


def acts_name(sae: Any) -> str:
    """Cache key of the SAE's feature activations (under its output hook, as in SAELens)."""
    return f"{sae.cfg.hook_name_out}.hook_sae_acts_post"


def stop_layer(saes: Iterable[Any], n_layers: int) -> Optional[int]:
    """The ``stop_at_layer`` after which every one of ``saes`` has run (None: run to the end)."""
    layers = []
    for s in saes:
        for name in (s.cfg.hook_name, s.cfg.hook_name_out):
            m = _BLOCK.match(str(name))
            if not m:
                return None
            layers.append(int(m.group(1)) + 1)
    return min(max(layers), n_layers) if layers else None


@torch.no_grad()
def sae_cache(model: Any, saes: Sequence[Any], tokens: torch.Tensor, names: Sequence[str], full: bool = False) -> Any:
    """``run_with_cache_with_saes`` of ``tokens`` with ``saes`` (error term on: the model's own run),
    caching only ``names``; stopped after the last SAE unless ``full``."""
    stop = None if full else stop_layer(saes, int(model.cfg.n_layers))
    kwargs = {} if stop is None else {"stop_at_layer": stop}
    _, cache = model.run_with_cache_with_saes(tokens.to(model.cfg.device), saes=list(saes), use_error_term=True,
                                              names_filter=list(names), **kwargs)
    return cache


def top_effects(model: Any, sae: Any, idx: int, k: int) -> tuple[list[str], torch.Tensor, list[str], torch.Tensor]:
    """``(promoted, values, suppressed, values)``: the ``k`` tokens feature ``idx``'s decoder
    direction raises / lowers most (:func:`lenswidget.sae.attribution.feature_logit_effects`)."""
    from ..sae.attribution import feature_logit_effects

    fx = feature_logit_effects(model, sae, int(idx), k=int(k))
    up, down = fx["promoted"], fx["suppressed"]
    return ([str(t) for t, _ in up], torch.tensor([float(v) for _, v in up]),
            [str(t) for t, _ in down], torch.tensor([float(v) for _, v in down]))
