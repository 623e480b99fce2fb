"""A feature's top contexts as shown: tokens around the top token, with the feature's
activation on every one of them.

The scan kept only ``(value, window, position)`` per context; the activations of every
token are recomputed here with one batch over the feature's ``k`` windows
(``feature_activations`` of that one feature), so memory stays bounded by ``d_sae x k``
however large the corpus is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .scan import Scan, padded_acts
from .windows import shown_range

BEFORE, AFTER = 24, 8  # tokens shown before / after the top token


@dataclass(frozen=True)
class Context:
    value: float  # the feature's maximum over the window (its top token's activation)
    doc: int  # corpus string
    window: int  # the window (``Windows.texts[window]``) the tokens are from
    tokens: list[str]  # the shown slice of the window
    acts: torch.Tensor  # [len(tokens)] the feature's activation on each shown token
    top: int  # index of the top token in ``tokens``
    start: int  # the slice's first token, counted within the corpus string (BOS excluded)
    clipped_left: bool
    clipped_right: bool

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "doc": self.doc, "window": self.window, "tokens": list(self.tokens),
                "acts": self.acts.tolist(),
                "top": self.top, "start": self.start}


@torch.no_grad()
def contexts(model: Any, sae: Any, scan: Scan, feature: int, before: int = BEFORE, after: int = AFTER) -> list[Context]:
    """The feature's top contexts, best first (none when it never fired on the corpus)."""
    picks = scan.top.of(feature)
    if not picks:
        return []
    w = scan.windows
    texts = [w.texts[win] for _, win, _ in picks]
    acts, _ = padded_acts(model, sae, texts, w.first, features=[feature])  # [k, len, 1]
    out = []
    for i, (value, win, pos) in enumerate(picks):
        n = int(w.lengths[win])
        start, stop = shown_range(n, pos, before, after, w.first)
        strs = [str(s) for s in model.to_str_tokens(texts[i])][start:stop]
        out.append(Context(value, int(w.doc[win]), int(win), strs, acts[i, start:stop, 0].clone(), pos - start,
                           int(w.offset[win]) + start - w.first, start > w.first, stop < n))
    return out
