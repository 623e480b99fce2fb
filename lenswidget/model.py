"""HookedTransformer: a decoder-only transformer with a HookPoint on every activation.

Build one with random weights from a config, or load one with ``from_pretrained``:

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=16, n_heads=4, d_vocab=50, act_fn="gelu", seed=0)
>>> model = HookedTransformer(cfg)
>>> model(torch.tensor([[1, 2, 3]])).shape
torch.Size([1, 3, 50])
>>> logits, cache = model.run_with_cache(torch.tensor([[1, 2, 3]]))
>>> cache["blocks.0.attn.hook_pattern"].shape
torch.Size([1, 4, 3, 3])
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, NamedTuple, Optional, Union

import torch
import torch.nn as nn

from lenswidget.components.block import TransformerBlock
from lenswidget.components.embed import Embed
from lenswidget.components.masking import positions_from_mask
from lenswidget.components.norms import make_norm
from lenswidget.components.pos_embed import PosEmbed
from lenswidget.components.rotary import RotaryTable
from lenswidget.components.unembed import Unembed
from lenswidget.config import HookedTransformerConfig
from lenswidget.errors import (
    InvalidOptionError,
    OutOfRangeError,
    ShapeMismatchError,
)
from lenswidget.hooks import HookedRootModule, HookPoint
from lenswidget.hooks import hook_or_pass as _h
from lenswidget.model_analysis import AnalysisMixin
from lenswidget.model_generate import GenerationMixin
from lenswidget.model_tokens import TokenizationMixin
from lenswidget.model_weights import WeightsMixin

logger = logging.getLogger("lenswidget.model")

RETURN_TYPES = ("logits", "loss", "both", None)


class Output(NamedTuple):
    """``return_type="both"``: logits [batch, pos, d_vocab] and the loss."""

    logits: torch.Tensor
    loss: torch.Tensor


def _relayout_after_load(module: "HookedTransformer", incompatible_keys: Any) -> None:
    module.ensure_fast_layout()


class HookedTransformer(AnalysisMixin, TokenizationMixin, GenerationMixin, WeightsMixin, HookedRootModule):
    """TransformerLens-compatible hooked transformer (see the module docstring)."""

    def __init__(
        self,
        cfg: Union[HookedTransformerConfig, Dict[str, Any]],
        tokenizer: Any = None,
        move_to_device: bool = True,
        default_padding_side: Optional[str] = None,
    ):
        super().__init__()
        cfg = HookedTransformerConfig.unwrap(cfg)
        self.cfg = cfg
        self.tokenizer = None
        if tokenizer is not None:
            self.set_tokenizer(tokenizer, default_padding_side=default_padding_side)
        elif cfg.tokenizer_name is not None:
            self._load_tokenizer_by_name(cfg.tokenizer_name, default_padding_side)
        if cfg.d_vocab <= 0:
            from lenswidget.errors import ConfigError

            raise ConfigError("d_vocab must be set in the config when no tokenizer is given")
        if cfg.d_vocab_out <= 0:
            cfg.d_vocab_out = cfg.d_vocab

        device = torch.device(cfg.device) if move_to_device else torch.device("cpu")
        with device:
            self._build()
        if cfg.init_weights:
            self.init_weights()
        self.register_load_state_dict_post_hook(_relayout_after_load)
        self.setup()

    def ensure_fast_layout(self) -> int:
        """Re-lay-out weights that lost the F.linear-friendly layout (e.g. loaded with assign=True).

        Runs automatically after ``load_state_dict``; returns how many parameters were copied.
        """
        from lenswidget.components.layout import relayout_

        return sum(relayout_(mod, mod.LAYOUTS) for mod in self.modules() if hasattr(mod, "LAYOUTS"))

    def _build(self) -> None:
        cfg = self.cfg
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()
        if cfg.positional_embedding_type in ("standard", "shortformer"):
            self.pos_embed = PosEmbed(cfg)
            self.hook_pos_embed = HookPoint()
        if cfg.use_hook_tokens:
            self.hook_tokens = HookPoint()
        rotary = RotaryTable.per_layer(cfg) if cfg.positional_embedding_type == "rotary" else [None] * cfg.n_layers
        self.blocks = nn.ModuleList([TransformerBlock(cfg, i, rotary[i]) for i in range(cfg.n_layers)])
        self.ln_final = make_norm(cfg, final=True)
        self.unembed = Unembed(cfg)

    @property
    def tokenizer(self) -> Any:
        """The HF tokenizer (None without one). ``from_pretrained`` may leave the tokenizer of a
        model in lenswidget's cache to be loaded here, on first use."""
        pending = self.__dict__.pop("_tokenizer_pending", None)
        if pending is not None:
            loader, side = pending
            self.set_tokenizer(loader(), default_padding_side=side)
        return self.__dict__.get("_tokenizer")

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        self.__dict__.pop("_tokenizer_pending", None)
        self.__dict__["_tokenizer"] = value

    def _defer_tokenizer(self, loader: Any, padding_side: str) -> None:
        """Load the tokenizer with ``loader()`` when it is first used (padding on ``padding_side``)."""
        self.__dict__["_tokenizer_pending"] = (loader, padding_side)

    def _load_tokenizer_by_name(self, name: str, padding_side: str) -> None:
        try:
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
            except Exception:
                tok = AutoTokenizer.from_pretrained(name)
        except Exception as exc:  # offline or unknown name: the model still works on token ids
            logger.warning("could not load tokenizer %r (%s); the model will only accept token ids", name, exc)
            return
        self.set_tokenizer(tok, default_padding_side=padding_side)

    # ------------------------------------------------------------------ weights init
    def init_weights(self) -> None:
        """Random weights (``cfg.init_mode``, seeded by ``cfg.seed``); biases 0, norm weights 1."""
        cfg = self.cfg
        gen = torch.Generator()
        if cfg.seed is not None:
            gen.manual_seed(cfg.seed)
        else:
            gen.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        with torch.no_grad():
            for name, p in self.named_parameters():
                leaf = name.split(".")[-1]
                if leaf.lstrip("_").startswith("W_"):
                    p.copy_(self._init_tensor(leaf.lstrip("_"), tuple(p.shape), gen).to(p.dtype))
                elif leaf in ("w",):
                    p.fill_(1.0)
                else:
                    p.zero_()

    def _init_tensor(self, leaf: str, shape: tuple, gen: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        mode = cfg.init_mode
        if mode == "gpt2":
            return torch.randn(shape, generator=gen) * cfg.initializer_range
        if len(shape) == 3:
            if leaf == "W_O":
                fan_in, fan_out = shape[0] * shape[1], shape[2]
            else:
                fan_in, fan_out = shape[1], shape[0] * shape[2]
        else:
            fan_in, fan_out = shape[0], shape[1]
        gain = cfg.initializer_range
        if mode == "xavier_uniform":
            bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
            return (torch.rand(shape, generator=gen) * 2 - 1) * bound
        if mode == "xavier_normal":
            return torch.randn(shape, generator=gen) * gain * math.sqrt(2.0 / (fan_in + fan_out))
        relu_gain = math.sqrt(2.0) * gain
        if mode == "kaiming_uniform":
            bound = relu_gain * math.sqrt(3.0 / fan_in)
            return (torch.rand(shape, generator=gen) * 2 - 1) * bound
        return torch.randn(shape, generator=gen) * relu_gain / math.sqrt(fan_in)  # kaiming_normal

    # ------------------------------------------------------------------ structure changes
    def _rebuild_norms(self) -> None:
        """Rebuild ln1/ln2/ln_final for the current ``cfg.normalization_type``; re-run setup()."""
        ref = self.embed.W_E
        for block in self.blocks:
            block.rebuild_norms()
        self.ln_final = make_norm(self.cfg, final=True)
        for mod in [self.ln_final] + [m for b in self.blocks for m in (b._modules.get("ln1"), b._modules.get("ln2"))]:
            if mod is not None:
                mod.to(device=ref.device, dtype=ref.dtype)
        self.setup()

    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """Compute and expose per-head outputs ``attn.hook_result`` [batch, pos, head, d_model]."""
        self.cfg.use_attn_result = bool(use_attn_result)

    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """Expose per-head query/key/value inputs ``hook_q_input`` etc. [batch, pos, head, d_model]."""
        self.cfg.use_split_qkv_input = bool(use_split_qkv_input)

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        """Expose the MLP input ``hook_mlp_in`` [batch, pos, d_model]."""
        if use_hook_mlp_in and self.cfg.attn_only:
            from lenswidget.errors import ConfigError

            raise ConfigError("set_use_hook_mlp_in: this model is attn_only and has no MLPs")
        self.cfg.use_hook_mlp_in = bool(use_hook_mlp_in)

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        """Expose the per-head attention input ``hook_attn_in`` [batch, pos, head, d_model]."""
        self.cfg.use_attn_in = bool(use_attn_in)

    def set_ungroup_grouped_query_attention(self, ungroup_grouped_query_attention: bool) -> None:
        """With GQA, give ``hook_k``/``hook_v`` one head per query head (repeat_interleave)."""
        self.cfg.ungroup_grouped_query_attention = bool(ungroup_grouped_query_attention)

    # ------------------------------------------------------------------ devices
    def to(self, *args: Any, print_details: bool = True, **kwargs: Any) -> "HookedTransformer":
        """``nn.Module.to`` that also records the device/dtype in ``cfg``."""
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if self.__dict__.get("_placement") is not None and (device is not None or dtype is not None):
            from lenswidget.errors import ConfigError

            raise ConfigError(f"this model is placed over several devices ({self._placement.describe()}); "
                              "load it again with device=... (and no device_map) to have it on one device")
        if device is not None:
            if print_details and torch.device(device) != torch.device(self.cfg.device):
                print("Moving model to device: ", device)
            self.cfg.device = str(device)
        if dtype is not None:
            self.cfg.dtype = dtype
        return super().to(*args, **kwargs)

    def cuda(self, device: Any = None) -> "HookedTransformer":
        return self.to("cuda" if device is None else device)

    def cpu(self) -> "HookedTransformer":
        return self.to("cpu")

    def mps(self) -> "HookedTransformer":
        return self.to("mps")

    def move_model_modules_to_device(self) -> None:
        self.to(self.cfg.device, print_details=False)

    # ------------------------------------------------------------------ forward
    def _layer_bound(self, value: Optional[int], what: str) -> Optional[int]:
        if value is None:
            return None
        n = self.cfg.n_layers
        if isinstance(value, bool) or not isinstance(value, int) or not -n <= value <= n:
            raise OutOfRangeError(what, value, -n, n, hint=f"the model has {n} layers (negative values count from the end)")
        return value + n if value < 0 else value

    def _input_tokens(
        self, input: Any, prepend_bos: Optional[bool], padding_side: Optional[str], past_len: int
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Tokens [batch, pos] and their padding mask (None if there is no padding)."""
        if isinstance(input, str) or (isinstance(input, (list, tuple)) and input and isinstance(input[0], str)):
            tokens, mask = self._tokenize(input, prepend_bos, padding_side)
            device = self._input_device()  # where the weights are (cfg.device may say otherwise)
            return tokens.to(device), (None if mask is None else mask.to(device))
        if not isinstance(input, torch.Tensor):
            input = torch.as_tensor(input)
        if input.is_floating_point():
            raise ShapeMismatchError(
                f"forward expects text or token ids, got a {input.dtype} tensor of shape {tuple(input.shape)}; "
                "to feed a residual stream pass start_at_layer"
            )
        tokens = input.unsqueeze(0) if input.dim() == 1 else input
        if tokens.dim() != 2:
            raise ShapeMismatchError(f"tokens must be [batch, pos] or [pos], got shape {tuple(input.shape)}")
        tokens = tokens.to(self._input_device())
        mask = None
        pending = self.__dict__.get("_tokenizer_pending")
        if pending is not None and pending[1] == "right" and padding_side in (None, "right"):
            tokenizer = None  # token ids padded on the right need no mask: leave it unloaded
        else:
            tokenizer = self.tokenizer
        side = self._resolve_padding_side(padding_side) if tokenizer is not None else "right"
        if tokenizer is not None and past_len == 0 and side == "left":
            from lenswidget.utils import get_attention_mask

            old = self.tokenizer.padding_side
            self.tokenizer.padding_side = side
            try:
                mask = get_attention_mask(self.tokenizer, tokens, self._resolve_prepend_bos(prepend_bos))
            finally:
                self.tokenizer.padding_side = old
            if bool(mask.all()):
                mask = None
        return tokens, mask

    def _input_device(self) -> torch.device:
        """Where the embedding runs (its execution device on a model placed by device_map)."""
        placed = self.__dict__.get("_placement")
        return placed.execution("embed") if placed is not None else self.embed.W_E.device

    def _check_length(self, past_len: int, seq_len: int) -> None:
        if past_len + seq_len > self.cfg.n_ctx:
            raise OutOfRangeError(
                "sequence length",
                past_len + seq_len,
                1,
                self.cfg.n_ctx,
                hint=f"the model's context is n_ctx={self.cfg.n_ctx} tokens"
                + (f" (including {past_len} cached)" if past_len else "")
                + "; shorten the input or use to_tokens(..., truncate=True)",
            )

    def _full_mask(
        self, mask: Optional[torch.Tensor], batch: int, seq_len: int, past_kv_cache: Any
    ) -> Optional[torch.Tensor]:
        """Padding mask over cached + new positions (None when nothing is padding)."""
        if mask is not None and mask.shape != (batch, seq_len):
            raise ShapeMismatchError(
                f"attention_mask has shape {tuple(mask.shape)} but the input is [batch={batch}, pos={seq_len}]"
            )
        if past_kv_cache is not None:
            return past_kv_cache._append_mask(mask, seq_len, batch_size=batch)
        if mask is not None and bool(mask.all()):
            return None
        return mask

    def input_to_embed(
        self,
        input: Any,
        prepend_bos: Optional[bool] = None,
        padding_side: Optional[str] = None,
        attention_mask: Optional[torch.Tensor] = None,
        past_kv_cache: Any = None,
    ):
        """Input -> (residual [batch, pos, d_model], tokens, shortformer_pos_embed, attention_mask).

        The returned mask covers cached + new positions, or is None when nothing is padding.
        """
        residual, tokens, spe, mask, _ = self._embed(input, prepend_bos, padding_side, attention_mask, past_kv_cache)
        return residual, tokens, spe, mask

    def _embed(self, input, prepend_bos, padding_side, attention_mask, past_kv_cache):
        cfg = self.cfg
        past_len = past_kv_cache.length if past_kv_cache is not None else 0
        tokens, mask = self._input_tokens(input, prepend_bos, padding_side, past_len)
        if attention_mask is not None:
            mask = attention_mask.to(tokens.device)
        batch, seq_len = tokens.shape
        self._check_length(past_len, seq_len)
        full_mask = self._full_mask(mask, batch, seq_len, past_kv_cache)
        positions = positions_from_mask(full_mask, past_len, seq_len) if full_mask is not None else None
        if "hook_tokens" in self._modules:
            tokens = _h(self.hook_tokens, tokens)
        residual = _h(self.hook_embed, self._embed_tokens(tokens))
        spe = None
        if cfg.positional_embedding_type in ("standard", "shortformer"):
            pos = _h(self.hook_pos_embed, self.pos_embed(tokens, past_len, full_mask, positions))
            if cfg.positional_embedding_type == "standard":
                residual = residual + pos
            else:
                spe = pos
        return residual, tokens, spe, full_mask, positions

    def _embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        try:
            return self.embed(tokens)
        except IndexError:
            lo, hi = int(tokens.min()), int(tokens.max())
            bad = hi if hi >= self.cfg.d_vocab else lo
            raise OutOfRangeError("token id", bad, 0, self.cfg.d_vocab - 1, hint="the input has ids outside the vocabulary") from None

    def forward(
        self,
        input: Any,
        return_type: Optional[str] = "logits",
        loss_per_token: bool = False,
        prepend_bos: Optional[bool] = None,
        padding_side: Optional[str] = None,
        start_at_layer: Optional[int] = None,
        tokens: Optional[torch.Tensor] = None,
        shortformer_pos_embed: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        stop_at_layer: Optional[int] = None,
        past_kv_cache: Any = None,
    ):
        """Run the model; see TransformerLens's ``HookedTransformer.forward``.

        ``input``: text, a list of texts, tokens [batch, pos] / [pos], or (with
        ``start_at_layer=k``) the residual stream before block k [batch, pos, d_model].
        ``stop_at_layer=k`` runs blocks ``0..k-1`` and returns the residual before block k.
        ``attention_mask`` covers the new tokens only (the cache supplies the rest).
        """
        if return_type not in RETURN_TYPES:
            raise InvalidOptionError("return_type", return_type, RETURN_TYPES)
        start = self._layer_bound(start_at_layer, "start_at_layer")
        stop = self._layer_bound(stop_at_layer, "stop_at_layer")
        if start is not None and stop is not None and stop < start:
            raise OutOfRangeError(
                "stop_at_layer", stop_at_layer, start, self.cfg.n_layers, hint=f"it must not be before start_at_layer={start_at_layer}"
            )
        if start is None:
            residual, tokens, spe, full_mask, positions = self._embed(
                input, prepend_bos, padding_side, attention_mask, past_kv_cache
            )
            start = 0
        else:
            residual = input
            if not isinstance(residual, torch.Tensor) or residual.dim() != 3 or residual.shape[-1] != self.cfg.d_model:
                raise ShapeMismatchError(
                    "with start_at_layer, input must be the residual stream [batch, pos, d_model="
                    f"{self.cfg.d_model}], got {getattr(residual, 'shape', type(residual).__name__)}"
                )
            batch, seq_len = residual.shape[:2]
            past_len = past_kv_cache.length if past_kv_cache is not None else 0
            self._check_length(past_len, seq_len)
            full_mask = self._full_mask(attention_mask, batch, seq_len, past_kv_cache)
            positions = positions_from_mask(full_mask, past_len, seq_len) if full_mask is not None else None
            spe = shortformer_pos_embed
        blocks = self.blocks[start:stop] if stop is not None else self.blocks[start:]
        placed = self.__dict__.get("_placement")  # several devices: move at block boundaries
        for offset, block in enumerate(blocks):
            entry = past_kv_cache[start + offset] if past_kv_cache is not None else None
            if placed is not None:
                residual, full_mask, positions, spe = placed.to_block(start + offset, residual, full_mask, positions, spe)
            residual = block(residual, entry, full_mask, positions, spe)
        if stop is not None:
            return residual if placed is None else placed.to_main(residual)
        if self.ln_final is not None:
            residual = self.ln_final(residual if placed is None else placed.to_unit("ln_final", residual))
        if return_type is None:
            return None
        logits = self.unembed(residual if placed is None else placed.to_unit("unembed", residual))
        if placed is not None:
            logits = placed.to_main(logits)
        if self.cfg.output_logits_soft_cap > 0:
            cap = self.cfg.output_logits_soft_cap
            logits = cap * torch.tanh(logits / cap)
        if return_type == "logits":
            return logits
        if tokens is None:
            raise InvalidOptionError(
                "tokens", None, ["token ids [batch, pos]: needed for the loss when start_at_layer is set"]
            )
        past_len = full_mask.shape[1] - logits.shape[1] if full_mask is not None else 0
        loss_mask = full_mask[:, past_len:] if full_mask is not None else None
        loss = self.loss_fn(logits, tokens, attention_mask=loss_mask, per_token=loss_per_token)
        if return_type == "loss":
            return loss
        return Output(logits, loss)

    def loss_fn(
        self,
        logits: torch.Tensor,
        tokens: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        per_token: bool = False,
    ) -> torch.Tensor:
        """Next-token cross-entropy (see ``lenswidget.utils.lm_cross_entropy_loss``)."""
        from lenswidget.utils import lm_cross_entropy_loss

        if tokens.device != logits.device:
            tokens = tokens.to(logits.device)
        return lm_cross_entropy_loss(logits, tokens, attention_mask, per_token)

    # ------------------------------------------------------------------ caching
    def run_with_cache(self, *model_args: Any, return_cache_object: bool = True, remove_batch_dim: bool = False, **kwargs: Any):
        """``(output, ActivationCache)``; with ``return_cache_object=False`` a plain dict.

        On a model placed over several devices, activations are gathered on ``cfg.device``
        unless ``device=`` says otherwise.
        """
        if "_placement" in self.__dict__ and kwargs.get("device") is None and kwargs.get("cache_device") is None:
            kwargs["device"] = self.cfg.device
        out, cache_dict = super().run_with_cache(*model_args, remove_batch_dim=remove_batch_dim, **kwargs)
        if return_cache_object:
            from lenswidget.cache import ActivationCache

            return out, ActivationCache(cache_dict, self, has_batch_dim=not remove_batch_dim)
        return out, cache_dict

    def load_sample_training_dataset(self, **kwargs: Any) -> None:
        """Not available: lenswidget downloads no data sets at run time."""
        from lenswidget.errors import ModelNotAvailableError

        raise ModelNotAvailableError(
            "load_sample_training_dataset/sample_datapoint need a downloaded data set, which lenswidget "
            "does not fetch; set model.dataset to a list of strings yourself"
        )

    def sample_datapoint(self, tokenize: bool = False, prepend_bos: Optional[bool] = None, padding_side: Optional[str] = None):
        """A random element of ``self.dataset`` (a list of strings you provide), as text or tokens."""
        data = getattr(self, "dataset", None)
        if not data:
            self.load_sample_training_dataset()
        text = data[int(torch.randint(len(data), (1,)).item())]
        text = text["text"] if isinstance(text, dict) else text
        return self.to_tokens(text, prepend_bos=prepend_bos, padding_side=padding_side) if tokenize else text

    # ------------------------------------------------------------------ loading (delegates)
    @classmethod
    def from_pretrained(
        cls,
        model_name: str,
        fold_ln: bool = True,
        center_writing_weights: bool = True,
        center_unembed: bool = True,
        refactor_factored_attn_matrices: bool = False,
        checkpoint_index: Optional[int] = None,
        checkpoint_value: Optional[int] = None,
        checkpoint_label: Optional[int] = None,
        hf_model: Any = None,
        device: Any = None,
        n_devices: int = 1,
        tokenizer: Any = None,
        move_to_device: bool = True,
        fold_value_biases: bool = True,
        default_prepend_bos: Optional[bool] = None,
        default_padding_side: Optional[str] = None,
        dtype: Any = "float32",
        first_n_layers: Optional[int] = None,
        n_ctx: Optional[int] = None,
        **hf_kwargs: Any,
    ) -> "HookedTransformer":
        """Load a pretrained model (see :func:`lenswidget.loading.from_pretrained`).

        Arguments follow TransformerLens 3.9 (same order and defaults). ``torch_dtype`` in the
        keyword arguments overrides ``dtype``; ``n_ctx`` shortens (or, with rotary positions,
        changes) the context length; ``n_devices`` and ``device_map`` place the model over several
        devices (:mod:`lenswidget.loading.placement`); checkpoints are refused with an error.
        """
        from lenswidget.loading import from_pretrained as _impl

        if "torch_dtype" in hf_kwargs and dtype == "float32":
            dtype = None  # the torch_dtype alias wins, as in TransformerLens
        for key, value in (("checkpoint_index", checkpoint_index), ("checkpoint_value", checkpoint_value),
                           ("checkpoint_value", checkpoint_label), ("n_devices", n_devices)):
            if value is not None and not (key == "n_devices" and value == 1):
                hf_kwargs[key] = value
        model = _impl(
            cls,
            model_name,
            fold_ln=fold_ln,
            center_writing_weights=center_writing_weights,
            center_unembed=center_unembed,
            fold_value_biases=fold_value_biases,
            refactor_factored_attn_matrices=refactor_factored_attn_matrices,
            hf_model=hf_model,
            tokenizer=tokenizer,
            device=device,
            dtype=dtype,
            first_n_layers=first_n_layers,
            default_prepend_bos=default_prepend_bos,
            default_padding_side=default_padding_side,
            move_to_device=move_to_device,
            **hf_kwargs,
        )
        if n_ctx is not None:
            model._set_n_ctx(n_ctx)
        return model

    def _set_n_ctx(self, n_ctx: int) -> None:
        rows = self.pos_embed.W_pos.shape[0] if "pos_embed" in self._modules else None
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 1 or (rows is not None and n_ctx > rows):
            raise OutOfRangeError("n_ctx", n_ctx, 1, rows if rows is not None else "any",
                                  hint="a model with learned positions cannot go beyond its position table")
        self.cfg.n_ctx = n_ctx

    @classmethod
    def from_pretrained_no_processing(
        cls,
        model_name: str,
        fold_ln: bool = False,
        center_writing_weights: bool = False,
        center_unembed: bool = False,
        refactor_factored_attn_matrices: bool = False,
        fold_value_biases: bool = False,
        dtype: Any = torch.float32,
        default_prepend_bos: Optional[bool] = None,
        default_padding_side: Optional[str] = None,
        **kwargs: Any,
    ) -> "HookedTransformer":
        """``from_pretrained`` with every processing flag off by default."""
        return cls.from_pretrained(
            model_name,
            fold_ln=fold_ln,
            center_writing_weights=center_writing_weights,
            center_unembed=center_unembed,
            refactor_factored_attn_matrices=refactor_factored_attn_matrices,
            fold_value_biases=fold_value_biases,
            dtype=dtype,
            default_prepend_bos=default_prepend_bos,
            default_padding_side=default_padding_side,
            **kwargs,
        )

    def load_and_process_state_dict(
        self,
        state_dict: Dict[str, torch.Tensor],
        fold_ln: bool = True,
        center_writing_weights: bool = True,
        center_unembed: bool = True,
        fold_value_biases: bool = True,
        refactor_factored_attn_matrices: bool = False,
    ) -> None:
        from lenswidget import processing

        processing.load_and_process_state_dict(
            self,
            state_dict,
            fold_ln=fold_ln,
            center_writing_weights=center_writing_weights,
            center_unembed=center_unembed,
            fold_value_biases=fold_value_biases,
            refactor_factored_attn_matrices=refactor_factored_attn_matrices,
        )

    def process_weights_(
        self,
        fold_ln: bool = True,
        center_writing_weights: bool = True,
        center_unembed: bool = True,
        refactor_factored_attn_matrices: bool = False,
        fold_value_biases: bool = True,
    ) -> None:
        from lenswidget import processing

        processing.process_weights_(
            self,
            fold_ln=fold_ln,
            center_writing_weights=center_writing_weights,
            center_unembed=center_unembed,
            fold_value_biases=fold_value_biases,
            refactor_factored_attn_matrices=refactor_factored_attn_matrices,
        )

    def fold_layer_norm(self, state_dict: Dict[str, torch.Tensor], fold_biases: bool = True, center_weights: bool = True):
        from lenswidget import processing

        return processing.fold_layer_norm(state_dict, self.cfg, fold_biases=fold_biases, center_weights=center_weights)

    def center_writing_weights(self, state_dict: Dict[str, torch.Tensor]):
        from lenswidget import processing

        return processing.center_writing_weights(state_dict, self.cfg)

    def center_unembed(self, state_dict: Dict[str, torch.Tensor]):
        from lenswidget import processing

        return processing.center_unembed(state_dict, self.cfg)

    def fold_value_biases(self, state_dict: Dict[str, torch.Tensor]):
        from lenswidget import processing

        return processing.fold_value_biases(state_dict, self.cfg)

    def refactor_factored_attn_matrices(self, state_dict: Dict[str, torch.Tensor]):
        from lenswidget import processing

        return processing.refactor_factored_attn_matrices(state_dict, self.cfg)


__all__ = ["HookedTransformer", "Output"]
