"""Direct logit attribution (DLA) in one call.

>>> dla = direct_logit_attribution(model, "The capital of France is", " Paris")   # doctest: +SKIP
>>> dla.top(3)                                                                  # doctest: +SKIP
[('29_mlp_out', 3.1), ('27_attn_out', 1.4), ('embed', 0.9)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Union

import torch

from ...cache import ActivationCache
from ...errors import InvalidOptionError
from ...utils import Slice, SliceInput

__all__ = ["DirectLogitAttribution", "direct_logit_attribution"]

UNITS = ("component", "layer", "head")
TokenInput = Union[str, int, torch.Tensor]


@dataclass
class DirectLogitAttribution:
    """Attributions [component, *batch_and_pos] aligned with ``labels``; ``unit`` names the split."""

    attribution: torch.Tensor
    labels: List[str]
    unit: str

    def top(self, k: int = 5) -> List[tuple]:
        """The ``k`` largest ``(label, value)`` pairs, values meaned over batch/pos dims.

        >>> DirectLogitAttribution(torch.tensor([[1.0], [3.0]]), ["a", "b"], "component").top(1)
        [('b', 3.0)]
        """
        per = self.attribution.reshape(self.attribution.shape[0], -1).float().mean(-1)
        k = max(0, min(int(k), per.numel()))
        vals, idx = torch.topk(per, k)
        return [(self.labels[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist())]

    def __repr__(self) -> str:
        return f"DirectLogitAttribution(unit={self.unit!r}, shape={tuple(self.attribution.shape)}, top={self.top(3)})"


def _stack(cache: ActivationCache, unit: str, pos: Slice):
    if unit == "component":
        return cache.decompose_resid(pos_slice=pos, return_labels=True)
    if unit == "layer":
        return cache.accumulated_resid(incl_mid=True, pos_slice=pos, return_labels=True)
    return cache.stack_head_results(pos_slice=pos, incl_remainder=True, return_labels=True)


def _align(tokens: Any, cache: ActivationCache, pos: Slice) -> Any:
    """Give a per-prompt token tensor [batch] a position axis when several positions are kept."""
    if isinstance(tokens, torch.Tensor) and tokens.ndim == 1 and tokens.numel() > 1 and pos.mode != "int":
        return tokens[:, None] if cache.has_batch_dim else tokens
    return tokens


def direct_logit_attribution(
    model: Any,
    input: Union[str, List[str], torch.Tensor, None] = None,
    answer_tokens: Optional[TokenInput] = None,
    incorrect_tokens: Optional[TokenInput] = None,
    *,
    unit: str = "component",
    pos: Union[SliceInput, Slice] = -1,
    cache: Optional[ActivationCache] = None,
) -> DirectLogitAttribution:
    """How much each component writes to the answer logit (or answer - incorrect logit diff).

    ``unit``: ``"component"`` (embeds + each attn/mlp output), ``"layer"`` (accumulated
    residual after each sublayer, i.e. the logit lens) or ``"head"`` (each head + remainder).
    ``pos`` selects positions (default the last; None keeps all). The model runs once with
    caching unless ``cache`` is given. A complete decomposition (component / head units)
    sums to ``logit[answer] - b_U[answer]``: the unembedding bias is produced by no component.
    Use a processed (fold_ln) model so the final norm's weights are part of W_U.
    """
    if unit not in UNITS:
        raise InvalidOptionError("unit", unit, UNITS)
    if answer_tokens is None:
        raise InvalidOptionError("answer_tokens", None, ["a single-token string", "a token id", "a tensor of ids"])
    if cache is None:
        if input is None:
            raise InvalidOptionError("input (needed when no cache is given)", None, ["str", "list of str", "token tensor"])
        _, cache = model.run_with_cache(input)
    pos = pos if isinstance(pos, Slice) else Slice(pos)
    stack, labels = _stack(cache, unit, pos)
    attr = cache.logit_attrs(
        stack,
        _align(answer_tokens, cache, pos),
        None if incorrect_tokens is None else _align(incorrect_tokens, cache, pos),
        pos_slice=pos,
    )
    return DirectLogitAttribution(attr, labels, unit)
