"""SAE feature patches of the patcher: what a feature chip is, and the forward pass with them.

A :class:`FeatureChip` sets, in the corrupted run, the activations of ``features`` of the
SAE at ``hook`` at ``positions`` (``None``: all) to the clean run's (``mode="clean"``), to
zero (``"zero"``) or to their mean over the corrupted run's prompts and positions
(``"mean"``). The SAE is spliced in with its error term
(``HookedSAETransformer.saes(..., use_error_term=True)``, as ``lenswidget.sae.patching``
does), so the corrupted run is unchanged except through the edited features: the hooked
activation becomes ``x + decode(edited) - decode(acts)``, computed by ``lenswidget.sae``;
this module only writes feature activations on ``hook_sae_acts_post``, as activation chips
write activations.

:class:`FeatureForward` is the patcher's :class:`~.forward.PatchedForward` plus the
enabled feature chips: the recompute starts no later than the SAE's layer and the first
patched position, and the activation chips and feature chips compose in one run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import torch

from ...errors import InvalidOptionError, OutOfRangeError
from ..saes import acts_name, sae_cache
from ..saes import label as sae_label
from .forward import Plan, PatchedForward
from .patches import Patch, _indices
from .runs import Runs

FEATURE_MODES = ("clean", "zero", "mean")
MAX_FEATURES_PER_CHIP = 256
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


@dataclass(frozen=True)
class FeatureChip:
    id: int
    hook: str  # the SAE's input hook (its name in the patcher's SAE list)
    features: tuple[int, ...]
    positions: tuple[int, ...] | None  # None: every position
    mode: str = "clean"
    enabled: bool = True

    def with_enabled(self, enabled: bool) -> "FeatureChip":
        return replace(self, enabled=bool(enabled))

    def to_dict(self, sae: Any) -> dict:
        return {"id": self.id, "hook": self.hook, "features": list(self.features),
                "positions": None if self.positions is None else list(self.positions), "mode": self.mode,
                "enabled": self.enabled, "label": chip_label(self, sae)}


def _span(values: Sequence[int], prefix: str = "") -> str:
    if len(values) > 1 and list(values) == list(range(values[0], values[-1] + 1)):
        return f"{prefix}{values[0]}–{prefix}{values[-1]}"
    if len(values) > 4:
        return ",".join(f"{prefix}{v}" for v in values[:4]) + f",… ({len(values)})"
    return ",".join(f"{prefix}{v}" for v in values)


def chip_label(chip: FeatureChip, sae: Any) -> str:
    """``F12,F40 @ L6 resid_post · pos 3–5`` (``zero``/``mean`` first for ablations)."""
    head = "" if chip.mode == "clean" else f"{chip.mode} "
    where = "all pos" if chip.positions is None else f"pos {_span(chip.positions)}"
    return f"{head}{_span(chip.features, 'F')} @ {sae_label(sae)} · {where}"


def make_chip(pid: int, sae: Any, n_pos: int, features: Any, positions: Any = None, mode: str = "clean",
              enabled: bool = True) -> FeatureChip:
    """A checked :class:`FeatureChip` (typed errors name the bad field and the valid range)."""
    if mode not in FEATURE_MODES:
        raise InvalidOptionError("feature patch mode", mode, FEATURE_MODES)
    feats = _indices(features, int(sae.cfg.d_sae), "feature", MAX_FEATURES_PER_CHIP)
    pos = None if positions is None else _indices(positions, n_pos, "position")
    return FeatureChip(int(pid), str(sae.cfg.hook_name), feats, pos, mode, bool(enabled))


def sae_layer(sae: Any) -> int:
    """The block whose forward computes the SAE's hooks (the recompute starts there)."""
    m = _BLOCK.match(str(sae.cfg.hook_name))
    if not m:
        raise InvalidOptionError("SAE hook for feature patching", sae.cfg.hook_name,
                                 ["an SAE on a block hook (blocks.<layer>.*)"])
    return int(m.group(1))


class FeatureActs:
    """Per SAE, the clean run's SAE cache (feature activations and error term, what
    ``lenswidget.sae.patching`` reads) and the corrupted run's feature activations."""

    def __init__(self, runs: Runs):
        self.runs = runs
        self._clean: dict[str, Any] = {}
        self._corrupted: dict[str, torch.Tensor] = {}

    def clean_cache(self, sae: Any) -> Any:
        hook = str(sae.cfg.hook_name)
        if hook not in self._clean:
            names = [acts_name(sae), f"{sae.cfg.hook_name_out}.hook_sae_error"]
            self._clean[hook] = sae_cache(self.runs.model, [sae], self.runs.clean_tokens, names)
        return self._clean[hook]

    def clean(self, sae: Any) -> torch.Tensor:
        """``[batch, pos, d_sae]``: the clean run's feature activations."""
        return self.clean_cache(sae)[acts_name(sae)]

    def mean(self, sae: Any) -> torch.Tensor:
        """``[d_sae]``: each feature's mean over the corrupted run (prompts and positions)."""
        hook = str(sae.cfg.hook_name)
        if hook not in self._corrupted:
            acts = sae_cache(self.runs.model, [sae], self.runs.corrupted_tokens, [acts_name(sae)])[acts_name(sae)]
            self._corrupted[hook] = acts.mean(dim=(0, 1))
        return self._corrupted[hook]


def _write_features(chips: Sequence[FeatureChip], clean: torch.Tensor, mean: Optional[torch.Tensor],
                    p0: int) -> Callable:
    """A hook on ``hook_sae_acts_post`` writing each chip's feature activations, in chip order."""
    def hook(acts: torch.Tensor, hook: Any) -> torch.Tensor:
        for chip in chips:
            pos = range(acts.shape[1]) if chip.positions is None else [q - p0 for q in chip.positions if q >= p0]
            if not pos:
                continue
            pi = torch.tensor(list(pos), device=acts.device)[:, None]
            fi = torch.tensor(chip.features, device=acts.device)[None, :]
            if chip.mode == "clean":
                acts[:, pi, fi] = clean[:, p0:][:, pi, fi].to(acts.dtype)
            elif chip.mode == "zero":
                acts[:, pi, fi] = 0
            else:
                assert mean is not None
                acts[:, pi, fi] = mean[fi].to(acts.dtype)
        return acts

    return hook


class FeatureForward(PatchedForward):
    """:class:`PatchedForward` that also applies the enabled feature chips of ``chips()``."""

    def __init__(self, runs: Runs, saes: Callable[[], dict], chips: Callable[[], list], acts: FeatureActs):
        super().__init__(runs)
        self._saes, self._chips, self.acts = saes, chips, acts

    def logits(self, patches: Sequence[Patch], positions: Sequence[int]) -> torch.Tensor:
        saes = self._saes()
        n = self.runs.n_pos
        chips = [c for c in self._chips() if c.enabled and c.hook in saes
                 and (c.positions is None or max(c.positions) < n)]
        if not chips:
            return super().logits(patches, positions)
        used = [saes[h] for h in dict.fromkeys(c.hook for c in chips)]
        floor = (min(sae_layer(s) for s in used), min(0 if c.positions is None else c.positions[0] for c in chips))
        plan = self.plan(patches, floor)
        hooks = list(plan.hooks)
        for sae in used:
            mine = [c for c in chips if c.hook == sae.cfg.hook_name]
            mean = self.acts.mean(sae) if any(c.mode == "mean" for c in mine) else None
            hooks.append((acts_name(sae), _write_features(mine, self.acts.clean(sae), mean, plan.p0)))
        with self.model.saes(used, use_error_term=True):
            return self._run(Plan(plan.l0, plan.p0, hooks), positions)
