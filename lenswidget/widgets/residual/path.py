"""Component labels of the residual-stream explorer, and the drill path each one opens.

Labels follow the cache API: ``embed``, ``pos_embed``, ``{l}_attn_out``, ``{l}_mlp_out``
(``decompose_resid``), ``L{l}H{h}`` (``stack_head_results``), ``L{l}N{n}``
(``stack_neuron_results``). Opening a head or a neuron also opens its layer, so the path
is at most two labels deep: ``["3_attn_out", "L3H2"]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...errors import OutOfRangeError, UnknownNameError

_SUBLAYER = re.compile(r"^(\d+)_(attn|mlp)_out$")
_HEAD = re.compile(r"^L(\d+)H(\d+)$")
_NEURON = re.compile(r"^L(\d+)N(\d+)$")
EMBEDS = ("embed", "pos_embed")


@dataclass(frozen=True)
class Shape:
    """What exists in the model: layers, heads, neurons, MLPs, embeddings."""

    n_layers: int
    n_heads: int
    d_mlp: int
    has_mlp: bool
    embeds: tuple[str, ...]

    @classmethod
    def of(cls, model: Any, embeds: tuple[str, ...]) -> "Shape":
        cfg = model.cfg
        has_mlp = not getattr(cfg, "attn_only", False)
        return cls(int(cfg.n_layers), int(cfg.n_heads), int(getattr(cfg, "d_mlp", 0) or 0) if has_mlp else 0,
                   has_mlp, embeds)

    def component_labels(self) -> list[str]:
        out = list(self.embeds)
        for l in range(self.n_layers):
            out.append(f"{l}_attn_out")
            if self.has_mlp:
                out.append(f"{l}_mlp_out")
        return out


@dataclass(frozen=True)
class Pick:
    """A parsed component: ``kind`` is embed, attn, mlp, head or neuron."""

    kind: str
    label: str
    layer: int | None = None
    index: int | None = None  # the head or neuron number

    @property
    def path(self) -> list[str]:
        if self.kind == "head":
            return [f"{self.layer}_attn_out", self.label]
        if self.kind == "neuron":
            return [f"{self.layer}_mlp_out", self.label]
        return [self.label]


def parse(label: Any, shape: Shape) -> Pick:
    """The component named ``label``, or a typed error saying what would be valid."""
    if not isinstance(label, str):
        raise UnknownNameError("component", label, shape.component_labels())
    if label in shape.embeds:
        return Pick("embed", label)
    m = _SUBLAYER.match(label)
    if m and (m.group(2) == "attn" or shape.has_mlp):
        layer = _layer(int(m.group(1)), shape, label)
        return Pick(m.group(2), label, layer)
    m = _HEAD.match(label)
    if m:
        layer = _layer(int(m.group(1)), shape, label)
        head = int(m.group(2))
        if head >= shape.n_heads:
            raise OutOfRangeError("head", head, 0, shape.n_heads - 1, f"in component {label!r}")
        return Pick("head", label, layer, head)
    m = _NEURON.match(label)
    if m and shape.has_mlp:
        layer = _layer(int(m.group(1)), shape, label)
        neuron = int(m.group(2))
        if neuron >= shape.d_mlp:
            raise OutOfRangeError("neuron", neuron, 0, shape.d_mlp - 1, f"in component {label!r}")
        return Pick("neuron", label, layer, neuron)
    valid = shape.component_labels() + [f"L{l}H{h}" for l in range(shape.n_layers) for h in range(shape.n_heads)]
    hint = "neurons are 'L{layer}N{neuron}'" if shape.has_mlp else "this model has no MLP layers"
    raise UnknownNameError("component", label, valid, hint)


def _layer(layer: int, shape: Shape, label: str) -> int:
    if layer >= shape.n_layers:
        raise OutOfRangeError("layer", layer, 0, shape.n_layers - 1, f"in component {label!r}")
    return layer


def level_of(path: list[str], shape: Shape) -> tuple[str, int | None]:
    """``("components", None)``, ``("heads", layer)`` or ``("neurons", layer)`` for a path."""
    if path:
        first = parse(path[0], shape)
        if first.kind == "attn":
            return "heads", first.layer
        if first.kind == "mlp":
            return "neurons", first.layer
    return "components", None
