"""Every supported family against HuggingFace transformers on small random-weight models.

Each family's tiny HF model (2 layers, d_model 64, 4 heads, 2 KV heads where the family has
GQA, random biases and norm weights, short sliding windows; Qwen3/OLMo 2/Gemma 3 qk-norms,
Gemma 3 local/global rope bases with linear scaling, Phi-3 fused weights and LongRoPE, GPT-J
adjacent-pair partial rotary) is loaded through ``hf_model=``: raw logits must equal HF's,
processed log-probs must equal HF's, with left/right padding too, stop_at_layer /
start_at_layer must compose to the full forward, and (new families) the fast patching engine
must equal the hook-based path. Long inputs: tests/test_families_long.py; bf16: test_bf16.py.
"""

from __future__ import annotations

import functools

import pytest
import torch

from conftest import TINY_FAMILIES, make_tiny_hf

TOL = 1e-4
SEQ = 10  # longer than the sliding windows (4), so they matter


def _load(hf, processed: bool, **kw):
    from lenswidget import HookedTransformer

    flags = dict(fold_ln=processed, center_writing_weights=processed, center_unembed=processed,
                 fold_value_biases=processed,
                 refactor_factored_attn_matrices=processed and hf.config.model_type == "gpt2")
    return HookedTransformer.from_pretrained("tiny", hf_model=hf, device="cpu", **flags, **kw)


@functools.lru_cache(maxsize=2)
def _family(name: str):
    hf = make_tiny_hf(name)
    return name, hf, _load(hf, False), _load(hf, True)


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def family(request):
    """(family name, HF model, unprocessed model, fully processed model)."""
    return _family(request.param)


def _tokens(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 211, (batch, SEQ), generator=torch.Generator().manual_seed(seed))


def _hf_logits(hf, tokens, mask=None) -> torch.Tensor:
    with torch.no_grad():
        if mask is None:
            return hf(tokens).logits
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # HF needs them given for left padding
        return hf(tokens, attention_mask=mask, position_ids=positions).logits


def _max_diff(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    d = (a - b).abs()
    return (d[where.bool()] if where is not None else d).max().item()


def test_config_is_derived_from_hf(family):
    name, hf, raw, _ = family
    c, cfg = hf.config, raw.cfg
    assert cfg.n_layers == c.num_hidden_layers and cfg.d_model == c.hidden_size
    assert cfg.n_heads == c.num_attention_heads and cfg.d_vocab == c.vocab_size
    assert cfg.original_architecture == type(hf).__name__
    assert cfg.normalization_type == ("LN" if name in ("gpt2", "gptj") or name.startswith("neox") else "RMS")
    if name in ("llama", "qwen2", "mistral", "gemma", "gemma2", "qwen3", "olmo2", "gemma3", "phi3"):
        assert cfg.n_key_value_heads == 2
    assert cfg.use_qk_norm == (name in ("qwen3", "olmo2", "gemma3"))
    assert cfg.use_normalization_after_only == (name == "olmo2")
    if name in ("qwen3", "gemma3"):
        assert cfg.qk_norm_scope == "head" and raw.blocks[0].attn.q_norm.w.shape == (cfg.d_head,)
    if name == "olmo2":
        assert cfg.qk_norm_scope == "full" and raw.blocks[0].attn.k_norm.w.shape == (2 * cfg.d_head,)
    if name in ("qwen2", "qwen3"):  # max_window_layers=1: only layer 1 slides
        assert cfg.attn_types == ["global", "local"] and cfg.window_size == 4
    if name == "gemma3":
        assert cfg.attn_types == ["local", "global"] and cfg.window_size == 4
        assert cfg.rotary_base == 1e6 and cfg.rotary_base_local == 1e4 and cfg.rotary_scaling_factor == 8.0
        assert raw.blocks[0].attn.rotary is not raw.blocks[1].attn.rotary
    if name == "phi3":
        assert cfg.rotary_longrope["original_max_position_embeddings"] == 8
        assert cfg.attn_types == ["local", "local"] and cfg.window_size == 6
    if name == "gptj":
        assert cfg.rotary_adjacent_pairs and cfg.rotary_dim == 8 and cfg.parallel_attn_mlp
    if name.startswith("neox"):
        assert cfg.rotary_dim == cfg.d_head // 2
        assert cfg.parallel_attn_mlp == (name == "neox")
    if name == "gemma2":
        assert cfg.attn_types == ["local", "global"] and cfg.window_size == 4
        assert cfg.attn_scores_soft_cap == 5.0 and cfg.output_logits_soft_cap == 3.0
        assert cfg.attn_scale == pytest.approx(24 ** 0.5)
    if name == "llama3_rope":
        assert cfg.use_NTK_by_parts_rope and cfg.NTK_original_ctx_len == 8


def test_unprocessed_logits_equal_hf(family):
    _, hf, raw, _ = family
    tokens = _tokens()
    ref = _hf_logits(hf, tokens)
    with torch.no_grad():
        ours = raw(tokens)
    assert ref.std() > 1.0  # the random weights give non-trivial logits
    assert _max_diff(ours, ref) <= TOL


def test_processed_log_probs_equal_hf(family):
    _, hf, _, proc = family
    tokens = _tokens()
    ref = _hf_logits(hf, tokens).log_softmax(-1)
    with torch.no_grad():
        ours = proc(tokens).log_softmax(-1)
    if proc.cfg.use_normalization_after_only:  # OLMo 2: nothing to fold its norms into (as TL)
        assert proc.cfg.normalization_type == "RMS"
    else:
        assert proc.cfg.normalization_type in ("LNPre", "RMSPre")
    assert _max_diff(ours, ref) <= TOL


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_equals_hf(family, side):
    _, hf, raw, proc = family
    tokens = _tokens()
    mask = torch.ones_like(tokens)
    lengths = [SEQ, 6, 3]
    for i, n in enumerate(lengths):
        if side == "left":
            mask[i, : SEQ - n] = 0
        else:
            mask[i, n:] = 0
    tokens = tokens.masked_fill(mask == 0, 0)
    ref = _hf_logits(hf, tokens, mask)
    with torch.no_grad():
        ours_raw = raw(tokens, attention_mask=mask)
        ours_proc = proc(tokens, attention_mask=mask)
    assert _max_diff(ours_raw, ref, mask) <= TOL
    assert _max_diff(ours_proc.log_softmax(-1), ref.log_softmax(-1), mask) <= TOL


@pytest.mark.parametrize("layer", [1, 2])
def test_stop_then_start_at_layer_is_full_forward(family, layer):
    _, _, _, proc = family
    tokens = _tokens()
    with torch.no_grad():
        full = proc(tokens)
        resid = proc(tokens, stop_at_layer=layer)
        rest = proc(resid, start_at_layer=layer)
    assert resid.shape == (*tokens.shape, proc.cfg.d_model)
    assert _max_diff(rest, full) <= 1e-5


_ENGINE_SWEEPS = ("resid_pre", "mlp_out", "attn_head_q_all_pos", "attn_head_k_by_pos", "attn_head_v_all_pos",
                  "attn_head_pattern_all_pos")
# the families tests/test_patching_sweeps.py does not already cover with the same sweeps
_ENGINE_FAMILIES = ("llama3_rope", "qwen3", "olmo2", "gemma3", "phi3", "gptj")


@pytest.mark.parametrize("name", _ENGINE_FAMILIES)
def test_patching_engine_equals_hook_path(name):
    """The fast engine (shared prefix K/V, the model's own attention pieces) equals hooked forwards."""
    from lenswidget import patching

    _, _, _, proc = _family(name)
    clean = _tokens(batch=2, seed=3)
    corrupted = clean.clone()
    corrupted[:, 3:5] = _tokens(batch=2, seed=4)[:, :2]
    _, cache = proc.run_with_cache(clean)
    metric = patching.batched_metric(lambda lg: (lg[:, :, -1, 5] - lg[:, :, -1, 7]).mean(1), positions=[-1])
    assert patching.engine.fast_path_reason(proc, "q", corrupted) is None
    for name in _ENGINE_SWEEPS:
        fn = getattr(patching, f"get_act_patch_{name}")
        fast = fn(proc, corrupted, cache, metric, verbose=False, method="fast")
        hooks = fn(proc, corrupted, cache, metric, verbose=False, method="hooks")
        assert fast.abs().max() > 0, name  # the patches matter
        assert (fast - hooks).abs().max() <= TOL, name
