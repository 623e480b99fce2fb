"""Tokenisation methods of HookedTransformer (``to_tokens``, ``to_str_tokens``, ...).

BOS handling is explicit: text is tokenised with ``add_special_tokens=False`` and the BOS id
is prepended by us when ``prepend_bos`` is on, so the result is the same whether or not the
HF tokenizer adds a BOS by itself (recorded in ``cfg.tokenizer_prepends_bos``). Padding uses
the pad token (falling back to EOS, then BOS) on ``padding_side``.

>>> model.to_str_tokens("Hello world")          # doctest: +SKIP
['<|endoftext|>', 'Hello', ' world']
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch

from lenswidget.errors import InvalidOptionError, OutOfRangeError, TokenizationError

_SIDES = ("left", "right")


class TokenizationMixin:
    """Needs ``self.cfg`` and ``self.tokenizer``; see the module docstring."""

    tokenizer: Any

    # ------------------------------------------------------------------ setup
    def set_tokenizer(self, tokenizer: Any, default_padding_side: Optional[str] = None) -> None:
        """Use ``tokenizer`` (a HF tokenizer); pads on ``default_padding_side`` by default (None:
        the tokenizer's own ``padding_side``, else right)."""
        if default_padding_side is None:
            default_padding_side = getattr(tokenizer, "padding_side", None) or "right"
        if default_padding_side not in _SIDES:
            raise InvalidOptionError("default_padding_side", default_padding_side, _SIDES)
        if tokenizer is None:
            self.tokenizer = None
            return
        if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
            raise TypeError(f"tokenizer must be a HuggingFace tokenizer, got {type(tokenizer).__name__}")
        tokenizer.padding_side = default_padding_side
        if tokenizer.eos_token is None and tokenizer.bos_token is not None:
            tokenizer.eos_token = tokenizer.bos_token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.bos_token
        if tokenizer.bos_token is None and tokenizer.eos_token is not None:
            tokenizer.bos_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        try:
            ids = tokenizer("a", add_special_tokens=True)["input_ids"]
            self.cfg.tokenizer_prepends_bos = bool(ids) and ids[0] == tokenizer.bos_token_id
        except Exception:  # pragma: no cover - exotic tokenizers
            self.cfg.tokenizer_prepends_bos = None
        if self.cfg.d_vocab == -1:
            self.cfg.d_vocab = max(tokenizer.get_vocab().values()) + 1
        if self.cfg.d_vocab_out == -1:
            self.cfg.d_vocab_out = self.cfg.d_vocab

    def _need_tokenizer(self, what: str) -> Any:
        if self.tokenizer is None:
            raise TokenizationError(
                f"{what} needs a tokenizer, but this model has no tokenizer; pass token ids "
                "(a LongTensor [batch, pos]) or call model.set_tokenizer(tokenizer)"
            )
        return self.tokenizer

    def _resolve_prepend_bos(self, prepend_bos: Optional[bool]) -> bool:
        return self.cfg.default_prepend_bos if prepend_bos is None else bool(prepend_bos)

    def _resolve_padding_side(self, padding_side: Optional[str]) -> str:
        if padding_side is None:
            return getattr(self.tokenizer, "padding_side", "right") or "right"
        if padding_side not in _SIDES:
            raise InvalidOptionError("padding_side", padding_side, _SIDES)
        return padding_side

    # ------------------------------------------------------------------ text -> tokens
    def _tokenize(
        self,
        input: Union[str, Sequence[str]],
        prepend_bos: Optional[bool] = None,
        padding_side: Optional[str] = None,
        truncate: bool = True,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Tokens [batch, pos] and the padding mask (None when nothing is padding)."""
        tok = self._need_tokenizer("tokenizing text")
        texts = [input] if isinstance(input, str) else list(input)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise TokenizationError("to_tokens expects a string or a non-empty list of strings")
        prepend = self._resolve_prepend_bos(prepend_bos)
        side = self._resolve_padding_side(padding_side)
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        if prepend:
            bos = tok.bos_token_id
            if bos is None:
                raise TokenizationError("prepend_bos=True but the tokenizer has no BOS (or EOS) token")
            ids = [[bos] + row for row in ids]
        if truncate:
            ids = [row[: self.cfg.n_ctx] for row in ids]
        width = max(len(r) for r in ids)
        if width == 0:
            raise TokenizationError(
                f"{input!r} tokenizes to no tokens; pass non-empty text or prepend_bos=True"
            )
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        tokens = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            if not row:
                continue
            sl = slice(width - len(row), width) if side == "left" else slice(0, len(row))
            tokens[i, sl] = torch.tensor(row, dtype=torch.long)
            mask[i, sl] = 1
        return tokens, (None if bool(mask.all()) else mask)

    def to_tokens(
        self,
        input: Union[str, List[str]],
        prepend_bos: Optional[bool] = None,
        padding_side: Optional[str] = None,
        move_to_device: bool = True,
        truncate: bool = True,
    ) -> torch.Tensor:
        """Text (or a list of texts, padded) -> tokens [batch, pos]."""
        tokens, _ = self._tokenize(input, prepend_bos, padding_side, truncate)
        if move_to_device:
            tokens = tokens.to(self.cfg.device)
        return tokens

    # ------------------------------------------------------------------ tokens -> text
    @staticmethod
    def _as_token_tensor(tokens: Any) -> torch.Tensor:
        if isinstance(tokens, torch.Tensor):
            t = tokens
        elif isinstance(tokens, np.ndarray):
            t = torch.from_numpy(tokens)
        elif isinstance(tokens, (int, np.integer)):
            t = torch.tensor([int(tokens)])
        else:
            t = torch.tensor(list(tokens))
        if t.is_floating_point():
            raise TokenizationError(f"expected integer token ids, got a {t.dtype} tensor")
        return t.long()

    def to_string(self, tokens: Any) -> Union[str, List[str]]:
        """Tokens -> text: a string for 0-D/1-D input, a list of strings for 2-D input."""
        tok = self._need_tokenizer("to_string")
        if isinstance(tokens, list) and tokens and isinstance(tokens[0], (torch.Tensor, list, np.ndarray)):
            return [self.to_string(t) for t in tokens]
        t = self._as_token_tensor(tokens)
        if t.dim() == 2:
            return [tok.decode(row.tolist(), clean_up_tokenization_spaces=False) for row in t]
        if t.dim() > 2:
            raise TokenizationError(f"to_string expects at most 2 dims, got shape {tuple(t.shape)}")
        return tok.decode(t.reshape(-1).tolist(), clean_up_tokenization_spaces=False)

    def to_str_tokens(
        self,
        input: Any,
        prepend_bos: Optional[bool] = None,
        padding_side: Optional[str] = None,
    ) -> Union[List[str], List[List[str]]]:
        """Each token as a string: text, a list of texts, or token ids [pos] / [batch, pos]."""
        tok = self._need_tokenizer("to_str_tokens")
        if isinstance(input, list) and input and all(isinstance(x, str) for x in input):
            return [self.to_str_tokens(s, prepend_bos, padding_side) for s in input]
        if isinstance(input, str):
            t = self.to_tokens(input, prepend_bos, padding_side, move_to_device=False)[0]
        else:
            t = self._as_token_tensor(input)
            if t.dim() == 2:
                if t.shape[0] != 1:
                    return [self.to_str_tokens(row) for row in t]
                t = t[0]
            elif t.dim() > 2:
                raise TokenizationError(f"to_str_tokens expects tokens [pos] or [batch, pos], got {tuple(t.shape)}")
            t = t.reshape(-1)
        ids = t.tolist()
        return tok.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)

    def to_single_token(self, string: str) -> int:
        """The id of ``string``, which must be exactly one token (no BOS)."""
        if not isinstance(string, str):
            raise TokenizationError(f"to_single_token expects a string, got {type(string).__name__}")
        tokens = self.to_tokens(string, prepend_bos=False, move_to_device=False)[0]
        if tokens.numel() != 1:
            pieces = self.to_str_tokens(tokens) if tokens.numel() else []
            raise TokenizationError(
                f"{string!r} is {tokens.numel()} tokens, not 1: {pieces}; pass a string that is a "
                "single token (mind the leading space, e.g. ' Paris') or use to_tokens"
            )
        return int(tokens.item())

    def to_single_str_token(self, int_token: int) -> str:
        """The string of token id ``int_token``."""
        if isinstance(int_token, torch.Tensor):
            if int_token.numel() != 1:
                raise TokenizationError(f"expected a single token id, got shape {tuple(int_token.shape)}")
            int_token = int(int_token.item())
        if not isinstance(int_token, (int, np.integer)):
            raise TokenizationError(f"expected an int token id, got {type(int_token).__name__}")
        vocab = self.cfg.d_vocab
        if not 0 <= int(int_token) < vocab:
            raise OutOfRangeError("token id", int(int_token), 0, vocab - 1)
        return self.to_str_tokens(torch.tensor([int(int_token)]))[0]

    def get_token_position(
        self,
        single_token: Union[str, int],
        input: Union[str, torch.Tensor],
        mode: str = "first",
        prepend_bos: Optional[bool] = None,
        padding_side: Optional[str] = None,
    ) -> int:
        """Index of ``single_token`` (a one-token string or an id) in ``input``."""
        if mode not in ("first", "last"):
            raise InvalidOptionError("mode", mode, ("first", "last"))
        if isinstance(input, str):
            tokens = self.to_tokens(input, prepend_bos, padding_side, move_to_device=False)
        else:
            tokens = self._as_token_tensor(input)
        if tokens.dim() == 2:
            if tokens.shape[0] != 1:
                raise TokenizationError(
                    f"get_token_position needs a single sequence; got batch size {tokens.shape[0]}"
                )
            tokens = tokens[0]
        if isinstance(single_token, str):
            single_token = self.to_single_token(single_token)
        elif isinstance(single_token, torch.Tensor):
            single_token = int(single_token.item())
        hits = (tokens.cpu() == int(single_token)).nonzero().flatten()
        if hits.numel() == 0:
            shown = self.to_str_tokens(tokens) if self.tokenizer is not None else tokens.tolist()
            raise TokenizationError(f"token {single_token!r} does not occur in the input {shown}")
        return int(hits[0] if mode == "first" else hits[-1])


__all__ = ["TokenizationMixin"]
