"""Text generation for HookedTransformer, with a preallocated KV cache.

>>> model.generate("Once upon a time", max_new_tokens=5, do_sample=False)   # doctest: +SKIP
'Once upon a time, there was a'
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence, Union

import torch

from lenswidget.errors import InvalidOptionError, TokenizationError
from lenswidget.sampling import sample_logits

GENERATE_RETURN_TYPES = ("input", "str", "tokens")


class GenerationMixin:
    """``generate`` and ``generate_stream``; needs the forward and tokenisation methods of HookedTransformer."""

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
        **generation_kwargs: Any,
    ) -> Any:
        """Sample up to ``max_new_tokens`` tokens after ``input``.

        Returns text for text input (``return_type="input"``), else tokens
        [batch, pos + new]. Finished rows (after an EOS) are padded with EOS. Hooks that are
        attached stay active during generation. As in TransformerLens 3.9, ``output_logits=True``
        returns an HF ``GenerateDecoderOnlyOutput`` (``sequences`` and the ``logits`` of every
        step); other HF generation keywords are ignored with a warning.
        """
        output_logits = self._generation_kwargs(generation_kwargs)
        if return_type not in GENERATE_RETURN_TYPES:
            raise InvalidOptionError("return_type", return_type, GENERATE_RETURN_TYPES)
        text_input, tokens, prompt_mask = self._generation_input(input, max_new_tokens, prepend_bos, padding_side)
        out = torch.empty(tokens.shape[0], tokens.shape[1] + max_new_tokens, dtype=torch.long, device=tokens.device)
        out[:, : tokens.shape[1]] = tokens
        cur = tokens.shape[1]
        step_logits = []
        for nxt, final in self._generation_steps(tokens, prompt_mask, out, max_new_tokens, stop_at_eos, eos_token_id,
                                                 do_sample, top_k, top_p, temperature, freq_penalty,
                                                 use_past_kv_cache, verbose):
            cur += 1
            if output_logits:
                step_logits.append(final.clone())
        out = out[:, :cur]
        if return_type == "tokens" or (return_type == "input" and not text_input):
            result: Any = out
        else:
            texts = self._decode_generated(out, prompt_mask, self._resolve_prepend_bos(prepend_bos))
            result = texts[0] if isinstance(input, str) else texts
        if output_logits:
            from transformers.generation.utils import GenerateDecoderOnlyOutput

            return GenerateDecoderOnlyOutput(sequences=out, logits=tuple(step_logits))
        return result

    @torch.no_grad()
    def generate_stream(
        self,
        input: Union[str, torch.Tensor] = "",
        max_new_tokens: int = 10,
        max_tokens_per_yield: int = 25,
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
    ) -> Iterator[torch.Tensor]:
        """``generate``, yielding token chunks [batch, k] as they are sampled (TransformerLens 3.9).

        The first chunk starts with the prompt; each holds at most ``max_tokens_per_yield`` new
        tokens (the first: the prompt plus up to that many). Concatenated, the chunks are what
        ``generate(..., return_type="tokens")`` returns.
        """
        if not isinstance(max_tokens_per_yield, int) or max_tokens_per_yield < 1:
            raise InvalidOptionError("max_tokens_per_yield", max_tokens_per_yield, ["an int >= 1"])
        if return_type not in GENERATE_RETURN_TYPES:
            raise InvalidOptionError("return_type", return_type, GENERATE_RETURN_TYPES)
        _, tokens, prompt_mask = self._generation_input(input, max_new_tokens, prepend_bos, padding_side)
        out = torch.empty(tokens.shape[0], tokens.shape[1] + max_new_tokens, dtype=torch.long, device=tokens.device)
        out[:, : tokens.shape[1]] = tokens
        start, cur = 0, tokens.shape[1]
        since = 0
        for _ in self._generation_steps(tokens, prompt_mask, out, max_new_tokens, stop_at_eos, eos_token_id,
                                        do_sample, top_k, top_p, temperature, freq_penalty, use_past_kv_cache,
                                        verbose):
            cur += 1
            since = cur - start
            if since >= max_tokens_per_yield:
                yield out[:, start:cur].clone()
                start = cur
        if cur > start and cur > tokens.shape[1]:
            yield out[:, start:cur].clone()

    def _generation_kwargs(self, kwargs: dict) -> bool:
        """TransformerLens's handling of HF generation keywords: ``output_logits`` only."""
        output_logits = bool(kwargs.pop("output_logits", False))
        kwargs.pop("return_dict_in_generate", None)
        if kwargs:
            import warnings

            warnings.warn(f"generate ignores unsupported generation keywords: {sorted(kwargs)}", UserWarning,
                          stacklevel=3)
        return output_logits

    def _generation_input(self, input: Any, max_new_tokens: int, prepend_bos: Optional[bool],
                          padding_side: Optional[str]):
        """``(text_input, tokens [batch, pos], prompt_mask [batch, pos])`` on the model's device."""
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InvalidOptionError("max_new_tokens", max_new_tokens, ["an int >= 0"])
        text_input = isinstance(input, str) or (isinstance(input, (list, tuple)) and input and isinstance(input[0], str))
        if text_input:
            tokens, mask = self._tokenize(input, prepend_bos, padding_side)
            tokens = tokens.to(self._input_device())
            mask = None if mask is None else mask.to(tokens.device)
        else:
            tokens, mask = self._input_tokens(input, prepend_bos, padding_side, 0)
        self._check_length(0, tokens.shape[1] + max_new_tokens)
        return text_input, tokens, (mask if mask is not None else torch.ones_like(tokens))

    def _generation_steps(self, tokens, prompt_mask, out, max_new_tokens, stop_at_eos, eos_token_id, do_sample,
                          top_k, top_p, temperature, freq_penalty, use_past_kv_cache, verbose):
        """Write each sampled token into ``out`` and yield ``(tokens [batch], final_logits)``."""
        from lenswidget.kv_cache import HookedTransformerKeyValueCache

        batch, prompt_len = tokens.shape
        eos_ids = self._eos_ids(eos_token_id) if stop_at_eos else None
        cache = (
            HookedTransformerKeyValueCache.init_cache(
                self.cfg, tokens.device, batch, prompt_len + max_new_tokens, dtype=self.embed.W_E.dtype
            )
            if use_past_kv_cache
            else None
        )
        finished = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
        cur = prompt_len
        switch = self._rope_switch_length()
        steps = range(max_new_tokens)
        if verbose:
            from tqdm.auto import tqdm

            steps = tqdm(steps)
        for step in steps:
            if cache is not None:
                if step == 0:
                    logits = self.forward(tokens, attention_mask=prompt_mask, past_kv_cache=cache)
                elif cur - 1 == switch:
                    # LongRoPE: the sequence outgrows the short factors; the cached keys were rotated
                    # with them, so recompute every position with the long ones (as transformers does)
                    cache = HookedTransformerKeyValueCache.init_cache(
                        self.cfg, tokens.device, batch, prompt_len + max_new_tokens, dtype=self.embed.W_E.dtype)
                    full = torch.cat([prompt_mask, torch.ones(batch, cur - prompt_len, dtype=torch.long,
                                                              device=tokens.device)], 1)
                    logits = self.forward(out[:, :cur], attention_mask=full, past_kv_cache=cache)
                else:
                    logits = self.forward(out[:, cur - 1 : cur], past_kv_cache=cache)
            else:
                full = torch.cat([prompt_mask, torch.ones(batch, cur - prompt_len, dtype=torch.long, device=tokens.device)], 1)
                logits = self.forward(out[:, :cur], attention_mask=full)
            final = logits[:, -1, :]
            if do_sample:
                nxt = sample_logits(final, top_k, top_p, temperature, freq_penalty, tokens=out[:, :cur])
            else:
                nxt = final.argmax(-1)
            if eos_ids is not None:
                nxt = torch.where(finished, eos_ids[0], nxt)
                finished |= torch.isin(nxt, eos_ids)
            out[:, cur] = nxt
            cur += 1
            yield nxt, final
            if eos_ids is not None and bool(finished.all()):
                break

    def _rope_switch_length(self) -> Optional[int]:
        """The length beyond which LongRoPE switches to its long factors (None without LongRoPE)."""
        for block in self.blocks:
            rotary = block.attn.rotary
            if rotary is not None and rotary.long_inv_freq is not None:
                return rotary.long_after
        return None

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
