"""The forward pass the explorer reads: prompts run once with caching, or a given cache.

Only the activations the explorer uses are cached (residual stream, sublayer outputs,
head ``z`` and patterns, MLP ``post``, norm scales); everything else is computed from
them on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from ...errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, TokenizationError

_KEEP = ("hook_embed", "hook_pos_embed", "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
         "hook_mlp_out", "attn.hook_z", "attn.hook_pattern", "mlp.hook_post", "hook_scale")


def needed(name: str) -> bool:
    """names_filter of the explorer's run_with_cache."""
    return name.endswith(_KEEP)


@dataclass
class Run:
    """A cache with a batch dim, its tokens [batch, pos], their strings and the attributed position."""

    cache: Any
    tokens: torch.Tensor
    str_tokens: list[list[str]]
    pos: int
    prompts: list[str] = field(default_factory=list)
    serial: int = 0  # distinguishes runs for memoisation

    @property
    def n_prompts(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[1])


_serial = 0


def _next_serial() -> int:
    global _serial
    _serial += 1
    return _serial


def run_prompts(model: Any, prompts: Sequence[str] | str, pos: int, max_tokens: int) -> Run:
    """Tokenise ``prompts`` (all the same length), run the model once, keep what we need."""
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not texts or not all(isinstance(p, str) for p in texts):
        raise TokenizationError("prompts must be a string or a non-empty list of strings")
    lengths = [int(model.to_tokens(p).shape[-1]) for p in texts]
    if len(set(lengths)) > 1:
        raise ShapeMismatchError(
            f"the prompts have different numbers of tokens {lengths}; the attributed position must be the "
            "same token in every prompt, so use prompts of equal token length (pad with filler words)"
        )
    return run_tokens(model, model.to_tokens(texts), pos, max_tokens, texts)


def run_tokens(model: Any, tokens: Any, pos: int, max_tokens: int, prompts: Optional[list[str]] = None) -> Run:
    """Run the model on token ids [batch, pos] (or [pos]) with caching."""
    tokens = _as_tokens(tokens)
    n = int(tokens.shape[1])
    if n > max_tokens:
        raise TokenizationError(f"the prompts have {n} tokens; the explorer takes at most max_tokens={max_tokens}")
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=needed, return_type=None)
    return from_cache(model, cache, tokens, pos, prompts)


def from_cache(model: Any, cache: Any, tokens: Any, pos: int, prompts: Optional[list[str]] = None) -> Run:
    """Wrap an existing ActivationCache and the tokens it was run on."""
    from ...cache import ActivationCache

    if not isinstance(cache, ActivationCache):
        raise InvalidOptionError("cache", type(cache).__name__, ["an ActivationCache from model.run_with_cache"])
    tokens = _as_tokens(tokens)
    if not cache.has_batch_dim:  # remove_batch_dim() was called: put the batch dim back
        cache = ActivationCache({k: v[None] for k, v in cache.items()}, cache.model, True)
    resid = cache["resid_post", -1]
    if tuple(resid.shape[:2]) != tuple(tokens.shape):
        raise ShapeMismatchError(f"tokens {list(tokens.shape)} do not match the cache's [batch, pos] "
                                 f"{list(resid.shape[:2])}")
    n = int(tokens.shape[1])
    if not isinstance(pos, int) or isinstance(pos, bool) or not -n <= pos < n:
        raise OutOfRangeError("pos", pos, -n, n - 1, "the position whose next-token logits are attributed")
    strs = _str_tokens(model, tokens)
    if prompts is None:
        prompts = [_text(model, row) for row in tokens] if getattr(model, "tokenizer", None) is not None else []
    return Run(cache, tokens, strs, pos % n, list(prompts), _next_serial())


def _as_tokens(tokens: Any) -> torch.Tensor:
    t = torch.as_tensor(tokens)
    if t.is_floating_point():
        raise TokenizationError(f"tokens must be integer ids, got a {t.dtype} tensor")
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.numel() == 0:
        raise ShapeMismatchError(f"tokens of shape {list(t.shape)}: expected [batch, pos] or [pos]")
    return t.long()


def _str_tokens(model: Any, tokens: torch.Tensor) -> list[list[str]]:
    if getattr(model, "tokenizer", None) is None:
        return [[f"#{int(i)}" for i in row] for row in tokens.cpu()]
    tok = model.tokenizer
    return [[str(s) for s in tok.batch_decode([[int(i)] for i in row], clean_up_tokenization_spaces=False)]
            for row in tokens.cpu()]


def _text(model: Any, row: torch.Tensor) -> str:
    """A prompt's text without its leading BOS (to_tokens adds it back)."""
    ids = [int(i) for i in row]
    bos = getattr(model.tokenizer, "bos_token_id", None)
    if ids and bos is not None and ids[0] == bos and model.cfg.default_prepend_bos:
        ids = ids[1:]
    return str(model.tokenizer.decode(ids, clean_up_tokenization_spaces=False))

