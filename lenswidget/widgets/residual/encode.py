"""Wire payloads of the residual explorer: small float32 vectors through the binary codec.

Only what is on screen travels: the bars of the open level (tens of values), one head's
pattern (``uint8``, ``n x n``) and the logit-lens rows. Token strings travel as JSON
strings and are rendered as text.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ...errors import OutOfRangeError
from .. import codec
from .answers import token_strings
from .views import Bars, reduce

PINNED_KINDS = ("bias", "remainder")
SORTS = ("abs", "value", "layer")
DEFAULT_SORT = "abs"  # the components that matter first


def _magnitude(v: float) -> float:
    return abs(v) if v == v else -1.0  # NaN last


def order(values: list[float], kinds: list[str], sort: str) -> list[int]:
    """Display order of bars (src/residual/order.ts does the same): by |value| (``abs``) or by
    value, descending, or as given (``layer``); bias/remainder bars always stay last."""
    idx = list(range(len(values)))
    if sort not in ("abs", "value"):
        return idx
    free = [i for i in idx if kinds[i] not in PINNED_KINDS]
    pinned = [i for i in idx if kinds[i] in PINNED_KINDS]
    key = (lambda i: -_magnitude(values[i])) if sort == "abs" else (lambda i: -values[i])
    return sorted(free, key=key) + pinned


def bars(b: Bars, prompt: Optional[int]) -> dict[str, Any]:
    return {"level": b.level, "layer": b.layer, "labels": b.labels, "kinds": b.kinds, "prompt": prompt,
            "values": codec.encode(reduce(b.per_prompt, prompt), "float32")}


def check(b: Bars, prompt: Optional[int], metric: str) -> dict[str, Any]:
    return {"sum": float(reduce(b.per_prompt, prompt).sum()), "target": float(reduce(b.target, prompt)),
            "label": b.target_label, "metric": metric}


def detail(d: Optional[dict[str, Any]]) -> dict[str, Any]:
    if d is None:
        return {}
    out = {k: d[k] for k in ("kind", "label", "layer", "index", "prompt", "value", "pos", "promoted", "suppressed")}
    out["promoted_values"] = codec.encode(d["promoted_values"], "float32")
    out["suppressed_values"] = codec.encode(d["suppressed_values"], "float32")
    if d["kind"] == "head":
        out["tokens"] = list(d["tokens"])
        out["row"] = codec.encode(d["row"], "float32")
        out["pattern"] = _probabilities(d["pattern"])
    else:
        out["activation"] = float(d["activation"])
    return out


def heads(grid: Optional[torch.Tensor]) -> dict[str, Any]:
    return {} if grid is None else codec.encode(grid, "float32")


def lens(curve: Optional[dict[str, Any]], metric: str) -> dict[str, Any]:
    if curve is None:
        return {}
    out: dict[str, Any] = {"labels": curve["labels"], "prompt": curve["prompt"], "metric": metric}
    for key in ("rank", "prob", "logit", "diff"):
        if key in curve:
            out[key] = codec.encode(curve[key], "float32")
    return out


def lens_grid(grid: Optional[dict[str, Any]], model: Any) -> dict[str, Any]:
    """Top-k tokens per cell as indices into ``vocab``, the distinct token strings shown."""
    if grid is None:
        return {}
    unique, inverse = torch.unique(grid["ids"], return_inverse=True)
    return {"prompt": grid["prompt"], "labels": grid["labels"], "tokens": list(grid["tokens"]),
            "vocab": token_strings(model, unique), "vocab_ids": [int(i) for i in unique.tolist()],
            "ids": codec.encode(inverse.float(), "float32"), "probs": codec.encode(grid["probs"], "float16")}


def _probabilities(pattern: torch.Tensor) -> dict[str, Any]:
    try:
        return codec.encode(pattern, "uint8")
    except OutOfRangeError:  # not a probability pattern (should not happen): keep it exact
        return codec.encode(pattern, "float16")
