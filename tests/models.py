"""Small random HookedTransformers and a tiny offline tokenizer, shared by the test suite.

>>> from tests.models import tiny_model, tiny_tokenizer
>>> model = tiny_model("llama", tokenizer=True)      # RMS + rotary + gated MLP + GQA
>>> logits = model("Hello world")

Presets (``family``): "gpt2" (LN, learned positions, gelu_new), "llama" (RMS, rotary, gated
silu, GQA with 2 KV heads), "neox" (LN, partial rotary, parallel attn+MLP), "gemma2"
(RMS, rotary, gated gelu, GQA, post-norms, soft caps, alternating local attention window 4).
All are 2 layers, d_model 32, 4 heads, n_ctx 32, d_vocab 300, float32 on CPU, seed 0.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

FAMILIES = ("gpt2", "llama", "neox", "gemma2")

_BASE = dict(n_layers=2, d_model=32, n_ctx=32, n_heads=4, d_vocab=300, seed=0, device="cpu", dtype=torch.float32)

_PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": dict(normalization_type="LN", positional_embedding_type="standard", act_fn="gelu_new"),
    "llama": dict(
        normalization_type="RMS",
        positional_embedding_type="rotary",
        act_fn="silu",
        gated_mlp=True,
        n_key_value_heads=2,
        d_mlp=64,
        eps=1e-6,
    ),
    "neox": dict(
        normalization_type="LN",
        positional_embedding_type="rotary",
        rotary_dim=4,
        parallel_attn_mlp=True,
        act_fn="gelu",
    ),
    "gemma2": dict(
        normalization_type="RMS",
        positional_embedding_type="rotary",
        act_fn="gelu_pytorch_tanh",
        gated_mlp=True,
        n_key_value_heads=2,
        d_mlp=64,
        use_normalization_before_and_after=True,
        attn_scores_soft_cap=50.0,
        output_logits_soft_cap=30.0,
        use_local_attn=True,
        window_size=4,
        attn_types=["local", "global"],
    ),
}


def tiny_cfg(family: str = "gpt2", **overrides: Any):
    """A small HookedTransformerConfig of ``family`` (see module docstring), with overrides."""
    from lenswidget.config import HookedTransformerConfig

    if family not in _PRESETS:
        raise ValueError(f"unknown family {family!r}; valid: {FAMILIES}")
    kw = {**_BASE, **_PRESETS[family], **overrides}
    if "attn_types" in kw and kw.get("attn_types") is not None and len(kw["attn_types"]) != kw["n_layers"]:
        pattern = _PRESETS[family].get("attn_types", ["global"])
        kw["attn_types"] = [pattern[i % len(pattern)] for i in range(kw["n_layers"])]
    return HookedTransformerConfig(**kw)


def tiny_model(family: str = "gpt2", tokenizer: Any = False, **overrides: Any):
    """A random HookedTransformer of ``family``; ``tokenizer=True`` attaches :func:`tiny_tokenizer`.

    Pass a tokenizer object instead of True to use that one.
    """
    from lenswidget.model import HookedTransformer

    tok = tiny_tokenizer() if tokenizer is True else (tokenizer or None)
    model = HookedTransformer(tiny_cfg(family, **overrides), tokenizer=tok)
    return model.eval()


_CORPUS = [
    "The cat sat on the mat. The dog sat on the log.",
    "When Mary and John went to the store, John gave a drink to Mary.",
    "The capital of France is Paris. The capital of Italy is Rome.",
    "12 x 34 = 408. 56 x 78 = 4368. Hello world! Once upon a time there was a tiny model.",
    "the quick brown fox jumps over the lazy dog",
]


@functools.lru_cache(maxsize=None)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = 300, pad: bool = True, bos: bool = True):
    """A GPT-2 style byte-level BPE tokenizer trained on a tiny built-in corpus (offline).

    Special tokens: ``<|bos|>`` (id 0), ``<|eos|>`` (id 1), ``<|pad|>`` (id 2). ``pad=False``
    leaves the pad token unset and ``bos=False`` the BOS token unset (the model then falls back
    to EOS, as TransformerLens does). Like GPT-2's, it does not add a BOS itself.
    " the" is a single token; "Hello world" is several.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if vocab_size > _BASE["d_vocab"]:
        raise ValueError(f"vocab_size must be <= {_BASE['d_vocab']} (tiny models' d_vocab)")
    backend = Tokenizer.from_str(_tokenizer_json(vocab_size))
    kwargs = dict(eos_token="<|eos|>")
    if pad:
        kwargs["pad_token"] = "<|pad|>"
    if bos:
        kwargs["bos_token"] = "<|bos|>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)


__all__ = ["tiny_cfg", "tiny_model", "tiny_tokenizer", "FAMILIES"]
