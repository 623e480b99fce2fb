"""Direct path patching: the effect of one head's output on one later head's q, k or v input.

For a source head A = (src_layer, src_head) and destination B = (dst_layer, dst_head), the
linear approximation of patching only the path A -> B is::

    delta_resid = clean_A_result - corrupted_A_result          # [batch, pos, d_model]
    delta_B     = (delta_resid / ln1_scale[dst_layer]) @ W_comp[dst_layer, dst_head]

added to B's ``hook_q`` / ``hook_k`` / ``hook_v`` in the corrupted run (``A_result = z[A] @
W_O[A]``, from the caches; ``ln1_scale`` from the corrupted cache). It is exact for folded
layer norms. Every destination is one patched run; runs go through the fast patching engine.

With grouped-query attention and ``component="k"``/``"v"``, destination ``dst_head`` patches
the key/value head it reads (``dst_head // group``), so query heads of one group share a
value; the result is still ``[n_layers, n_heads]``.

>>> from lenswidget.tools.analysis.direct_path_patching import get_act_patch_direct_path
>>> res = get_act_patch_direct_path(model, corrupted_tokens, clean_cache,  # doctest: +SKIP
...                                 corrupted_cache, metric, src_layer=2, src_head=1, component="q")
"""

from __future__ import annotations

from typing import Callable, Dict, List, Literal, Tuple

import torch

from lenswidget.errors import InvalidOptionError, OutOfRangeError, UnknownNameError
from lenswidget.patching.engine import run_sweep
from lenswidget.patching.generic import head_count

__all__ = ["get_act_patch_direct_path", "get_act_patch_direct_path_all_sources"]

COMPONENTS = ("q", "k", "v")


def _check(model, component: str, layer: int, head: int, what: str) -> None:
    if component not in COMPONENTS:
        raise InvalidOptionError("component", component, COMPONENTS)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if not isinstance(layer, int) or not 0 <= layer < L:
        raise OutOfRangeError(f"{what} layer", layer, 0, L - 1)
    if not isinstance(head, int) or not 0 <= head < H:
        raise OutOfRangeError(f"{what} head", head, 0, H - 1)


def _cached(cache, name: str, which: str) -> torch.Tensor:
    if name not in cache:
        raise UnknownNameError(
            f"{which} entry", name, list(cache.keys()),
            hint=f"direct path patching reads it: run_with_cache without a names_filter that drops {name!r}",
        )
    return cache[name]


class _DirectPathSetter:
    """Adds ``(delta_resid[src] / ln1_scale[dst]) @ W_comp[dst]`` to the destination head."""

    def __init__(self, model, clean_cache, corrupted_cache, component: str):
        self.model, self.component = model, component
        self.clean, self.corr = clean_cache, corrupted_cache
        cfg = model.cfg
        self.group = cfg.n_heads // head_count(model, component)
        self._delta: Dict[Tuple[int, int], torch.Tensor] = {}
        self._scale: Dict[int, torch.Tensor] = {}

    def delta_resid(self, sl: int, sh: int) -> torch.Tensor:
        if (sl, sh) not in self._delta:
            name = f"blocks.{sl}.attn.hook_z"
            W_O = self.model.blocks[sl].attn.W_O[sh]
            clean = _cached(self.clean, name, "clean_cache")[:, :, sh] @ W_O
            corr = _cached(self.corr, name, "corrupted_cache")[:, :, sh] @ W_O
            self._delta[(sl, sh)] = (clean - corr).detach()
        return self._delta[(sl, sh)]

    def scale(self, dl: int) -> torch.Tensor:
        if dl not in self._scale:
            if self.model.cfg.normalization_type is None:
                self._scale[dl] = torch.ones(())
            else:
                self._scale[dl] = _cached(self.corr, f"blocks.{dl}.ln1.hook_scale", "corrupted_cache")
        return self._scale[dl]

    def weight(self, dl: int, dh: int) -> torch.Tensor:
        attn = self.model.blocks[dl].attn
        W = {"q": attn.W_Q, "k": attn.W_K, "v": attn.W_V}[self.component]  # [n_heads, d_model, d_head]
        return W[dh]

    def __call__(self, act: torch.Tensor, index, clean) -> torch.Tensor:
        dl, dh, sl, sh = (int(i) for i in index)
        delta = (self.delta_resid(sl, sh) / self.scale(dl).to(act.device)) @ self.weight(dl, dh)
        h = dh // self.group
        act[:, :, h] = act[:, :, h] + delta.to(act.dtype)
        return act


def _sweep(model, corrupted_tokens, clean_cache, corrupted_cache, metric, component, rows: List[list],
           verbose: bool, engine_options) -> torch.Tensor:
    setter = _DirectPathSetter(model, clean_cache, corrupted_cache, component)
    # The setter adds a delta to the corrupted activation; the engine only needs the destination
    # hook's clean activation for its shape checks.
    acts = {}
    for dl in sorted({r[0] for r in rows}):
        name = f"blocks.{dl}.attn.hook_{component}"
        acts[name] = clean_cache[name] if name in clean_cache else _cached(corrupted_cache, name, "corrupted_cache")
    return run_sweep(model, corrupted_tokens, acts, metric, setter, component, rows,
                     verbose=verbose, desc=f"direct path -> {component}", **engine_options)


def get_act_patch_direct_path(
    model,
    corrupted_tokens: torch.Tensor,
    clean_cache,
    corrupted_cache,
    patching_metric: Callable,
    src_layer: int,
    src_head: int,
    component: Literal["q", "k", "v"] = "q",
    verbose: bool = True,
    **engine_options,
) -> torch.Tensor:
    """``[n_layers, n_heads]``: the metric with the path (src_layer, src_head) -> each later head patched.

    Entries with ``dst_layer <= src_layer`` are 0 (no path). ``engine_options`` as for
    ``lenswidget.patching.generic_activation_patch`` (method, memory_budget, ...).
    """
    _check(model, component, src_layer, src_head, "src")
    L, H = model.cfg.n_layers, model.cfg.n_heads
    rows = [[dl, dh, src_layer, src_head] for dl in range(src_layer + 1, L) for dh in range(H)]
    out = torch.zeros(L, H, device=model.cfg.device)
    if rows:
        vals = _sweep(model, corrupted_tokens, clean_cache, corrupted_cache, patching_metric, component, rows,
                      verbose, engine_options)
        out[src_layer + 1 :] = vals.reshape(L - src_layer - 1, H)
    return out


def get_act_patch_direct_path_all_sources(
    model,
    corrupted_tokens: torch.Tensor,
    clean_cache,
    corrupted_cache,
    patching_metric: Callable,
    component: Literal["q", "k", "v"] = "q",
    verbose: bool = True,
    **engine_options,
) -> torch.Tensor:
    """``[n_layers, n_heads, n_layers, n_heads]``: ``[sl, sh, dl, dh]`` as in get_act_patch_direct_path.

    One sweep over every (source, destination) pair with ``dl > sl``, sharing one corrupted
    baseline; other entries are 0.
    """
    _check(model, component, 0, 0, "src")
    L, H = model.cfg.n_layers, model.cfg.n_heads
    rows = [[dl, dh, sl, sh] for sl in range(L) for sh in range(H) for dl in range(sl + 1, L) for dh in range(H)]
    out = torch.zeros(L, H, L, H, device=model.cfg.device)
    if rows:
        vals = _sweep(model, corrupted_tokens, clean_cache, corrupted_cache, patching_metric, component, rows,
                      verbose, engine_options)
        idx = torch.tensor(rows, device=out.device)
        out[idx[:, 2], idx[:, 3], idx[:, 0], idx[:, 1]] = vals.to(out.device)
    return out
