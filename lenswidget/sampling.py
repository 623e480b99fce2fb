"""Choosing the next token from logits: greedy, temperature, top-k, top-p, frequency penalty.

>>> import torch
>>> sample_logits(torch.tensor([[0.0, 5.0, 1.0]]), temperature=0.0)
tensor([1])
"""

from __future__ import annotations

from typing import Optional

import torch

from lenswidget.errors import InvalidOptionError


def sample_logits(
    final_logits: torch.Tensor,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    temperature: float = 1.0,
    freq_penalty: float = 0.0,
    repetition_penalty: float = 1.0,
    tokens: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Next token ids [batch] from ``final_logits`` [batch, d_vocab].

    ``temperature == 0`` is greedy. ``freq_penalty`` subtracts ``freq_penalty * count`` of each
    token already in ``tokens`` [batch, pos]. ``repetition_penalty`` (HF style, applied first,
    also when greedy) divides the positive logits of tokens already in ``tokens`` by it and
    multiplies their negative logits by it.
    """
    if repetition_penalty <= 0:
        raise InvalidOptionError("repetition_penalty", repetition_penalty, ["a number > 0"])
    if repetition_penalty != 1.0 and tokens is not None:
        seen = torch.zeros_like(final_logits, dtype=torch.bool)
        seen.scatter_(1, tokens.to(final_logits.device), True)
        penalised = torch.where(final_logits > 0, final_logits / repetition_penalty, final_logits * repetition_penalty)
        final_logits = torch.where(seen, penalised, final_logits)
    if temperature < 0:
        raise InvalidOptionError("temperature", temperature, ["a number >= 0"])
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise InvalidOptionError("top_p", top_p, ["a number in (0, 1]"])
    if top_k is not None and top_k <= 0:
        raise InvalidOptionError("top_k", top_k, ["a positive int"])
    if temperature == 0.0:
        return final_logits.argmax(dim=-1)
    logits = final_logits.float() / temperature
    if freq_penalty and tokens is not None:
        counts = torch.zeros_like(logits)
        counts.scatter_add_(1, tokens.to(logits.device), torch.ones_like(tokens, dtype=logits.dtype))
        logits = logits - freq_penalty * counts
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum > top_p
        drop[..., 1:] = drop[..., :-1].clone()
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


__all__ = ["sample_logits"]
