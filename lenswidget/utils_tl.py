"""The rest of TransformerLens 3.9's ``utils``: small helpers lenswidget's own code does not use.

Re-exported by :mod:`lenswidget.utils`, so ``utils.gelu_new``, ``utils.lm_accuracy``,
``utils.get_tokens_with_bos_removed`` ... work as in TransformerLens. The helpers that download
(``download_file_from_hf``, ``get_dataset``, ``clear_huggingface_cache``) are deliberately
absent: lenswidget fetches nothing at run time (docs/compat.md).

>>> get_cumsum_along_dim(torch.tensor([1, 2, 3]), 0, reverse=True)
tensor([6, 5, 3])
>>> filter_dict_by_prefix({"blocks.0.attn.W_Q": 1, "blocks.1.attn.W_Q": 2}, "blocks.0")
{'attn.W_Q': 1}
"""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F

from .errors import InvalidOptionError, ShapeMismatchError

# ------------------------------------------------------------------ activations


def gelu_new(input: torch.Tensor) -> torch.Tensor:
    """GPT-2's tanh approximation of GELU."""
    c = math.sqrt(2.0 / math.pi)
    return 0.5 * input * (1.0 + torch.tanh(c * (input + 0.044715 * input.pow(3))))


def gelu_fast(input: torch.Tensor) -> torch.Tensor:
    """The same approximation, arranged as in the original fast implementation."""
    return 0.5 * input * (1.0 + torch.tanh(0.7978845608 * input * (1.0 + 0.044715 * input * input)))


def solu(input: torch.Tensor) -> torch.Tensor:
    """SoLU: ``x * softmax(x)`` over the last dim."""
    return input * F.softmax(input, dim=-1)


# ------------------------------------------------------------------ tensors


def lm_accuracy(logits: torch.Tensor, tokens: torch.Tensor, per_token: bool = False) -> torch.Tensor:
    """Top-1 next-token accuracy: [batch, pos - 1] booleans with ``per_token``, else their mean."""
    hits = logits.argmax(-1)[:, :-1] == tokens[:, 1:].to(logits.device)
    return hits if per_token else hits.sum() / hits.numel()


def get_cumsum_along_dim(tensor: torch.Tensor, dim: int, reverse: bool = False) -> torch.Tensor:
    """Cumulative sum along ``dim`` (from the end with ``reverse``)."""
    if not reverse:
        return tensor.cumsum(dim)
    return tensor.flip(dim).cumsum(dim).flip(dim)


def is_square(x: torch.Tensor) -> bool:
    return x.ndim == 2 and x.shape[0] == x.shape[1]


def is_lower_triangular(x: torch.Tensor) -> bool:
    return is_square(x) and bool(torch.equal(x, x.tril()))


def check_structure(t1: torch.Tensor, t2: torch.Tensor, *, verbose: bool = False) -> None:
    """Print whether two matrices order their neighbouring rows and columns the same way."""
    if t1.ndim != 2 or t1.shape != t2.shape:
        raise ShapeMismatchError(f"check_structure needs two matrices of one shape, got {tuple(t1.shape)} and {tuple(t2.shape)}")

    def mismatches(a: torch.Tensor, b: torch.Tensor) -> list[int]:
        bad = []
        for i in range(a.shape[0] - 1):
            if not torch.equal(a[i] >= a[i + 1], b[i] >= b[i + 1]):
                bad.append(i)
                if verbose:
                    print(f"\t{i}:{i + 1}")
        return bad

    rows = mismatches(t1, t2)
    cols = mismatches(t1.T, t2.T)
    if not rows and not cols:
        print("PASSED")
    elif rows:
        print(f"row mismatch: {rows}")
    else:
        print(f"column mismatch: {cols}")


def repeat_along_head_dimension(tensor: torch.Tensor, n_heads: int, clone_tensor: bool = True) -> torch.Tensor:
    """[batch, pos, d_model] -> [batch, pos, n_heads, d_model] (a copy unless ``clone_tensor=False``)."""
    out = tensor.unsqueeze(-2).expand(*tensor.shape[:-1], n_heads, tensor.shape[-1])
    return out.clone() if clone_tensor else out


def get_offset_position_ids(past_kv_pos_offset: int, attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids [batch, pos] counted from each row's first real token (leading padding: 0)."""
    pos = attention_mask.cumsum(dim=1) - 1
    return pos.clamp(min=0)[:, past_kv_pos_offset:]


def filter_dict_by_prefix(dictionary: dict, prefix: str) -> dict:
    """The entries under ``prefix`` (a dotted path), with the prefix and its dot removed."""
    head = prefix if prefix.endswith(".") else prefix + "."
    return {k[len(head):]: v for k, v in dictionary.items() if k.startswith(head)}


def calc_fan_in_and_fan_out(tensor: torch.Tensor) -> tuple[int, int]:
    """Fan in / out in TransformerLens's weight layout ([d_in, d_out]; heads [n, d_model, d_head])."""
    shape = tuple(tensor.shape)
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 3:
        return shape[1], shape[0] * shape[2]
    raise ShapeMismatchError(f"fan in / fan out need a 1-, 2- or 3-dim weight, got shape {shape}")


def init_xavier_uniform_(param: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    fan_in, fan_out = calc_fan_in_and_fan_out(param)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return param.uniform_(-bound, bound)


def init_xavier_normal_(param: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    fan_in, fan_out = calc_fan_in_and_fan_out(param)
    with torch.no_grad():
        return param.normal_(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(param, a, nonlinearity, gain, mode) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise InvalidOptionError("mode", mode, ("fan_in", "fan_out"))
    fan_in, fan_out = calc_fan_in_and_fan_out(param)
    fan = fan_in if mode == "fan_in" else fan_out
    return gain * torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)


def init_kaiming_uniform_(param: torch.Tensor, a: float = 0, nonlinearity: str = "relu", gain: float = 1.0,
                          mode: str = "fan_in") -> torch.Tensor:
    bound = math.sqrt(3.0) * _kaiming_std(param, a, nonlinearity, gain, mode)
    with torch.no_grad():
        return param.uniform_(-bound, bound)


def init_kaiming_normal_(param: torch.Tensor, a: float = 0, nonlinearity: str = "relu", gain: float = 1.0,
                         mode: str = "fan_in") -> torch.Tensor:
    std = _kaiming_std(param, a, nonlinearity, gain, mode)
    with torch.no_grad():
        return param.normal_(0.0, std)


# ------------------------------------------------------------------ tokenizers


def get_tokenizer_with_bos(tokenizer: Any) -> Any:
    """The tokenizer itself: lenswidget prepends BOS explicitly, so no BOS-adding copy is needed."""
    return tokenizer


def get_input_with_manually_prepended_bos(bos_token: Optional[str], input: Union[str, list]) -> Union[str, list]:
    """``bos_token + text`` (for each text of a list); unchanged when there is no BOS token."""
    if bos_token is None:
        return input
    return bos_token + input if isinstance(input, str) else [bos_token + s for s in input]


def get_tokens_with_bos_removed(tokenizer: Any, tokens: torch.Tensor, padding_side: Optional[str] = None) -> torch.Tensor:
    """``tokens`` [..., pos] without the BOS at the start of each (possibly left-padded) row."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return tokens
    side = padding_side or getattr(tokenizer, "padding_side", "right")
    if side == "right":
        return tokens[..., 1:]
    if bos == tokenizer.pad_token_id:  # BOS is the last of the leading pad-coloured tokens
        real = (tokens != tokenizer.pad_token_id).long().cumsum(-1) > 0
        first = real.long().argmax(-1) - 1
    else:
        first = (tokens == bos).long().argmax(-1)
    keep = torch.ones_like(tokens, dtype=torch.bool).scatter(-1, first.clamp(min=0).unsqueeze(-1), False)
    return tokens[keep].view(*tokens.shape[:-1], tokens.shape[-1] - 1)


def keep_single_column(dataset: Any, col_name: str) -> Any:
    """A HuggingFace dataset with every column but ``col_name`` removed."""
    others = [c for c in dataset.features if c != col_name]
    return dataset.remove_columns(others) if others else dataset


# ------------------------------------------------------------------ objects and defaults


def get_nested_attr(obj: Any, attr_str: str) -> Any:
    for part in attr_str.split("."):
        obj = getattr(obj, part)
    return obj


def set_nested_attr(obj: Any, attr_str: str, value: Any) -> None:
    *path, last = attr_str.split(".")
    setattr(get_nested_attr(obj, ".".join(path)) if path else obj, last, value)


def override_or_use_default_value(default_flag: Any, override: Optional[Any] = None) -> Any:
    return default_flag if override is None else override


class LocallyOverridenDefaults:
    """``with LocallyOverridenDefaults(model, prepend_bos=False, padding_side="left"):`` changes
    ``model.cfg.default_prepend_bos`` / ``model.tokenizer.padding_side`` until the block ends."""

    _VALID = {"prepend_bos": (None, True, False), "padding_side": (None, "left", "right")}

    def __init__(self, model: Any, **overrides: Any):
        for key, value in overrides.items():
            if key not in self._VALID:
                raise InvalidOptionError("default to override", key, list(self._VALID))
            if value not in self._VALID[key]:
                raise InvalidOptionError(key, value, list(self._VALID[key]))
        self.model, self.overrides = model, overrides
        self._saved: dict[str, Any] = {}

    def _target(self, key: str):
        if key == "prepend_bos":
            return self.model.cfg, "default_prepend_bos"
        return self.model.tokenizer, "padding_side"

    def __enter__(self) -> "LocallyOverridenDefaults":
        for key, value in self.overrides.items():
            obj, attr = self._target(key)
            if value is None or obj is None:
                continue
            self._saved[key] = getattr(obj, attr)
            setattr(obj, attr, value)
        return self

    def __exit__(self, *exc: Any) -> None:
        for key, value in self._saved.items():
            obj, attr = self._target(key)
            setattr(obj, attr, value)
        self._saved = {}


# ------------------------------------------------------------------ environment


def is_library_available(name: str) -> bool:
    return name in sys.modules or importlib.util.find_spec(name) is not None


def warn_if_mps(device: Any) -> None:
    """Warn (once per call site) that the MPS backend may give wrong numbers."""
    kind = device.type if isinstance(device, torch.device) else device
    if kind == "mps":
        warnings.warn("the MPS backend may give incorrect results for some operations", UserWarning, stacklevel=2)


def print_gpu_mem(step_name: str = "") -> None:
    gib = torch.cuda.memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    print(f"{step_name} ~ {gib:.2f} GiB allocated on GPU.")


__all__ = [
    "gelu_new", "gelu_fast", "solu", "lm_accuracy", "get_cumsum_along_dim", "is_square", "is_lower_triangular",
    "check_structure", "repeat_along_head_dimension", "get_offset_position_ids", "filter_dict_by_prefix",
    "calc_fan_in_and_fan_out", "init_xavier_uniform_", "init_xavier_normal_", "init_kaiming_uniform_",
    "init_kaiming_normal_", "get_tokenizer_with_bos", "get_input_with_manually_prepended_bos",
    "get_tokens_with_bos_removed", "keep_single_column", "get_nested_attr", "set_nested_attr",
    "override_or_use_default_value", "LocallyOverridenDefaults", "is_library_available", "warn_if_mps",
    "print_gpu_mem",
]
