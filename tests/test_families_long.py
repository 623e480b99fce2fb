"""Rope scalings and sliding-window layer patterns against HF on long inputs (hundreds of tokens).

Two-layer random-weight HF models whose original context (the point where rope scaling
changes the frequencies) and sliding windows are far shorter than the prompt, so every
frequency band and both layer kinds matter: Llama 3.1 / 3.2 ``llama3`` scaling, Phi-3
LongRoPE (short factors below its original context, long factors beyond), Qwen2 and Qwen3
``max_window_layers``, Gemma 3's local/global rope bases with linear scaling. Also: the
sliding-window pattern of configs without ``layer_types`` (older transformers), and the
error for an unsupported architecture.
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_hf, tiny_hf_config

T = 300
TOL = 1e-4

_LLAMA31 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
_LLAMA32 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}

CASES = {
    "llama3.1": ("llama", dict(rope_parameters=_LLAMA31)),
    "llama3.2": ("llama", dict(rope_parameters=_LLAMA32)),
    "qwen2_window": ("qwen2", dict(sliding_window=32, layer_types=["full_attention", "sliding_attention"])),
    "qwen3_window": ("qwen3", dict(sliding_window=32, layer_types=["full_attention", "sliding_attention"])),
    "gemma3": ("gemma3", dict(sliding_window=32)),
    "phi3_longrope": ("phi3", dict(sliding_window=None, original_max_position_embeddings=64,
                                   rope_parameters=None)),
}


def _hf(case: str):
    family, overrides = CASES[case]
    overrides = dict(overrides, max_position_embeddings=512)
    if case == "phi3_longrope":
        half = 8
        overrides["rope_parameters"] = {
            "rope_type": "longrope", "rope_theta": 10000.0, "original_max_position_embeddings": 64,
            "short_factor": [1.0 + 0.2 * i for i in range(half)],
            "long_factor": [1.0 + 3.0 * i for i in range(half)]}
    return make_tiny_hf(family, **overrides)


def _load(hf):
    from lenswidget import HookedTransformer

    return HookedTransformer.from_pretrained_no_processing("tiny", hf_model=hf, device="cpu")


@pytest.mark.parametrize("case", list(CASES))
def test_long_prompt_logits_equal_hf(case):
    hf = _hf(case)
    model = _load(hf)
    tokens = torch.randint(0, 211, (1, T), generator=torch.Generator().manual_seed(5))
    lengths = (T, 48) if case == "phi3_longrope" else (T,)  # 48 <= 64: LongRoPE's short factors
    for n in lengths:
        with torch.no_grad():
            ref = hf(tokens[:, :n]).logits
            ours = model(tokens[:, :n])
        assert ref.std() > 0.5
        assert (ours - ref).abs().max() <= TOL, n


def test_the_scalings_really_apply():
    """The cases above are not vacuous: without the scaling or the window the logits differ."""
    from lenswidget import HookedTransformer

    tokens = torch.randint(0, 211, (1, T), generator=torch.Generator().manual_seed(5))
    for case, field, value in (("llama3.1", "use_NTK_by_parts_rope", False),
                               ("gemma3", "rotary_base_local", None),
                               ("qwen2_window", "use_local_attn", False),
                               ("phi3_longrope", "rotary_longrope", None)):
        hf = _hf(case)
        model = _load(hf)
        cfg = model.cfg.to_dict()
        cfg.update({field: value, "dtype": torch.float32})
        if field == "use_local_attn":
            cfg.update(attn_types=None, window_size=None)
        plain = HookedTransformer(cfg)
        plain.load_state_dict(model.state_dict())
        with torch.no_grad():
            assert (plain(tokens) - hf(tokens).logits).abs().max() > 1e-2, case


def test_old_configs_keep_each_familys_window_pattern():
    """Configs from older transformers have no ``layer_types``; each family's own rule applies."""
    from lenswidget.loading.registry import family_for

    def kinds(family, **overrides):
        c = tiny_hf_config(family, num_hidden_layers=4, **overrides)
        c.layer_types = None
        return family_for(c).config_from_hf(c)["attn_types"]

    assert kinds("gemma2") == ["local", "global", "local", "global"]  # even layers slide
    assert kinds("qwen2", max_window_layers=2) == ["global", "global", "local", "local"]
    assert kinds("qwen3", max_window_layers=3) == ["global", "global", "global", "local"]
    assert kinds("gemma3", sliding_window_pattern=2) == ["local", "global", "local", "global"]
    assert kinds("mistral") == ["local"] * 4


def test_unsupported_architecture_names_the_supported_ones():
    import transformers

    from lenswidget import HookedTransformer
    from lenswidget.errors import UnknownNameError

    cfg = transformers.FalconConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=4, vocab_size=50)
    hf = transformers.AutoModelForCausalLM.from_config(cfg)
    with pytest.raises(UnknownNameError) as err:
        HookedTransformer.from_pretrained("tiny", hf_model=hf, device="cpu")
    msg = str(err.value)
    assert "falcon" in msg
    for name in ("qwen3", "olmo2", "gemma3_text", "phi3", "gptj", "llama"):
        assert name in msg


@pytest.mark.parametrize("family", ["qwen3", "olmo2", "gemma3", "phi3", "gptj"])
def test_greedy_generate_equals_hf(family):
    """KV-cached generation: qk-norm, per-layer rope, windows and (Phi-3) LongRoPE switching from
    short to long factors mid-generation (its original context is 8 positions), as HF does."""
    hf = make_tiny_hf(family)
    model = _load(hf)
    prompt = torch.randint(0, 211, (1, 5), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        ours = model.generate(prompt, max_new_tokens=8, do_sample=False, stop_at_eos=False, verbose=False)
        theirs = hf.generate(prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0)
    assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize("family", ["qwen3", "olmo2", "gemma3", "phi3", "gptj"])
def test_loads_from_a_saved_directory(tmp_path, family):
    """save_pretrained -> from_pretrained(path): config.json and safetensors names as on the hub."""
    from lenswidget import HookedTransformer

    hf = make_tiny_hf(family)
    hf.save_pretrained(tmp_path)
    model = HookedTransformer.from_pretrained_no_processing(str(tmp_path), device="cpu")
    tokens = torch.randint(0, 211, (2, 12), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert (model(tokens) - hf(tokens).logits).abs().max() <= TOL
