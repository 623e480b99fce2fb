"""HookedTransformerConfig: derived values and rejection of inconsistent configs."""

from __future__ import annotations

import math

import pytest
import torch

from lenswidget.config import HookedTransformerConfig
from lenswidget.errors import ConfigError, InvalidOptionError, UnknownNameError


def make(**kw):
    base = dict(n_layers=2, d_model=64, n_ctx=32, n_heads=4, d_vocab=100, act_fn="gelu")
    base.update(kw)
    return HookedTransformerConfig(**base)


def test_derived_values():
    cfg = make()
    assert cfg.d_head == 16
    assert cfg.d_mlp == 256
    assert cfg.attn_scale == 4.0
    assert cfg.d_vocab_out == 100
    assert cfg.rotary_dim is None
    assert math.isclose(cfg.initializer_range, 0.8 / 8)
    assert cfg.n_params == 2 * (64 * 16 * 4 * 4 + 64 * 256 * 2)
    assert cfg.dtype == torch.float32


def test_n_heads_from_d_head_and_rotary_default():
    cfg = make(n_heads=-1, d_head=8, positional_embedding_type="rotary")
    assert cfg.n_heads == 8
    assert cfg.rotary_dim == 8


def test_gqa_params_and_flags():
    cfg = make(n_key_value_heads=2, gated_mlp=True, act_fn="silu")
    assert cfg.is_gqa and cfg.n_kv_heads == 2
    assert cfg.n_params == 2 * (64 * 16 * (2 * 4 + 2 * 2) + 64 * 256 * 3)
    assert not make(n_key_value_heads=4).is_gqa


def test_d_model_not_divisible_by_n_heads():
    with pytest.raises(ConfigError) as err:
        make(d_model=65)
    msg = str(err.value)
    assert "d_model=65" in msg and "n_heads=4" in msg and "d_head" in msg


def test_d_model_not_divisible_is_fine_with_explicit_d_head():
    cfg = make(d_model=65, d_head=16)
    assert cfg.n_heads == 4 and cfg.d_head == 16


def test_n_heads_not_divisible_by_kv_heads():
    with pytest.raises(ConfigError) as err:
        make(n_key_value_heads=3)
    assert "n_heads=4" in str(err.value) and "n_key_value_heads=3" in str(err.value)


def test_unknown_options_list_valid_values():
    with pytest.raises(InvalidOptionError) as err:
        make(normalization_type="BatchNorm")
    assert "'BatchNorm'" in str(err.value) and "'RMSPre'" in str(err.value)
    with pytest.raises(InvalidOptionError) as err:
        make(act_fn="gelu_tanh_fancy")
    assert "gelu_tanh_fancy" in str(err.value) and "'silu'" in str(err.value)
    with pytest.raises(InvalidOptionError) as err:
        make(positional_embedding_type="alibi")
    assert "'rotary'" in str(err.value)


@pytest.mark.parametrize("rotary_dim", [5, 32, 0])
def test_bad_rotary_dim(rotary_dim):
    with pytest.raises(ConfigError) as err:
        make(positional_embedding_type="rotary", rotary_dim=rotary_dim)
    assert f"rotary_dim={rotary_dim}" in str(err.value) and "d_head=16" in str(err.value)


def test_missing_heads_and_act_fn():
    with pytest.raises(ConfigError, match="n_heads or d_head"):
        HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, act_fn="relu")
    with pytest.raises(ConfigError, match="act_fn is required"):
        HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, n_heads=2)
    assert HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, n_heads=2, attn_only=True).d_mlp is None


def test_unsupported_features_are_rejected():
    with pytest.raises(ConfigError, match="mixture-of-experts"):
        make(num_experts=8)
    with pytest.raises(ConfigError, match="n_devices"):
        make(n_devices=2)


def test_local_attention_config():
    cfg = make(use_local_attn=True, window_size=4)
    assert cfg.attn_types == ["local", "local"]
    assert cfg.layer_window(0) == 4
    cfg = make(use_local_attn=True, window_size=4, attn_types=["global", "local"])
    assert cfg.layer_window(0) is None and cfg.layer_window(1) == 4
    with pytest.raises(ConfigError, match="attn_types has 1 entries"):
        make(attn_types=["local"])
    with pytest.raises(ConfigError, match="window_size"):
        make(use_local_attn=True)


def test_unwrap_dict_and_to_dict_round_trip():
    cfg = make(positional_embedding_type="rotary", dtype="bfloat16")
    assert cfg.dtype == torch.bfloat16
    again = HookedTransformerConfig.unwrap(cfg.to_dict())
    assert again == cfg
    assert HookedTransformerConfig.unwrap(cfg) is cfg
    with pytest.raises(UnknownNameError) as err:
        HookedTransformerConfig.unwrap(dict(n_layers=1, d_model=8, n_ctx=4, n_heads=2, act_fn="relu", n_head=2))
    assert "'n_heads'" in str(err.value)
    with pytest.raises(InvalidOptionError, match="dtype"):
        make(dtype="float8")


def test_use_attn_scale_false():
    assert make(use_attn_scale=False).attn_scale == 1.0
    assert make(attn_scale=3.0).attn_scale == 3.0
