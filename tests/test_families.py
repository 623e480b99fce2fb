"""Every supported family against HuggingFace transformers on small random-weight models.

Each family's tiny HF model (2 layers, d_model 64, 4 heads, 2 KV heads where the family has
GQA, random biases and norm weights, short sliding windows) is loaded through ``hf_model=``:
raw logits must equal HF's, processed log-probs must equal HF's, with left/right padding too,
and stop_at_layer / start_at_layer must compose to the full forward.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def family(request):
    """(family name, HF model, unprocessed model, fully processed model)."""
    hf = make_tiny_hf(request.param)
    return request.param, hf, _load(hf, False), _load(hf, True)


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
    assert cfg.normalization_type == ("LN" if name in ("gpt2",) or name.startswith("neox") else "RMS")
    if name in ("llama", "qwen2", "mistral", "gemma", "gemma2"):
        assert cfg.n_key_value_heads == 2
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
