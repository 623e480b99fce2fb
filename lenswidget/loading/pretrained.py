"""``from_pretrained``: HF source -> lenswidget config + converted, processed weights -> model."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

import torch

from lenswidget import processing
from lenswidget.errors import ConfigError, InvalidOptionError, OutOfRangeError

from . import processed_cache
from .registry import family_for
from .sources import resolve_source

_LOAD_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _dtype(dtype: Any, hf_kwargs: dict) -> torch.dtype:
    from lenswidget.config import parse_dtype

    alias = hf_kwargs.pop("torch_dtype", None)  # TransformerLens passes this through to HF
    value = parse_dtype(dtype if dtype is not None else alias)
    if value not in _LOAD_DTYPES:
        raise InvalidOptionError("dtype", value, _LOAD_DTYPES)
    return value


def tokenizer_prepends_bos(tokenizer: Any) -> bool | None:
    """Whether ``tokenizer`` adds its BOS token by itself when encoding text."""
    if tokenizer is None or getattr(tokenizer, "bos_token_id", None) is None:
        return None if tokenizer is None else False
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:
        return None
    return bool(ids) and ids[0] == tokenizer.bos_token_id


# TransformerLens 3.9 (loading_from_pretrained.get_pretrained_model_config) prepends BOS by
# default for every architecture except these, whose configs set default_prepend_bos=False.
NO_BOS_ARCHITECTURES = frozenset({
    "GPTNeoXForCausalLM", "BloomForCausalLM", "QWenLMHeadModel", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
    "PhiForCausalLM",
})


def tl_default_prepend_bos(architecture: str | None) -> bool:
    """TransformerLens 3.9's ``default_prepend_bos`` for an HF architecture name (see docs/compat.md)."""
    return architecture not in NO_BOS_ARCHITECTURES


def build_config(config_cls: type, src_config: Any, fields: dict, *, name: str,
                 tokenizer: Any, tokenizer_name: str | None, dtype: torch.dtype, device: Any,
                 first_n_layers: int | None, default_prepend_bos: bool | None,
                 architecture: str | None = None) -> Any:
    """The model config: the family's fields plus loading options."""
    fields = dict(fields)
    if first_n_layers is not None:
        n = fields["n_layers"]
        if not isinstance(first_n_layers, int) or not 1 <= first_n_layers <= n:
            raise OutOfRangeError("first_n_layers", first_n_layers, 1, n)
        fields["n_layers"] = first_n_layers
        if fields.get("attn_types"):
            fields["attn_types"] = fields["attn_types"][:first_n_layers]
    prepends = tokenizer_prepends_bos(tokenizer)
    archs = getattr(src_config, "architectures", None) or [architecture]
    fields.pop("default_prepend_bos", None)  # one rule for every family: TransformerLens 3.9's
    if default_prepend_bos is None:
        default_prepend_bos = tl_default_prepend_bos(archs[0])
    fields.update(
        model_name=name,
        tokenizer_name=tokenizer_name,
        original_architecture=archs[0],
        default_prepend_bos=bool(default_prepend_bos),
        tokenizer_prepends_bos=prepends,
        dtype=dtype,
        init_weights=False,  # every parameter is overwritten by the checkpoint
    )
    if device is not None:
        fields["device"] = str(device)
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:  # a converter and the config class disagree: never drop a setting silently
        raise ConfigError(f"config fields {unknown} are not known to {config_cls.__name__}")
    return config_cls(**fields)


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and the same strides on every dimension that has more than one element."""
    return a.shape == b.shape and all(n <= 1 or sa == sb
                                      for n, sa, sb in zip(a.shape, a.stride(), b.stride()))


def _byte_range(t: torch.Tensor) -> tuple[int, int, int]:
    """(storage address, first byte, one past the last byte) that ``t`` can touch."""
    extent = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride())) if t.numel() else 0
    start = t.storage_offset() * t.element_size()
    return t.untyped_storage().data_ptr(), start, start + extent * t.element_size()


def convert_weights(family: Any, hf_state_dict: Any, cfg: Any, layout: dict[str, torch.Tensor],
                    owned: bool = False, work_dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Run the family converter; return ``work_dtype`` CPU tensors laid out like ``layout`` (the
    model's own parameters, whose memory layout its forward pass relies on), private to the caller.

    A converted view is kept as is (no copy) when the source tensors are ``owned`` (private
    copy-on-write mappings), already ``work_dtype``, laid out like the parameter and not overlapping
    another weight (e.g. a tied unembedding); otherwise it is copied once into that layout.
    """
    out: dict[str, torch.Tensor] = {}
    claimed: dict[int, list[tuple[int, int]]] = {}
    for k, v in family.convert_state_dict(hf_state_dict, cfg).items():
        ref = layout.get(k)
        if ref is not None and ref.shape != v.shape:
            raise ConfigError(f"converted weight {k!r} has shape {tuple(v.shape)} but the model "
                              f"expects {tuple(ref.shape)}; the HF config and checkpoint disagree")
        ptr, lo, hi = _byte_range(v)
        reuse = (owned and v.dtype == work_dtype and (ref is None or _same_layout(v, ref))
                 and not any(lo < b and a < hi for a, b in claimed.get(ptr, ())))
        if not reuse:
            dtype = work_dtype if v.is_floating_point() else v.dtype
            if ref is None:
                v = v.to(dtype=dtype, memory_format=torch.contiguous_format, copy=True)
            else:
                v = torch.empty_strided(ref.shape, ref.stride(), dtype=dtype).copy_(v)
            ptr, lo, hi = _byte_range(v)
        claimed.setdefault(ptr, []).append((lo, hi))
        out[k] = v
    return out


def from_pretrained(
    cls: type,
    model_name: str | os.PathLike | None,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
    fold_value_biases: bool = True,
    refactor_factored_attn_matrices: bool = False,
    hf_model: Any | None = None,
    tokenizer: Any | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    first_n_layers: int | None = None,
    default_prepend_bos: bool | None = None,
    default_padding_side: Literal["left", "right"] | None = None,
    move_to_device: bool = True,
    **hf_kwargs: Any,
) -> Any:
    """Load ``model_name`` into a new ``cls`` (a HookedTransformer class).

    ``model_name`` is the built-in ``"SmolLM2-135M-Instruct"``, a local HF directory, a
    ``.gguf`` file or a hub id; ``hf_model`` supplies weights and config from memory. The
    processing flags are those of :func:`lenswidget.processing.process_state_dict`.
    ``default_prepend_bos=None`` follows TransformerLens 3.9's rule (BOS prepended except for
    GPT-NeoX, Bloom, Qwen, Qwen2, Qwen3 and Phi; SmolLM2, a Llama, gets ``<|im_start|>``); pass
    ``default_prepend_bos=False`` for HF's own tokenisation.
    Remaining keyword arguments go to transformers (hub ids only).
    """
    for unsupported in ("checkpoint_index", "checkpoint_value"):
        if hf_kwargs.pop(unsupported, None) is not None:
            raise ConfigError(f"{unsupported} is not supported: load the checkpoint's directory "
                              "or hub revision instead (revision=...)")
    if hf_kwargs.pop("n_devices", 1) != 1:
        raise ConfigError("n_devices must be 1: lenswidget runs a model on one device")
    if default_padding_side not in ("left", "right", None):
        raise InvalidOptionError("default_padding_side", default_padding_side, ("left", "right"))
    target_dtype = _dtype(dtype, hf_kwargs)
    src = resolve_source(model_name, hf_model=hf_model, tokenizer=tokenizer, **hf_kwargs)
    family = family_for(src.hf_config)
    config_cls = getattr(cls, "config_class", None)
    if config_cls is None:
        from lenswidget.config import HookedTransformerConfig as config_cls
    cfg = build_config(config_cls, src.hf_config, family.config_from_hf(src.hf_config),
                       name=src.name, tokenizer=src.tokenizer,
                       tokenizer_name=src.tokenizer_name if src.tokenizer is not None else None,
                       dtype=target_dtype, device=device, first_n_layers=first_n_layers,
                       default_prepend_bos=default_prepend_bos,
                       architecture=type(hf_model).__name__ if hf_model is not None
                       else family.ARCHITECTURES[0])
    # Build the model first (parameters are allocated, not initialised) to learn its parameter
    # layout; weights are then used in place (memory-mapped) or copied once into that layout,
    # processed in place, and assigned as the parameters.
    model = cls(cfg, tokenizer=src.tokenizer, move_to_device=move_to_device,
                default_padding_side=default_padding_side)
    layout = model.state_dict()
    flags = dict(fold_ln=fold_ln, center_writing_weights=center_writing_weights,
                 center_unembed=center_unembed, fold_value_biases=fold_value_biases,
                 refactor_factored_attn_matrices=refactor_factored_attn_matrices)
    # Processed weights of models in lenswidget's own cache are cached too (see processed_cache).
    use_cache = (any(flags.values()) and src.directory is not None
                 and processed_cache.is_cache_owned(src.directory))
    # processing runs in float32 (float64 if that was asked for), whatever the final dtype
    work = torch.float64 if target_dtype == torch.float64 else torch.float32
    key = (processed_cache.cache_key(src.directory, dict(flags, float64=work == torch.float64), layout)
           if use_cache else "")
    cached = processed_cache.load(src.directory, key) if use_cache else None
    if cached is not None:
        sd, norm_type = cached
    else:
        sd = convert_weights(family, src.state_dict, cfg, layout, owned=src.owned, work_dtype=work)
        sd, norm_type = processing.process_state_dict(sd, cfg, **flags, inplace=True)
        if use_cache:
            processed_cache.save(src.directory, key, sd, norm_type)
    if norm_type != cfg.normalization_type:
        cfg.normalization_type = norm_type
        model._rebuild_norms()
    device = model.embed.W_E.device
    sd = {k: v.to(device=device, dtype=target_dtype) if v.is_floating_point() else v.to(device)
          for k, v in sd.items()}
    processing.load_state_dict_strict(model, sd, assign=True)
    model.eval()
    print(f"Loaded pretrained model {src.name} into HookedTransformer")
    return model
