"""Answer and incorrect tokens: one id per prompt, each exactly one token.

A string must be a single token; otherwise :class:`~lenswidget.errors.TokenizationError`
shows how it tokenises. A single value is used for every prompt; a list gives one per
prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ...errors import OutOfRangeError, ShapeMismatchError, TokenizationError


@dataclass(frozen=True)
class Answers:
    """``ids`` [batch] long; ``incorrect`` [batch] or None; their token strings."""

    ids: torch.Tensor
    text: list[str]
    incorrect: Optional[torch.Tensor] = None
    incorrect_text: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        return "logit" if self.incorrect is None else "logit_diff"

    def key(self) -> tuple:
        bad = None if self.incorrect is None else tuple(self.incorrect.tolist())
        return tuple(self.ids.tolist()), bad

    def for_batch(self, model: Any, n_prompts: int) -> "Answers":
        """The same answers for ``n_prompts`` prompts (a single shared token broadcasts)."""
        return resolve(model, _shared(self.ids, "answer", n_prompts),
                       None if self.incorrect is None else _shared(self.incorrect, "incorrect", n_prompts), n_prompts)


def resolve(model: Any, answer: Any, incorrect: Any, n_prompts: int) -> Answers:
    """Token ids and strings of ``answer`` (and ``incorrect``) for ``n_prompts`` prompts."""
    ids = token_ids(model, answer, n_prompts, "answer")
    bad = None if incorrect is None else token_ids(model, incorrect, n_prompts, "incorrect")
    return Answers(ids, token_strings(model, ids), bad, tuple(token_strings(model, bad)) if bad is not None else ())


def token_ids(model: Any, value: Any, n_prompts: int, what: str) -> torch.Tensor:
    """``[n_prompts]`` ids from a string, an id, or one per prompt (list / tensor)."""
    if isinstance(value, (str, int, np.integer)) and not isinstance(value, bool):
        items: Sequence[Any] = [value]
    elif isinstance(value, torch.Tensor):
        if value.is_floating_point():
            raise TokenizationError(f"{what}: expected integer token ids, got a {value.dtype} tensor")
        items = [int(v) for v in value.reshape(-1).tolist()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise TokenizationError(f"{what}: expected a single-token string, a token id, or one per prompt; "
                                f"got {type(value).__name__}")
    if len(items) not in (1, n_prompts):
        raise ShapeMismatchError(f"{len(items)} {what} tokens for {n_prompts} prompts; give one, or one per prompt")
    ids = [_one_id(model, v, what) for v in items]
    if len(ids) == 1:
        ids = ids * n_prompts
    return torch.tensor(ids, dtype=torch.long)


def _one_id(model: Any, value: Any, what: str) -> int:
    d_vocab = int(model.cfg.d_vocab_out)
    if isinstance(value, str):
        if value == "":
            raise TokenizationError(f"{what}: the empty string is not a token")
        if getattr(model, "tokenizer", None) is None:
            raise TokenizationError(f"{what}: {value!r} needs a tokenizer to look up; pass a token id")
        try:
            return int(model.to_single_token(value))
        except TokenizationError as exc:
            raise TokenizationError(f"{what}: {exc}") from None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if not 0 <= int(value) < d_vocab:
            raise OutOfRangeError(f"{what} token id", int(value), 0, d_vocab - 1)
        return int(value)
    raise TokenizationError(f"{what}: expected a single-token string or a token id, got {type(value).__name__}")


def token_strings(model: Any, ids: torch.Tensor) -> list[str]:
    """The string of each id (``#id`` when the model has no tokenizer)."""
    flat = [int(i) for i in ids.reshape(-1).tolist()]
    if getattr(model, "tokenizer", None) is None:
        return [f"#{i}" for i in flat]
    return [str(s) for s in model.tokenizer.batch_decode([[i] for i in flat], clean_up_tokenization_spaces=False)]


def _shared(ids: torch.Tensor, what: str, n_prompts: int) -> Any:
    unique = sorted(set(int(i) for i in ids.tolist()))
    if len(ids) == n_prompts:
        return ids
    if len(unique) == 1:
        return unique[0]
    raise ShapeMismatchError(f"the {len(ids)} per-prompt {what} tokens do not fit {n_prompts} new prompts; "
                             "set the answer again (one token for all, or one per prompt)")
