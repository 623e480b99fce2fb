"""A feature's top contexts as shown: tokens around the top token, with the feature's
activation on every one of them.

The scan kept only ``(value, window, position)`` per context; the activations of every
token are recomputed here with one forward pass over the feature's ``k`` windows (a
single batch), so memory stays bounded by ``d_sae x k`` however large the corpus is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .scan import Scan, feature_acts
from .windows import shown_range

BEFORE, AFTER = 24, 8  # tokens shown before / after the top token


@dataclass(frozen=True)
class Context:
    value: float  # the feature's maximum over the window (its top token's activation)
    doc: int  # corpus string
    tokens: list[str]  # the shown slice of the window
    acts: torch.Tensor  # [len(tokens)] the feature's activation on each shown token
    top: int  # index of the top token in ``tokens``
    start: int  # the slice's first token, counted within the corpus string (BOS excluded)
    clipped_left: bool
    clipped_right: bool

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "doc": self.doc, "tokens": list(self.tokens), "acts": self.acts.tolist(),
                "top": self.top, "start": self.start}


@torch.no_grad()
def contexts(model: Any, sae: Any, scan: Scan, feature: int, before: int = BEFORE, after: int = AFTER) -> list[Context]:
    """The feature's top contexts, best first (none when it never fired on the corpus)."""
    picks = scan.top.of(feature)
    if not picks:
        return []
    w = scan.windows
    rows = torch.tensor([win for _, win, _ in picks])
    lengths = w.lengths()[rows]
    tokens = w.tokens[rows, : int(lengths.max())]
    acts = feature_acts(model, sae, tokens)[..., feature]  # [k, len]
    first = 1 if w.has_bos else 0
    out = []
    for i, (value, win, pos) in enumerate(picks):
        n = int(lengths[i])
        start, stop = shown_range(n, pos, before, after, first)
        ids = tokens[i, start:stop]
        strs = _strings(model, ids)
        out.append(Context(value, int(w.doc[win]), strs, acts[i, start:stop].clone(), pos - start,
                           int(w.offset[win]) + start - first, start > first, stop < n))
    return out


def _strings(model: Any, ids: torch.Tensor) -> list[str]:
    tok = model.tokenizer
    return [str(s) for s in tok.batch_decode([[int(i)] for i in ids.tolist()], clean_up_tokenization_spaces=False)]
