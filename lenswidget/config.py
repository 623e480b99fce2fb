"""HookedTransformerConfig: every architectural choice of a HookedTransformer.

Field names and meanings follow TransformerLens. ``__post_init__`` fills derived values and
rejects inconsistent configs with a :class:`~lenswidget.errors.ConfigError` naming the fields.

>>> cfg = HookedTransformerConfig(n_layers=2, d_model=64, n_ctx=32, n_heads=4, d_vocab=100, act_fn="gelu")
>>> cfg.d_head, cfg.d_mlp, cfg.attn_scale
(16, 256, 4.0)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import torch

from lenswidget.errors import ConfigError, InvalidOptionError

NORMALIZATION_TYPES = ("LN", "LNPre", "RMS", "RMSPre", None)
POSITIONAL_EMBEDDING_TYPES = ("standard", "rotary", "shortformer")
ACT_FNS = ("relu", "gelu", "silu", "swish", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu")
INIT_MODES = ("gpt2", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")
ATTENTION_DIRS = ("causal", "bidirectional")
ATTN_TYPES = ("global", "local")
QK_NORM_SCOPES = ("head", "full")

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
    "double": torch.float64,
}


def parse_dtype(dtype: Union[str, torch.dtype, None]) -> torch.dtype:
    """``"bfloat16"`` / ``"torch.float16"`` / a torch dtype -> torch dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).replace("torch.", "")
    if key not in _DTYPES:
        raise InvalidOptionError("dtype", dtype, sorted(set(_DTYPES)))
    return _DTYPES[key]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class HookedTransformerConfig:
    """Configuration of a :class:`~lenswidget.model.HookedTransformer` (TransformerLens fields).

    Required: ``n_layers``, ``d_model``, ``n_ctx`` and one of ``d_head`` / ``n_heads``.
    """

    n_layers: int
    d_model: int
    n_ctx: int
    d_head: int = -1
    model_name: str = "custom"
    n_heads: int = -1
    d_mlp: Optional[int] = None
    act_fn: Optional[str] = None
    d_vocab: int = -1
    eps: float = 1e-5
    use_attn_result: bool = False
    use_attn_scale: bool = True
    attn_scale: float = -1.0
    use_split_qkv_input: bool = False
    use_hook_mlp_in: bool = False
    use_attn_in: bool = False
    use_local_attn: bool = False
    ungroup_grouped_query_attention: bool = False
    original_architecture: Optional[str] = None
    from_checkpoint: bool = False
    checkpoint_index: Optional[int] = None
    checkpoint_label_type: Optional[str] = None
    checkpoint_value: Optional[int] = None
    tokenizer_name: Optional[str] = None
    window_size: Optional[int] = None
    attn_types: Optional[List[str]] = None
    init_mode: str = "gpt2"
    normalization_type: Optional[str] = "LN"
    device: Optional[str] = None
    n_devices: int = 1
    attention_dir: str = "causal"
    attn_only: bool = False
    seed: Optional[int] = None
    initializer_range: float = -1.0
    init_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    positional_embedding_type: str = "standard"
    final_rms: bool = False
    d_vocab_out: int = -1
    parallel_attn_mlp: bool = False
    rotary_dim: Optional[int] = None
    n_params: Optional[int] = None
    use_hook_tokens: bool = False
    gated_mlp: bool = False
    default_prepend_bos: bool = True
    dtype: Any = torch.float32
    tokenizer_prepends_bos: Optional[bool] = None
    n_key_value_heads: Optional[int] = None
    post_embedding_ln: bool = False
    rotary_base: float = 10000
    trust_remote_code: bool = False
    rotary_adjacent_pairs: bool = False
    load_in_4bit: bool = False
    num_experts: Optional[int] = None
    experts_per_token: Optional[int] = None
    relative_attention_max_distance: Optional[int] = None
    relative_attention_num_buckets: Optional[int] = None
    decoder_start_token_id: Optional[int] = None
    tie_word_embeddings: bool = False
    use_normalization_before_and_after: bool = False
    attn_scores_soft_cap: float = -1.0
    output_logits_soft_cap: float = -1.0
    use_NTK_by_parts_rope: bool = False
    NTK_by_parts_low_freq_factor: float = 1.0
    NTK_by_parts_high_freq_factor: float = 4.0
    NTK_by_parts_factor: float = 8.0
    NTK_original_ctx_len: int = 8192
    # --- TransformerLens 3.9 fields for newer families
    use_qk_norm: bool = False
    rotary_base_local: Optional[float] = None
    rotary_scaling_factor: float = 1.0
    # --- lenswidget extensions (defaults reproduce TransformerLens)
    qk_norm_scope: str = "head"
    use_normalization_after_only: bool = False
    norm_weight_in_float32: bool = False
    rotary_longrope: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        self._fill_heads()
        if self.d_mlp is None and not self.attn_only:
            self.d_mlp = 4 * self.d_model
        if not self.attn_only and self.act_fn is None:
            raise ConfigError("act_fn is required unless attn_only=True; valid: " + ", ".join(ACT_FNS))
        if self.act_fn is not None and self.act_fn not in ACT_FNS:
            raise InvalidOptionError("act_fn", self.act_fn, ACT_FNS)
        if self.normalization_type not in NORMALIZATION_TYPES:
            raise InvalidOptionError("normalization_type", self.normalization_type, NORMALIZATION_TYPES)
        if self.positional_embedding_type not in POSITIONAL_EMBEDDING_TYPES:
            raise InvalidOptionError(
                "positional_embedding_type",
                self.positional_embedding_type,
                POSITIONAL_EMBEDDING_TYPES,
            )
        if self.attention_dir not in ATTENTION_DIRS:
            raise InvalidOptionError("attention_dir", self.attention_dir, ATTENTION_DIRS)
        if self.init_mode not in INIT_MODES:
            raise InvalidOptionError("init_mode", self.init_mode, INIT_MODES)
        if self.num_experts is not None:
            raise ConfigError(
                f"num_experts={self.num_experts}: mixture-of-experts models are not supported by lenswidget"
            )
        if self.n_devices != 1:
            raise ConfigError(f"n_devices={self.n_devices}: only single-device models are supported (n_devices=1)")
        if self.load_in_4bit:
            raise ConfigError("load_in_4bit=True is not supported; load in float16/bfloat16/float32")
        self.dtype = parse_dtype(self.dtype)
        if self.use_attn_scale and self.attn_scale == -1.0:
            self.attn_scale = math.sqrt(self.d_head)
        if not self.use_attn_scale:
            self.attn_scale = 1.0
        self._check_rotary()
        self._check_local_attn()
        self._check_norm_placement()
        if self.d_vocab_out == -1:
            self.d_vocab_out = self.d_vocab
        if self.initializer_range < 0:
            self.initializer_range = 0.8 / math.sqrt(self.d_model) if self.init_mode == "gpt2" else 1.0
        if self.device is None:
            self.device = default_device()
        else:
            self.device = str(self.device)
        self._set_n_params()

    # ------------------------------------------------------------------ checks
    def _fill_heads(self) -> None:
        for name in ("n_layers", "d_model", "n_ctx"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name} must be a positive int, got {v!r}")
        if self.d_head == -1 and self.n_heads == -1:
            raise ConfigError("set n_heads or d_head (both are missing)")
        if self.d_head == -1:
            if self.d_model % self.n_heads != 0:
                raise ConfigError(
                    f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                    "pass d_head explicitly or choose n_heads dividing d_model"
                )
            self.d_head = self.d_model // self.n_heads
        elif self.n_heads == -1:
            if self.d_model % self.d_head != 0:
                raise ConfigError(
                    f"d_model={self.d_model} is not divisible by d_head={self.d_head}; pass n_heads explicitly"
                )
            self.n_heads = self.d_model // self.d_head
        if self.n_heads <= 0 or self.d_head <= 0:
            raise ConfigError(f"n_heads and d_head must be positive, got n_heads={self.n_heads}, d_head={self.d_head}")
        kv = self.n_key_value_heads
        if kv is not None:
            if kv <= 0 or self.n_heads % kv != 0:
                raise ConfigError(
                    f"n_heads={self.n_heads} is not divisible by n_key_value_heads={kv}; "
                    "n_key_value_heads must divide n_heads"
                )

    def _check_rotary(self) -> None:
        if self.positional_embedding_type != "rotary":
            return
        if self.rotary_dim is None:
            self.rotary_dim = self.d_head
        if self.rotary_dim > self.d_head or self.rotary_dim <= 0 or self.rotary_dim % 2:
            raise ConfigError(
                f"rotary_dim={self.rotary_dim} must be even and in 2..d_head={self.d_head}"
            )

    def _check_norm_placement(self) -> None:
        if self.qk_norm_scope not in QK_NORM_SCOPES:
            raise InvalidOptionError("qk_norm_scope", self.qk_norm_scope, QK_NORM_SCOPES)
        if self.use_normalization_after_only and self.use_normalization_before_and_after:
            raise ConfigError(
                "use_normalization_after_only and use_normalization_before_and_after are exclusive: "
                "norms either follow the sublayers only (OLMo 2) or surround them (Gemma 2/3)"
            )
        if self.rotary_scaling_factor <= 0:
            raise ConfigError(f"rotary_scaling_factor must be positive, got {self.rotary_scaling_factor}")
        if self.rotary_longrope is not None:
            need = ("short_factor", "long_factor", "original_max_position_embeddings", "attention_factor")
            missing = [k for k in need if k not in self.rotary_longrope]
            if missing:
                raise ConfigError(f"rotary_longrope lacks {missing}; it needs {list(need)}")
            half = (self.rotary_dim or self.d_head) // 2
            for k in ("short_factor", "long_factor"):
                if len(self.rotary_longrope[k]) != half:
                    raise ConfigError(
                        f"rotary_longrope[{k!r}] has {len(self.rotary_longrope[k])} entries; "
                        f"it needs rotary_dim // 2 = {half}"
                    )

    def _check_local_attn(self) -> None:
        if self.attn_types is not None:
            if len(self.attn_types) != self.n_layers:
                raise ConfigError(
                    f"attn_types has {len(self.attn_types)} entries but n_layers={self.n_layers}"
                )
            for t in self.attn_types:
                if t not in ATTN_TYPES:
                    raise InvalidOptionError("attn_types entry", t, ATTN_TYPES)
        if self.use_local_attn:
            if self.window_size is None or self.window_size <= 0:
                raise ConfigError("use_local_attn=True needs a positive window_size")
            if self.attn_types is None:
                self.attn_types = ["local"] * self.n_layers

    def _set_n_params(self) -> None:
        n_kv = self.n_key_value_heads or self.n_heads
        attn = self.d_model * self.d_head * (2 * self.n_heads + 2 * n_kv)
        mlp = 0 if self.attn_only else self.d_model * self.d_mlp * (3 if self.gated_mlp else 2)
        self.n_params = self.n_layers * (attn + mlp)

    # ------------------------------------------------------------------ derived helpers
    @property
    def is_gqa(self) -> bool:
        """True when keys/values have fewer heads than queries."""
        return self.n_key_value_heads is not None and self.n_key_value_heads < self.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.n_key_value_heads if self.is_gqa else self.n_heads

    def layer_is_local(self, layer: int) -> bool:
        """Whether ``layer`` is a local (sliding-window) attention layer."""
        return self.attn_types is not None and self.attn_types[layer] == "local"

    def layer_window(self, layer: int) -> Optional[int]:
        """The sliding window of ``layer``, or None for global attention."""
        if self.use_local_attn and self.attn_types is not None and self.attn_types[layer] == "local":
            return self.window_size
        return None

    # ------------------------------------------------------------------ conversion
    @classmethod
    def unwrap(cls, config: Union["HookedTransformerConfig", Dict[str, Any]]) -> "HookedTransformerConfig":
        """Return ``config`` itself, or a config built from a dict."""
        if isinstance(config, cls):
            return config
        if isinstance(config, dict):
            return cls.from_dict(config)
        raise TypeError(f"expected HookedTransformerConfig or dict, got {type(config).__name__}")

    @classmethod
    def from_dict(cls, config_dict: Dict[str, Any]) -> "HookedTransformerConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in config_dict if k not in names]
        if unknown:
            from lenswidget.errors import UnknownNameError

            raise UnknownNameError("config field", unknown[0], sorted(names))
        return cls(**config_dict)

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __repr__(self) -> str:
        return "HookedTransformerConfig:\n" + "\n".join(f"  {k}: {v!r}" for k, v in self.to_dict().items())

    def set_seed_everywhere(self, seed: int) -> None:
        import random

        import numpy as np

        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)


__all__ = ["HookedTransformerConfig", "parse_dtype", "ACT_FNS", "NORMALIZATION_TYPES", "POSITIONAL_EMBEDDING_TYPES"]
