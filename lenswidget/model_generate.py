"""Text generation for HookedTransformer, with a preallocated KV cache.

>>> model.generate("Once upon a time", max_new_tokens=5, do_sample=False)   # doctest: +SKIP
'Once upon a time, there was a'
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

import torch

from lenswidget.errors import InvalidOptionError, TokenizationError
from lenswidget.sampling import sample_logits

GENERATE_RETURN_TYPES = ("input", "str", "tokens")


class GenerationMixin:
    """``generate``; needs the forward and tokenisation methods of HookedTransformer."""

    @torch.no_grad()
    def generate(
        self,
        input: Union[str, List[str], torch.Tensor] = "",
        max_new_tokens: int = 10,
        stop_at_eos: bool = True,
        eos_token_id: Optional[Union[int, Sequence[int]]] = None,
        do_sample: bool = True,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: float = 1.0,
        freq_penalty: float = 0.0,
        use_past_kv_cache: bool = True,
        prepend_bos: Optional[bool] = None,
        padding_side: Optional[str] = None,
        return_type: Optional[str] = "input",
        verbose: bool = True,
    ) -> Union[str, List[str], torch.Tensor]:
        """Sample up to ``max_new_tokens`` tokens after ``input``.

        Returns text for text input (``return_type="input"``), else tokens
        [batch, pos + new]. Finished rows (after an EOS) are padded with EOS. Hooks that are
        attached stay active during generation.
        """
        from lenswidget.kv_cache import HookedTransformerKeyValueCache

        if return_type not in GENERATE_RETURN_TYPES:
            raise InvalidOptionError("return_type", return_type, GENERATE_RETURN_TYPES)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InvalidOptionError("max_new_tokens", max_new_tokens, ["an int >= 0"])
        text_input = isinstance(input, str) or (isinstance(input, (list, tuple)) and input and isinstance(input[0], str))
        prepend = self._resolve_prepend_bos(prepend_bos)
        if text_input:
            tokens, mask = self._tokenize(input, prepend_bos, padding_side)
            tokens = tokens.to(self._input_device())
            mask = None if mask is None else mask.to(tokens.device)
        else:
            tokens, mask = self._input_tokens(input, prepend_bos, padding_side, 0)
        batch, prompt_len = tokens.shape
        self._check_length(0, prompt_len + max_new_tokens)
        eos_ids = self._eos_ids(eos_token_id) if stop_at_eos else None

        out = torch.empty(batch, prompt_len + max_new_tokens, dtype=torch.long, device=tokens.device)
        out[:, :prompt_len] = tokens
        prompt_mask = mask if mask is not None else torch.ones_like(tokens)
        cache = (
            HookedTransformerKeyValueCache.init_cache(
                self.cfg, tokens.device, batch, prompt_len + max_new_tokens, dtype=self.embed.W_E.dtype
            )
            if use_past_kv_cache
            else None
        )
        finished = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
        cur = prompt_len
        steps = range(max_new_tokens)
        if verbose:
            from tqdm.auto import tqdm

            steps = tqdm(steps)
        for step in steps:
            if cache is not None:
                if step == 0:
                    logits = self.forward(tokens, attention_mask=prompt_mask, past_kv_cache=cache)
                else:
                    logits = self.forward(out[:, cur - 1 : cur], past_kv_cache=cache)
            else:
                full = torch.cat([prompt_mask, torch.ones(batch, cur - prompt_len, dtype=torch.long, device=tokens.device)], 1)
                logits = self.forward(out[:, :cur], attention_mask=full)
            final = logits[:, -1, :]
            if do_sample:
                nxt = sample_logits(final, top_k, top_p, temperature, freq_penalty, out[:, :cur])
            else:
                nxt = final.argmax(-1)
            if eos_ids is not None:
                nxt = torch.where(finished, eos_ids[0], nxt)
                finished |= torch.isin(nxt, eos_ids)
            out[:, cur] = nxt
            cur += 1
            if eos_ids is not None and bool(finished.all()):
                break
        out = out[:, :cur]
        if return_type == "tokens" or (return_type == "input" and not text_input):
            return out
        texts = self._decode_generated(out, prompt_mask, prepend)
        return texts[0] if isinstance(input, str) else texts

    def _eos_ids(self, eos_token_id: Any) -> torch.Tensor:
        if eos_token_id is None:
            if self.tokenizer is None or self.tokenizer.eos_token_id is None:
                raise TokenizationError(
                    "stop_at_eos=True needs an EOS token: pass eos_token_id=... or stop_at_eos=False"
                )
            eos_token_id = self.tokenizer.eos_token_id
        ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        if not ids:
            raise InvalidOptionError("eos_token_id", eos_token_id, ["an int or a non-empty list of ints"])
        return torch.tensor(ids, dtype=torch.long, device=self._input_device())

    def _decode_generated(self, out: torch.Tensor, prompt_mask: torch.Tensor, prepended_bos: bool) -> List[str]:
        tok = self._need_tokenizer("returning generated text")
        texts = []
        prompt_len = prompt_mask.shape[1]
        for row, m in zip(out.tolist(), prompt_mask.tolist()):
            prompt = [t for t, keep in zip(row[:prompt_len], m) if keep]
            if prepended_bos and prompt and prompt[0] == tok.bos_token_id:
                prompt = prompt[1:]
            texts.append(tok.decode(prompt + row[prompt_len:], clean_up_tokenization_spaces=False))
        return texts


__all__ = ["GenerationMixin", "GENERATE_RETURN_TYPES"]
