"""The exact patched forward pass behind every drop: a set of composed patches in one run.

What a patch set can change is planned from the cached runs, then only that is recomputed:

* ``p0``: the first position any patch changes (a clean patch changes the positions where
  clean and corrupted differ; an ablation its whole region). Positions before ``p0`` are
  the corrupted run's, so the run covers ``p0..end`` only, with the keys and values of
  earlier positions taken from the corrupted cache (a frozen KV cache).
* ``l0``: the lowest layer at which a patch changes anything. The run starts there
  (``start_at_layer``) from the cached corrupted residual ``resid_pre[l0]``; patches
  below ``l0`` write what is already there and are skipped.
* Forward hooks apply every remaining patch in chip order, in the truncated
  coordinates, and only the positions the metric and the top-token list read are
  unembedded.

Each step is exact (causal attention: nothing before ``p0`` can change). A self-check at
construction compares the truncated recompute with the model and falls back to full-length
runs when they disagree (e.g. models whose attention is not causal).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from ...kv_cache import HookedTransformerKeyValueCache, HookedTransformerKeyValueCacheEntry
from ...utils import get_act_name
from .patches import Patch, active
from .runs import Runs

SELF_CHECK_TOL = 1e-4  # relative, float32/float64; low precision uses the engine's tolerance


def _self_check_tol(dtype: torch.dtype) -> float:
    from ...patching.engine.fast import SELF_CHECK_TOL as ENGINE_TOL

    return SELF_CHECK_TOL if dtype in (torch.float32, torch.float64) else ENGINE_TOL.get(dtype, 2e-2)


@dataclass(frozen=True)
class Plan:
    l0: int  # first layer to recompute (n_layers: nothing changes)
    p0: int  # first position to recompute
    hooks: list  # (hook name, hook function)


def _contiguous(values: Sequence[int]) -> bool:
    return list(values) == list(range(values[0], values[-1] + 1))


def _axis(values: Sequence[int] | None) -> Any:
    """An index for one axis: every entry, a slice for a contiguous run, else a LongTensor."""
    if values is None:
        return slice(None)
    if _contiguous(values):
        return slice(values[0], values[-1] + 1)
    return torch.tensor(list(values), dtype=torch.long)


def region_index(act: str, positions: Sequence[int] | None, heads: Sequence[int] | None) -> tuple:
    """The index of a patch's region in its activation (batch axis first)."""
    pos, hs = _axis(positions), _axis(heads)
    if act == "pattern":  # [batch, head, dest, src]
        if isinstance(pos, torch.Tensor) and isinstance(hs, torch.Tensor):
            hs, pos = hs[:, None], pos[None, :]
        return (slice(None), hs, pos)
    if heads is None:  # [batch, pos, d_model]
        return (slice(None), pos)
    if isinstance(pos, torch.Tensor) and isinstance(hs, torch.Tensor):  # [batch, pos, head, d_head]
        pos, hs = pos[:, None], hs[None, :]
    return (slice(None), pos, hs)


def _pos_axis(act: str) -> int:
    return 2 if act == "pattern" else 1


@contextmanager
def attached(model: Any, hooks: Sequence[tuple]) -> Iterator[None]:
    """Forward hooks on just these hook points, removed on exit (even on error).

    Like ``model.hooks(fwd_hooks=...)``, but removal touches only the hooked points instead of
    scanning every hook point of the model (~600 for SmolLM2), which costs more than a late drop.
    """
    added = []
    try:
        for name, fn in hooks:
            point = model.hook_dict[name]
            added.append((point, point.add_hook(fn, dir="fwd")))
        yield
    finally:
        for point, handle in reversed(added):
            handle.remove()
            if handle in point.fwd_hooks:
                point.fwd_hooks.remove(handle)


def _write(index: tuple, source: Any):
    def hook(activation: torch.Tensor, hook: Any) -> torch.Tensor:
        activation[index] = source[index] if isinstance(source, torch.Tensor) else source
        return activation

    return hook


class PatchedForward:
    """Evaluates patch sets on ``runs`` (see the module docstring)."""

    def __init__(self, runs: Runs):
        self.runs, self.model = runs, runs.model
        cfg = self.model.cfg
        self._changed: dict[str, torch.Tensor] = {}
        self._means: dict[str, torch.Tensor] = {}
        self.rotary = cfg.positional_embedding_type == "rotary"
        self.truncate = self._can_truncate()

    # -- planning ---------------------------------------------------------------------------
    def _changed_positions(self, name: str, act: str) -> torch.Tensor:
        """bool [pos, heads] (or [pos, 1]): where clean and corrupted differ, per head."""
        if name not in self._changed:
            diff = self.runs.clean_cache[name] != self.runs.corrupted_cache[name]
            if act == "pattern":  # [b, h, dest, src] -> [dest, h]
                out = diff.any(-1).any(0).T
            elif diff.ndim == 4:  # [b, pos, h, d]
                out = diff.any(-1).any(0)
            else:  # [b, pos, d]
                out = diff.any(-1).any(0)[:, None]
            self._changed[name] = out.cpu()
        return self._changed[name]

    def _first_changed(self, p: Patch, layer: int) -> int | None:
        """First position ``p`` changes at ``layer`` on its own (None: it writes what is there)."""
        n = self.runs.n_pos
        positions = range(n) if p.positions is None else p.positions
        if p.mode != "clean":
            return min(positions)
        changed = self._changed_positions(get_act_name(p.act, layer), p.act)
        cols = changed[:, list(p.heads)] if p.heads is not None else changed
        hits = [q for q in positions if bool(cols[q].any())]
        return min(hits) if hits else None

    def plan(self, patches: Sequence[Patch], floor: tuple[int, int] | None = None) -> Plan:
        """``floor``: (layer, position) where something else changes the run too (SAE feature patches)."""
        pairs = [(p, l) for p in active(patches) for l in p.layers]
        starts = [(l, f) for p, l in pairs if (f := self._first_changed(p, l)) is not None]
        starts += [floor] if floor is not None else []
        n_layers = self.model.cfg.n_layers
        if not starts:
            return Plan(n_layers, self.runs.n_pos, [])
        l0 = min(l for l, _ in starts)
        p0 = min(f for _, f in starts) if self.truncate else 0
        hooks = []
        for p, l in pairs:
            if l < l0:
                continue  # nothing has changed below l0: the patch writes what is already there
            positions = p.positions if p.positions is not None else None
            if positions is not None:
                positions = [q - p0 for q in positions if q >= p0]
                if not positions:
                    continue
            name = get_act_name(p.act, l)
            hooks.append((name, _write(region_index(p.act, positions, p.heads), self._source(p, name, p0))))
        return Plan(l0, p0, hooks)

    def _source(self, p: Patch, name: str, p0: int) -> Any:
        """What the patch writes, in the coordinates of a run starting at position ``p0``."""
        if p.mode == "zero":
            return 0.0
        if p.mode == "mean":
            corr = self.runs.corrupted_cache[name]
            if name not in self._means:
                self._means[name] = corr.mean(dim=(0, 1), keepdim=True)
            shape = list(corr.shape)
            shape[1] -= p0
            return self._means[name].expand(*shape)
        clean = self.runs.clean_cache[name]
        return clean[:, :, p0:] if p.act == "pattern" else clean[:, p0:]

    # -- running ------------------------------------------------------------------------------
    def logits(self, patches: Sequence[Patch], positions: Sequence[int]) -> torch.Tensor:
        """Logits [batch, len(positions), d_vocab] of the patched run at absolute ``positions``."""
        return self._run(self.plan(patches), positions)

    @torch.no_grad()
    def _run(self, plan: Plan, positions: Sequence[int]) -> torch.Tensor:
        runs, model = self.runs, self.model
        n_layers = model.cfg.n_layers
        base = runs.corrupted_logits
        if plan.l0 >= n_layers:
            return base[:, list(positions)]
        p0 = plan.p0
        x = runs.corrupted_cache[get_act_name("resid_pre", plan.l0)][:, p0:].clone()  # hooks may edit it in place
        kv = self._prefix(p0) if p0 > 0 else None
        with attached(model, plan.hooks):
            resid = model(x, start_at_layer=plan.l0, stop_at_layer=n_layers, past_kv_cache=kv)
        new = [q for q in positions if q >= p0]
        fresh = self._unembed(resid[:, [q - p0 for q in new]]) if new else None
        cols = []
        for q in positions:
            cols.append(fresh[:, new.index(q)] if q >= p0 else base[:, q])
        return torch.stack(cols, dim=1)

    def _prefix(self, p0: int) -> HookedTransformerKeyValueCache:
        """A frozen KV cache holding the corrupted run's keys/values of positions < p0."""
        cache = self.runs.corrupted_cache
        entries = []
        for l in range(self.model.cfg.n_layers):
            k = cache[get_act_name("rot_k" if self.rotary else "k", l)][:, :p0]
            v = cache[get_act_name("v", l)][:, :p0]
            entries.append(HookedTransformerKeyValueCacheEntry(k, v, frozen=True))
        return HookedTransformerKeyValueCache(entries, frozen=True, batch_size=self.runs.batch,
                                              device=self.runs.corrupted_tokens.device)

    def _unembed(self, resid: torch.Tensor) -> torch.Tensor:
        model = self.model
        if model.ln_final is not None:
            resid = model.ln_final(resid)
        logits = model.unembed(resid)
        cap = model.cfg.output_logits_soft_cap
        return cap * torch.tanh(logits / cap) if cap > 0 else logits

    def _can_truncate(self) -> bool:
        """Whether runs from position p0 > 0 reproduce the model (checked on the corrupted run)."""
        cfg = self.model.cfg
        n = self.runs.n_pos
        if n < 2 or cfg.attention_dir != "causal" or cfg.positional_embedding_type == "shortformer":
            return False
        needed = [get_act_name("rot_k" if self.rotary else "k", l) for l in range(cfg.n_layers)]
        needed += [get_act_name("v", l) for l in range(cfg.n_layers)]
        if any(name not in self.runs.corrupted_cache for name in needed):
            return False
        try:
            got = self._run(Plan(0, n // 2, []), list(range(n // 2, n)))
        except Exception:  # noqa: BLE001 - any failure: use full-length runs
            return False
        ref = self.runs.corrupted_logits[:, n // 2:]
        err = float((got.float() - ref.float()).abs().max()) / max(1.0, float(ref.float().abs().max()))
        return err <= _self_check_tol(self.runs.corrupted_logits.dtype)
