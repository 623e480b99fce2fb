"""SAE configuration: the fields of SAELens's ``cfg.json`` (6.x, and the older flat format).

>>> cfg = SAEConfig.from_dict({"d_in": 8, "d_sae": 32, "architecture": "topk", "k": 4,
...                            "metadata": {"hook_name": "blocks.0.hook_resid_post"}})
>>> cfg.architecture, cfg.k, cfg.metadata.hook_name, cfg.metadata.hook_name_out
('topk', 4, 'blocks.0.hook_resid_post', None)
>>> cfg.hook_name_out  # an SAE reads and writes the same hook
'blocks.0.hook_resid_post'
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional

import torch

from lenswidget.errors import ConfigError, InvalidOptionError

__all__ = ["SAEConfig", "SAEMetadata", "ARCHITECTURES", "TRANSCODERS", "NORMALIZATIONS", "dtype_from_str",
           "dtype_to_str"]

#: architecture -> (activation, is transcoder, has skip connection)
ARCHITECTURES: Dict[str, tuple] = {
    "standard": ("relu", False, False),
    "jumprelu": ("jumprelu", False, False),
    "topk": ("topk", False, False),
    "transcoder": ("relu", True, False),
    "jumprelu_transcoder": ("jumprelu", True, False),
    "skip_transcoder": ("relu", True, True),
    "jumprelu_skip_transcoder": ("jumprelu", True, True),
}
TRANSCODERS = tuple(a for a, (_, t, _) in ARCHITECTURES.items() if t)
# "expected_average_only_in" runs as "none" (as in SAELens: the scaling factor is folded into
# the weights by whoever publishes the SAE, load_from_disk does not apply it).
NORMALIZATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm")
RESHAPES = ("none", "hook_z")

SAELENS_FORMAT_VERSION = "6.0.0"
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16}


def dtype_from_str(value: Any) -> torch.dtype:
    """``"float32"`` / ``"torch.bfloat16"`` / a torch dtype -> torch dtype (floating only)."""
    if isinstance(value, torch.dtype):
        if not value.is_floating_point:
            raise InvalidOptionError("SAE dtype", value, list(_DTYPES))
        return value
    key = str(value).replace("torch.", "")
    if key not in _DTYPES:
        raise InvalidOptionError("SAE dtype", value, list(_DTYPES))
    return _DTYPES[key]


def dtype_to_str(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


class SAEMetadata(dict):
    """How the SAE is used: ``hook_name``, ``hook_name_out`` (transcoders), ``model_name``...

    A dict whose keys also read as attributes; a missing key reads as None (as in SAELens).
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def to_dict(self) -> dict:
        return dict(self)

    def __deepcopy__(self, memo):
        return SAEMetadata(copy.deepcopy(dict(self), memo))


# keys of the pre-6.0 flat cfg.json that belong in metadata
_METADATA_KEYS = ("model_name", "hook_name", "model_class_name", "hook_head_index", "model_from_pretrained_kwargs",
                  "prepend_bos", "exclude_special_tokens", "neuronpedia_id", "context_size", "seqpos_slice",
                  "dataset_path", "sae_lens_version", "sae_lens_training_version", "hook_name_out",
                  "hook_head_index_out", "hf_hook_name", "hf_hook_name_out")
_RENAMES = {"hook_point": "hook_name", "hook_point_head_index": "hook_head_index",
            "activation_fn_str": "activation_fn", "hook_point_out": "hook_name_out"}


@dataclass
class SAEConfig:
    """An SAE's shape, architecture and numerics (SAELens 6 ``cfg.json`` fields).

    ``d_out`` is the decoder's width: ``d_in`` for SAEs, the output hook's width for transcoders.
    """

    d_in: int
    d_sae: int
    architecture: str = "standard"
    d_out: Optional[int] = None
    dtype: str = "float32"
    device: str = "cpu"
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"
    reshape_activations: str = "none"
    k: Optional[int] = None
    rescale_acts_by_decoder_norm: bool = False
    metadata: SAEMetadata = field(default_factory=SAEMetadata)

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, SAEMetadata):
            self.metadata = SAEMetadata(dict(self.metadata or {}))
        if self.architecture not in ARCHITECTURES:
            raise InvalidOptionError("SAE architecture", self.architecture, list(ARCHITECTURES))
        for name in ("d_in", "d_sae"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"SAE config: {name} must be a positive integer, got {v!r}")
        if self.d_out is None:
            self.d_out = self.d_in
        if self.is_transcoder:
            if self.apply_b_dec_to_input:
                # SAELens refuses it too: b_dec lives in the output space
                raise ConfigError("SAE config: apply_b_dec_to_input must be False for a transcoder "
                                  f"({self.architecture}): b_dec has the output width d_out={self.d_out}")
        elif self.d_out != self.d_in:
            raise ConfigError(f"SAE config: an SAE ({self.architecture}) reconstructs its input, so d_out "
                              f"({self.d_out}) must equal d_in ({self.d_in}); use a transcoder architecture "
                              f"({', '.join(TRANSCODERS)}) to map between hooks")
        if self.architecture == "topk":
            if isinstance(self.k, bool) or not isinstance(self.k, int) or not 0 < self.k <= self.d_sae:
                raise ConfigError(f"SAE config: topk needs an integer k in 1..d_sae={self.d_sae}, got {self.k!r}")
        if self.normalize_activations in (None, False):
            self.normalize_activations = "none"
        if self.normalize_activations is True:
            self.normalize_activations = "expected_average_only_in"
        if self.normalize_activations not in NORMALIZATIONS:
            raise InvalidOptionError("SAE normalize_activations", self.normalize_activations, NORMALIZATIONS)
        if self.reshape_activations not in RESHAPES:
            raise InvalidOptionError("SAE reshape_activations", self.reshape_activations, RESHAPES)
        if self.is_transcoder and self.normalize_activations in ("constant_norm_rescale", "layer_norm"):
            raise ConfigError("SAE config: run-time input normalisation is not defined for transcoders "
                              "(the output lives in another space)")
        self.dtype = dtype_to_str(dtype_from_str(self.dtype))
        if not self.metadata.get("hook_name"):
            raise ConfigError("SAE config: metadata.hook_name (the hook point the SAE reads) is missing")

    # ------------------------------------------------------------------ derived
    @property
    def activation(self) -> str:
        return ARCHITECTURES[self.architecture][0]

    @property
    def is_transcoder(self) -> bool:
        return ARCHITECTURES[self.architecture][1]

    @property
    def has_skip(self) -> bool:
        return ARCHITECTURES[self.architecture][2]

    @property
    def hook_name(self) -> str:
        return self.metadata["hook_name"]

    @property
    def hook_name_out(self) -> str:
        return self.metadata.get("hook_name_out") or self.metadata["hook_name"]

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, data: Dict[str, Any], **overrides: Any) -> "SAEConfig":
        """Parse a SAELens ``cfg.json`` dict (6.x nested metadata, or the older flat format)."""
        d = {_RENAMES.get(k, k): v for k, v in dict(data).items()}
        d.update(overrides)
        meta = SAEMetadata(dict(d.pop("metadata", None) or {}))
        for key in _METADATA_KEYS:  # flat (pre-6.0) keys go to metadata unless it has them
            if key in d:
                value = d.pop(key)
                meta.setdefault(key, value)
        arch = d.get("architecture") or "standard"
        act = d.pop("activation_fn", None)
        kwargs = d.pop("activation_fn_kwargs", None) or {}
        if act == "topk" and arch == "standard":
            arch = "topk"
        if arch == "topk" and d.get("k") is None and kwargs.get("k") is not None:
            d["k"] = int(kwargs["k"])
        if act not in (None, "relu", "topk"):
            raise InvalidOptionError("SAE activation_fn", act, ["relu", "topk"])
        if d.get("finetuning_scaling_factor"):
            raise ConfigError("SAE config: finetuning_scaling_factor=True (an unfolded per-feature scale) is not "
                              "supported; fold it into W_dec first")
        if arch == "transcoder" or arch in TRANSCODERS:
            d.setdefault("apply_b_dec_to_input", False)
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        kept["architecture"] = arch
        kept["metadata"] = meta
        if "d_in" not in kept or "d_sae" not in kept:
            raise ConfigError(f"SAE config needs d_in and d_sae; it has keys {sorted(data)}")
        return cls(**kept)

    def to_dict(self) -> Dict[str, Any]:
        """SAELens 6 ``cfg.json`` layout (``d_out`` only for transcoders, ``k`` only for topk).

        ``metadata.sae_lens_version`` is set to ``"6.0.0"`` when absent: SAELens's loader reads
        folders without it as the pre-6.0 flat layout and would drop the nested metadata.
        """
        meta = self.metadata.to_dict()
        if not meta.get("sae_lens_version"):
            meta["sae_lens_version"] = SAELENS_FORMAT_VERSION
        out: Dict[str, Any] = {
            "d_in": self.d_in, "d_sae": self.d_sae, "dtype": self.dtype, "device": self.device,
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": self.normalize_activations,
            "reshape_activations": self.reshape_activations,
            "metadata": meta, "architecture": self.architecture,
        }
        if self.is_transcoder:
            out["d_out"] = self.d_out
        if self.architecture == "topk":
            out["k"] = self.k
            out["rescale_acts_by_decoder_norm"] = self.rescale_acts_by_decoder_norm
        return out
