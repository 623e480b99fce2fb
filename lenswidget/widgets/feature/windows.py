"""A corpus of strings cut into windows of at most ``ctx_len`` tokens: the contexts the dashboard ranks.

A string that fits is one window. A longer one is cut into pieces of ``ctx_len - 1`` tokens
(decoded back to text, so each piece runs as a prompt of its own, BOS first, as
:func:`lenswidget.sae.feature_activations` runs texts). Position 0 of a window is BOS when
the model prepends one: it carries SmolLM2's attention-sink activation, the SAE is not
trained there, and it never counts as a feature's top token. A window whose text already
occurred is skipped (it would take a second top-k slot with the same context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...errors import InvalidOptionError, OutOfRangeError, TokenizationError

MAX_CORPUS = 100_000  # strings


@dataclass(frozen=True)
class Windows:
    texts: list[str]  # one per window
    doc: torch.Tensor  # [n] long: the corpus string each window comes from
    offset: torch.Tensor  # [n] long: the window's first token within its string (BOS excluded)
    lengths: torch.Tensor  # [n] long: tokens of each window as the model runs it (BOS included)
    first: int  # positions before this one are BOS (not counted)

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def n_tokens(self) -> int:
        """Positions that count (every token but BOS)."""
        return int((self.lengths - self.first).clamp_min(0).sum())


def build(model: Any, corpus: Any, ctx_len: int = 64, max_windows: int | None = None) -> Windows:
    """The windows of ``corpus`` (a string or a list of strings) for ``model``'s tokenizer."""
    texts = check_corpus(corpus)
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise TokenizationError("the feature dashboard tokenises its corpus: the model needs a tokenizer")
    n_ctx = int(model.cfg.n_ctx)
    if not isinstance(ctx_len, int) or isinstance(ctx_len, bool) or not 2 <= ctx_len <= n_ctx:
        raise OutOfRangeError("ctx_len", ctx_len, 2, n_ctx, "tokens per context window")
    first = 1 if getattr(tok, "bos_token_id", None) is not None and bool(model.cfg.default_prepend_bos) else 0
    step = ctx_len - first
    out, docs, offsets, lengths, seen = [], [], [], [], set()
    for d, text in enumerate(texts):
        ids = [int(i) for i in model.to_tokens(text, prepend_bos=False)[0].tolist()] if text else []
        pieces = [(text, 0)] if len(ids) <= step else [
            (tok.decode(ids[s:s + step], clean_up_tokenization_spaces=False), s) for s in range(0, len(ids), step)]
        for piece, start in pieces:
            n = int(model.to_tokens(piece).shape[-1]) if piece else first
            if n <= first or piece in seen:
                continue  # nothing but BOS, or a window seen before (it would fill top-k slots twice)
            seen.add(piece)
            if n > n_ctx:
                raise OutOfRangeError(f"tokens of corpus string {d} from token {start} (re-tokenised)", n, 1, n_ctx,
                                      "lower ctx_len")
            out.append(piece)
            docs.append(d)
            offsets.append(start)
            lengths.append(n)
            if max_windows is not None and len(out) >= max_windows:
                break
        if max_windows is not None and len(out) >= max_windows:
            break
    if not out:
        raise TokenizationError("the corpus has no tokens (every string is empty)")
    return Windows(out, torch.tensor(docs), torch.tensor(offsets), torch.tensor(lengths), first)


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
