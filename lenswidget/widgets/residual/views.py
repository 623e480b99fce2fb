"""What the explorer shows, as plain tensors with labels (before encoding for the browser).

Each function reads an :class:`~.residual_attrib.Attribution` (or the logit lens) and
returns per-prompt values; :func:`reduce` then picks one prompt or averages them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from .answers import token_strings
from .attrib import Attribution
from .lens import LogitLens
from .path import Pick, Shape

N_TOP_TOKENS = 10


def reduce(values: torch.Tensor, prompt: Optional[int]) -> torch.Tensor:
    """``values[..., prompt]``, or the mean over the last (prompt) axis when ``prompt`` is None."""
    return values.mean(-1) if prompt is None else values[..., prompt]


@dataclass
class Bars:
    level: str  # components | heads | neurons
    layer: Optional[int]
    labels: list[str]
    kinds: list[str]  # embed | attn | mlp | head | bias | neuron | remainder
    per_prompt: torch.Tensor  # [n_bars, batch]
    target: torch.Tensor  # [batch]: what the bars add up to
    target_label: str


def metric_label(attr: Attribution) -> str:
    return "logit − b_U" if attr.answers.incorrect is None else "logit diff − b_U diff"


def component_bars(attr: Attribution) -> Bars:
    values, labels = attr.components()
    kinds = ["embed" if l in ("embed", "pos_embed") else ("attn" if l.endswith("_attn_out") else "mlp") for l in labels]
    return Bars("components", None, labels, kinds, values, attr.actual(), f"model: {metric_label(attr)}")


def head_bars(attr: Attribution, layer: int) -> Bars:
    heads = attr.heads()[layer]  # [n_heads, batch]
    labels = [f"L{layer}H{h}" for h in range(heads.shape[0])] + [f"L{layer} b_O"]
    values = torch.cat([heads, attr.head_bias(layer)[None]])
    kinds = ["head"] * heads.shape[0] + ["bias"]
    return Bars("heads", layer, labels, kinds, values, attr.component(f"{layer}_attn_out"), f"{layer}_attn_out")


def neuron_bars(attr: Attribution, layer: int, prompt: Optional[int], k: int, pinned: Optional[int]) -> Bars:
    """The top-``k`` neurons by |attribution| (plus ``pinned``), and the remainder (other neurons + b_out)."""
    values = attr.neurons(layer)  # [d_mlp, batch]
    k = max(1, min(int(k), values.shape[0]))
    order = reduce(values, prompt).abs().topk(k).indices.tolist()
    if pinned is not None and pinned not in order:
        order.append(pinned)
    order.sort()
    shown = values[order]
    rest = values.sum(0) - shown.sum(0) + attr.neuron_bias(layer)
    labels = [f"L{layer}N{n}" for n in order] + [f"L{layer} other + b_out"]
    kinds = ["neuron"] * len(order) + ["remainder"]
    return Bars("neurons", layer, labels, kinds, torch.cat([shown, rest[None]]),
                attr.component(f"{layer}_mlp_out"), f"{layer}_mlp_out")


def bars_for(attr: Attribution, level: str, layer: Optional[int], prompt: Optional[int], k: int,
             pick: Optional[Pick]) -> Bars:
    if level == "heads":
        return head_bars(attr, layer)  # type: ignore[arg-type]
    if level == "neurons":
        pinned = pick.index if pick is not None and pick.kind == "neuron" else None
        return neuron_bars(attr, layer, prompt, k, pinned)  # type: ignore[arg-type]
    return component_bars(attr)


def detail(attr: Attribution, pick: Pick, prompt: Optional[int]) -> dict[str, Any]:
    """A head's pattern and direct effect on the logits, or a neuron's activation and effect."""
    layer, index = pick.layer, pick.index
    assert layer is not None and index is not None
    shown = 0 if prompt is None else prompt
    if pick.kind == "head":
        value = reduce(attr.heads()[layer, index], prompt)
        pattern = attr.cache["pattern", layer][shown, index].float().cpu()
        extra = {"pattern": pattern, "row": pattern[attr.pos], "tokens": attr.run.str_tokens[shown]}
    else:
        value = reduce(attr.neurons(layer)[index], prompt)
        extra = {"activation": reduce(attr.activation(layer, index), prompt)}
    up, down = attr.top_effects(pick.kind, layer, index, prompt, N_TOP_TOKENS)
    return {
        "kind": pick.kind, "label": pick.label, "layer": layer, "index": index, "prompt": shown,
        "value": float(value), "pos": attr.pos,
        "promoted": token_strings(attr.model, up.indices), "promoted_ids": up.indices,
        "promoted_values": up.values,
        "suppressed": token_strings(attr.model, down.indices), "suppressed_ids": down.indices,
        "suppressed_values": -down.values,
        **extra,
    }


def lens_curve(lens: LogitLens, attr: Attribution, prompt: Optional[int]) -> dict[str, Any]:
    _, labels = lens.curve_stack()
    curve = lens.curve(attr.answers)
    out: dict[str, Any] = {"labels": labels, "prompt": prompt}
    for key, values in curve.items():
        out[key] = reduce(values, prompt)
        out[f"{key}_per_prompt"] = values
    return out


def lens_grid(lens: LogitLens, prompt: int, k: int) -> dict[str, Any]:
    grid = lens.grid(prompt, k)
    return {**grid, "prompt": prompt, "tokens": lens.run.str_tokens[prompt]}


def shape_of(attr: Attribution) -> Shape:
    _, labels = attr.components()
    return Shape.of(attr.model, tuple(l for l in labels if l in ("embed", "pos_embed")))
