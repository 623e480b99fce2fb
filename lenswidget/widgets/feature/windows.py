"""A corpus of strings cut into fixed-length token windows: the contexts the dashboard ranks.

Each string is tokenised on its own (no BOS), cut into pieces of ``ctx_len - 1`` tokens and
each piece gets the model's BOS back, so every window starts the way a prompt does. Windows
are right-padded to ``ctx_len``; ``valid`` marks the real, non-BOS positions (BOS carries the
model's massive activation and is never a feature's "top token"; padding comes after the real
tokens, so with causal attention it changes nothing before it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...errors import InvalidOptionError, OutOfRangeError, TokenizationError

MAX_CORPUS = 100_000  # strings


@dataclass(frozen=True)
class Windows:
    tokens: torch.Tensor  # [n, ctx_len] long (padded)
    valid: torch.Tensor  # [n, ctx_len] bool: real tokens other than BOS
    doc: torch.Tensor  # [n] long: index of the corpus string
    offset: torch.Tensor  # [n] long: the window's first (non-BOS) token within its string
    has_bos: bool

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_tokens(self) -> int:
        """Positions that count (real tokens, not BOS)."""
        return int(self.valid.sum())

    def lengths(self) -> torch.Tensor:
        """[n] the number of real positions of each window (BOS included)."""
        first = 1 if self.has_bos else 0
        return self.valid.sum(1) + first


def build(model: Any, corpus: Any, ctx_len: int = 64, max_windows: int | None = None) -> Windows:
    """The windows of ``corpus`` (a string or a list of strings) for ``model``'s tokenizer."""
    texts = check_corpus(corpus)
    if getattr(model, "tokenizer", None) is None:
        raise TokenizationError("the feature dashboard tokenises its corpus: the model needs a tokenizer")
    if not isinstance(ctx_len, int) or isinstance(ctx_len, bool) or not 2 <= ctx_len <= int(model.cfg.n_ctx):
        raise OutOfRangeError("ctx_len", ctx_len, 2, int(model.cfg.n_ctx), "tokens per context window")
    bos = getattr(model.tokenizer, "bos_token_id", None)
    has_bos = bos is not None and bool(getattr(model.cfg, "default_prepend_bos", True))
    step = ctx_len - 1 if has_bos else ctx_len
    pad = getattr(model.tokenizer, "pad_token_id", None)
    pad = int(pad if pad is not None else (bos if bos is not None else 0))
    rows, docs, offsets = [], [], []
    for d, text in enumerate(texts):
        ids = [int(i) for i in model.to_tokens(text, prepend_bos=False)[0].tolist()] if text else []
        for start in range(0, len(ids), step):
            rows.append(([int(bos)] if has_bos else []) + ids[start:start + step])
            docs.append(d)
            offsets.append(start)
            if max_windows is not None and len(rows) >= max_windows:
                break
        if max_windows is not None and len(rows) >= max_windows:
            break
    if not rows:
        raise TokenizationError("the corpus has no tokens (every string is empty)")
    tokens = torch.full((len(rows), ctx_len), pad, dtype=torch.long)
    valid = torch.zeros((len(rows), ctx_len), dtype=torch.bool)
    first = 1 if has_bos else 0
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        valid[i, first : len(row)] = True
    return Windows(tokens, valid, torch.tensor(docs), torch.tensor(offsets), has_bos)


def check_corpus(corpus: Any) -> list[str]:
    """``corpus`` as a list of strings, or a clear error."""
    if isinstance(corpus, str):
        return [corpus]
    if isinstance(corpus, (list, tuple)) and corpus and all(isinstance(s, str) for s in corpus):
        if len(corpus) > MAX_CORPUS:
            raise OutOfRangeError("corpus size", len(corpus), 1, MAX_CORPUS, "strings; pass a sample")
        return list(corpus)
    if isinstance(corpus, (list, tuple)) and not corpus:
        raise InvalidOptionError("corpus", "[] (empty)", ["a list of strings", "None (the shipped corpus)"])
    bad = None
    if isinstance(corpus, (list, tuple)):
        bad = next((type(s).__name__ for s in corpus if not isinstance(s, str)), None)
    got = f"a list holding a {bad}" if bad else type(corpus).__name__
    raise InvalidOptionError("corpus", got, ["a list of strings", "a string", "None (the shipped corpus)"])


def shown_range(length: int, pos: int, before: int, after: int, first: int) -> tuple[int, int]:
    """The ``[start, stop)`` slice of a window shown around ``pos`` (never BOS, never padding)."""
    start = max(first, pos - before)
    stop = min(length, pos + after + 1)
    return start, stop
