"""ActivationCache: the activations of one forward pass, keyed by hook name."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from .errors import UnknownNameError
from .utils import get_act_name


class ActivationCache:
    """A dict of hook name -> activation tensor with interpretability helpers.

    >>> logits, cache = model.run_with_cache("Hello")            # doctest: +SKIP
    >>> cache["resid_post", -1].shape                            # doctest: +SKIP
    torch.Size([1, 2, 576])
    """

    def __init__(self, cache_dict: dict[str, torch.Tensor], model: Any, has_batch_dim: bool = True):
        self.cache_dict = cache_dict
        self.model = model
        self.has_batch_dim = has_batch_dim
        self.has_embed = "hook_embed" in cache_dict
        self.has_pos_embed = "hook_pos_embed" in cache_dict

    def __getitem__(self, key):
        if isinstance(key, str):
            if key in self.cache_dict:
                return self.cache_dict[key]
            name = get_act_name(key)
        else:
            key = tuple(key)
            layer = key[1] if len(key) > 1 else None
            if layer is not None and layer < 0:
                layer = self.model.cfg.n_layers + layer
            name = get_act_name(key[0], layer, *key[2:])
        if name not in self.cache_dict:
            raise UnknownNameError("cache key", key, self.cache_dict.keys())
        return self.cache_dict[name]

    def __contains__(self, key) -> bool:
        return key in self.cache_dict

    def __len__(self) -> int:
        return len(self.cache_dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache_dict)

    def keys(self):
        return self.cache_dict.keys()

    def values(self):
        return self.cache_dict.values()

    def items(self):
        return self.cache_dict.items()

    def __repr__(self) -> str:
        return f"ActivationCache with keys {list(self.cache_dict.keys())}"
