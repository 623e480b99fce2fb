"""``from_pretrained``: HF source -> lenswidget config + converted, processed weights -> model."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

import torch

from lenswidget.errors import ConfigError, InvalidOptionError, OutOfRangeError

from . import config_cache, placement, processed_cache
from .checkpoint import SafetensorsCheckpoint
from .materialize import folded_norm_type, materialize
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


def _skeleton(cls: type, cfg: Any, **kwargs: Any) -> Any:
    """``cls(cfg)`` with every parameter on the meta device: nothing is allocated, and the
    checkpoint's tensors are assigned as the parameters afterwards."""
    device, name = cfg.device, cfg.tokenizer_name
    cfg.device = "meta"
    if kwargs.get("tokenizer") is None:
        cfg.tokenizer_name = None  # no tokenizer loaded by name here: from_pretrained sees to it
    try:
        return cls(cfg, **kwargs)
    finally:
        cfg.device, cfg.tokenizer_name = device, name


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

    Several devices (see :mod:`lenswidget.loading.placement`): ``n_devices=k`` splits the
    blocks over k GPUs; ``device_map="auto" | "balanced" | "sequential" | {module: device}``
    with ``max_memory={0: "20GiB", "cpu": "64GiB"}`` places whole blocks with accelerate;
    ``offload_folder`` holds the weights of modules mapped to ``"disk"``. ``device`` is then
    the main device, where results come back.

    Weights go straight into the target dtype on their device, one block at a time (see
    :mod:`lenswidget.loading.materialize`). Remaining keyword arguments go to the hub client
    (hub ids only: revision, cache_dir, token, ...).
    """
    for unsupported in ("checkpoint_index", "checkpoint_value"):
        if hf_kwargs.pop(unsupported, None) is not None:
            raise ConfigError(f"{unsupported} is not supported: load the checkpoint's directory "
                              "or hub revision instead (revision=...)")
    n_devices = hf_kwargs.pop("n_devices", 1)
    device_map = hf_kwargs.pop("device_map", None)
    max_memory = hf_kwargs.pop("max_memory", None)
    offload_folder = hf_kwargs.pop("offload_folder", None)
    hf_kwargs.pop("low_cpu_mem_usage", None)  # HF's option; lenswidget always loads lean
    if default_padding_side not in ("left", "right", None):
        raise InvalidOptionError("default_padding_side", default_padding_side, ("left", "right"))
    target_dtype = _dtype(dtype, hf_kwargs)
    src = resolve_source(model_name, hf_model=hf_model, tokenizer=tokenizer, **hf_kwargs)
    family = family_for(src.config_summary())
    config_cls = getattr(cls, "config_class", None)
    if config_cls is None:
        from lenswidget.config import HookedTransformerConfig as config_cls
    own_dir = src.directory is not None and processed_cache.is_cache_owned(src.directory)
    cacheable = own_dir and src.config_dict is not None
    entry = config_cache.load(src.directory) if cacheable else None
    fields = entry["fields"] if entry is not None else family.config_from_hf(src.hf_config)
    # The tokenizer of a directory in lenswidget's cache whose facts are cached loads on first use
    # (with transformers): a reload imports no transformers until text is tokenized.
    facts = (entry or {}).get("tokenizer")
    defer = src.tokenizer_loader is not None and facts is not None
    tok = None if defer else src.tokenizer
    own_side = getattr(tok, "padding_side", None)
    cfg = build_config(config_cls, src.config_summary() if cacheable else src.hf_config, fields,
                       name=src.name, tokenizer=tok,
                       tokenizer_name=src.tokenizer_name if src.has_tokenizer else None,
                       dtype=target_dtype, device=device, first_n_layers=first_n_layers,
                       default_prepend_bos=default_prepend_bos,
                       architecture=type(hf_model).__name__ if hf_model is not None
                       else family.ARCHITECTURES[0])
    if defer:
        cfg.tokenizer_prepends_bos = facts["prepends_bos"]
    model = _skeleton(cls, cfg, tokenizer=tok, move_to_device=move_to_device,
                      default_padding_side=default_padding_side)
    if defer:
        model._defer_tokenizer(src.tokenizer_loader, default_padding_side or facts.get("padding_side") or "right")
    elif cacheable and (entry is None or (facts is None and tokenizer is None)):
        config_cache.save(src.directory, {"fields": fields, "tokenizer": None if tokenizer is not None else
                                          {"prepends_bos": cfg.tokenizer_prepends_bos, "padding_side": own_side}})
    placed = placement.plan_placement(model, device_map=device_map, n_devices=n_devices,
                                      max_memory=max_memory, dtype=target_dtype, device=device,
                                      offload_folder=offload_folder)
    if placed is not None and not placed.is_split:  # one device after all (as HF does)
        cfg.device, placed = str(next(iter(placed.devices.values()))), None
    if placed is not None:
        placement.check_available(placed)
        cfg.device = placed.main
    home = torch.device(cfg.device) if move_to_device or placed is not None else torch.device("cpu")
    layout = model.state_dict()
    flags = dict(fold_ln=fold_ln, center_writing_weights=center_writing_weights,
                 center_unembed=center_unembed, fold_value_biases=fold_value_biases,
                 refactor_factored_attn_matrices=refactor_factored_attn_matrices)
    # processing runs in float32 (float64 if that was asked for), whatever the final dtype
    work = torch.float64 if target_dtype == torch.float64 else torch.float32
    sink = _Sink(placed, home)
    # Processed weights of models in lenswidget's own cache are cached too (see processed_cache).
    use_cache = any(flags.values()) and own_dir
    key = (processed_cache.cache_key(src.directory, dict(flags, float64=work == torch.float64), layout)
           if use_cache else "")
    cached = processed_cache.load(src.directory, key) if use_cache else None
    if cached is not None:
        sd, norm_type, ckpt = cached
        weights, run_flags, owned, writer = sd, dict.fromkeys(flags, False), True, None
    else:
        ckpt = src.state_dict if isinstance(src.state_dict, SafetensorsCheckpoint) else None
        weights = dict(family.convert_state_dict(src.state_dict, cfg))
        run_flags, owned = flags, src.owned
        norm_type = folded_norm_type(cfg, flags)
        writer = processed_cache.Writer(src.directory, key, list(layout)) if use_cache else None
    # Views of the checkpoint become parameters (processed in place) when they can stay as they
    # are (CPU, processing dtype == target dtype); otherwise everything is copied, block by
    # block, and the checkpoint pages already copied are released.
    zero_copy = owned and placed is None and home.type == "cpu" and target_dtype == work
    try:
        materialize(weights, cfg, layout, flags=run_flags, work_dtype=work, target_dtype=target_dtype,
                    work_device=sink.work_device, deliver=sink.deliver, zero_copy=zero_copy,
                    release=ckpt.release if ckpt is not None and not zero_copy else None,
                    record=writer.write if writer is not None else None)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.finish(norm_type)
    if norm_type != cfg.normalization_type:
        cfg.normalization_type = norm_type
        model._rebuild_norms()
    sink.load_into(model)
    model.eval()
    print(f"Loaded pretrained model {src.name} into HookedTransformer"
          + (f" ({placed.describe()})" if placed is not None else ""))
    return model


class _Sink:
    """Where each final tensor goes: onto its unit's device, or into the offload folder."""

    def __init__(self, placed: placement.Placement | None, home: torch.device):
        self.placed, self.home = placed, home
        self.params: dict[str, torch.Tensor] = {}
        self.disk_index: dict = {}

    def work_device(self, group: str) -> torch.device:
        if self.placed is None:
            return self.home
        unit = group or "unembed"
        dev = self.placed.weight_device(unit) if unit in self.placed.devices else torch.device(self.placed.main)
        return dev if dev.type != "cpu" else torch.device("cpu")

    def deliver(self, name: str, t: torch.Tensor) -> None:
        if self.placed is None:
            self.params[name] = t if t.device == self.home else t.to(self.home)
            return
        unit = placement.unit_of(name)
        if self.placed.devices.get(unit) == "disk":
            placement.offload_to_disk(self.placed, name, t, self.disk_index)
            return
        dev = self.placed.weight_device(unit) if unit in self.placed.devices else torch.device(self.placed.main)
        self.params[name] = t if t.device == dev else t.to(dev)

    def load_into(self, model: Any) -> None:
        if self.disk_index:
            from accelerate.utils import save_offload_index

            save_offload_index(self.disk_index, self.placed.offload_folder)
            for name, info in self.disk_index.items():
                self.params[name] = placement.map_offloaded(self.placed, name, info)
        missing, unexpected = model.load_state_dict(self.params, strict=False, assign=True)
        params = dict(model.named_parameters())
        missing = [k for k in missing if k in params]
        unexpected = [k for k in unexpected if k not in params]
        if missing or unexpected:
            raise ConfigError(
                "state dict does not match the model: "
                + (f"missing parameters {missing[:8]}" if missing else "")
                + ("; " if missing and unexpected else "")
                + (f"unexpected keys {list(unexpected)[:8]}" if unexpected else ""))
        if self.placed is not None:
            placement.dispatch(model, self.placed)
