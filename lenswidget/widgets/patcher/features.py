"""The patcher's SAE features: feature chips and the feature grid (see :mod:`.feature_patches`
and :mod:`.feature_grid`).

``patcher(model, clean, corrupted, answer, incorrect, saes=[sae, ...])`` (default: a
``HookedSAETransformer``'s attached SAEs) adds, for the SAE picked in ``feature_sae``:

* a grid of its top-``feature_top_k`` features (rows, by attribution) x positions, coloured
  by the attribution estimate or, after an exact sweep, by the exact metric;
* dragging grid cells onto the corrupted grid adds a feature chip (their clean
  activations patched in), onto the ablate target an ablation of those features;
  feature chips compose with the activation chips in every recompute.

Python: :meth:`add_feature_patch`, :meth:`remove_feature_patch`, :meth:`toggle_feature_patch`,
:meth:`clear_feature_patches`, :meth:`feature_sweep`, ``feature_patch_set``,
``feature_grid_data``. Browser messages: ``add_feature_patch {hook, features, positions,
mode}``, ``remove_feature_patch {id}``, ``toggle_feature_patch {id, enabled}``,
``clear_feature_patches``, ``feature_sweep {kind}``; ``feature_sae`` is browser-writable.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
import traitlets as t

from ...errors import InvalidOptionError, UnknownNameError
from .. import codec
from ..base import format_error
from ..messages import MessageRouter
from ..saes import attached, check_all, label, panels_esm
from ..validation import Bool, Int, ListOf, Nullable, Schema, Str, choices
from . import feature_grid as grid
from .feature_patches import FEATURE_MODES, FeatureActs, FeatureChip, FeatureForward, make_chip, sae_layer
from .messages import Span
from .runs import Runs

MAX_FEATURE_CHIPS = 100
DEFAULT_TOP_K = 12


class PatcherFeatures(t.HasTraits):
    """Mixin of :class:`~.widget.Patcher`: the SAE traits, API and messages."""

    sae_esm = t.Unicode("").tag(sync=True)  # the SAE panels' module (a data: URL), only when there are SAEs
    saes = t.List(t.Dict()).tag(sync=True)  # [{hook, label, d_sae}]
    feature_sae = t.Unicode("").tag(sync=True)  # browser-writable: the grid's SAE
    feature_top_k = t.Int(DEFAULT_TOP_K).tag(sync=True)
    feature_grid = t.Dict().tag(sync=True)
    feature_patches = t.List(t.Dict()).tag(sync=True)

    def _init_features(self, runs: Runs, saes: Any, top_k: int = DEFAULT_TOP_K) -> None:
        chosen = attached(runs.model) if saes is None else saes
        objs = check_all(runs.model, chosen) if chosen else []
        for s in objs:
            sae_layer(s)  # feature patches need an SAE inside a block
        self._fsaes = {str(s.cfg.hook_name): s for s in objs}
        self._fchips: list[FeatureChip] = []
        self._fnext = 1
        self._fgrids: dict[str, dict] = {}  # hook -> {"features", "estimate", "exact", ...}
        self._facts = FeatureActs(runs)
        self._ftop_k = max(1, int(top_k))

    def _new_forward(self, runs: Runs) -> FeatureForward:
        """The patched forward of ``runs`` with this widget's feature chips."""
        acts = self._facts if self._facts.runs is runs else FeatureActs(runs)
        return FeatureForward(runs, lambda: self._fsaes, lambda: self._fchips, acts)

    def _features_state(self) -> dict[str, Any]:
        """Initial feature traits (called once the patcher's runs are in place)."""
        first = next(iter(self._fsaes), "")
        saes = [{"hook": h, "label": label(s), "d_sae": int(s.cfg.d_sae)} for h, s in self._fsaes.items()]
        state = {"sae_esm": panels_esm(list(self._fsaes.values())), "saes": saes,
                 "feature_sae": first, "feature_top_k": self._ftop_k, "feature_patches": []}
        state["feature_grid"] = self._grid_payload(first, safe=True) if first else {}
        return state

    # -- Python API ------------------------------------------------------------------------------
    @property
    def feature_patch_set(self) -> list[FeatureChip]:
        return list(self._fchips)

    @property
    def feature_grid_data(self) -> dict[str, Any]:
        """The shown grid: ``hook``, ``features`` (row ids), ``estimate`` [k, n_pos] and ``exact`` (or None)."""
        entry = self._grid(self.feature_sae)
        return {"hook": self.feature_sae, "features": list(entry["features"]),
                "estimate": entry["estimate"][:, entry["features"]].T.clone(),
                "exact": None if entry["exact"] is None else entry["exact"].clone()}

    def add_feature_patch(self, features: Any, positions: Any = None, mode: str = "clean", sae: Any = None,
                          enabled: bool = True) -> int:
        """Add a feature chip (``sae``: hook name, default the grid's SAE); returns its id."""
        with self._state_lock:
            obj = self._sae(sae)
            if len(self._fchips) >= MAX_FEATURE_CHIPS:
                raise InvalidOptionError(f"number of feature patches (at most {MAX_FEATURE_CHIPS})",
                                         len(self._fchips) + 1, ["remove or clear feature chips first"])
            chip = make_chip(self._fnext, obj, self.runs.n_pos, features, positions, mode, enabled)
            self._change_features(self._fchips + [chip])
            self._fnext += 1
            return chip.id

    def remove_feature_patch(self, pid: int) -> None:
        with self._state_lock:
            self._find_feature(pid)
            self._change_features([c for c in self._fchips if c.id != pid])

    def toggle_feature_patch(self, pid: int, enabled: Optional[bool] = None) -> None:
        with self._state_lock:
            old = self._find_feature(pid)
            new = old.with_enabled(not old.enabled if enabled is None else enabled)
            self._change_features([new if c.id == pid else c for c in self._fchips])

    def clear_feature_patches(self) -> None:
        with self._state_lock:
            self._change_features([])

    def feature_sweep(self, kind: str = "exact", sae: Any = None) -> torch.Tensor:
        """Fill the grid of ``sae`` with the ``exact`` metric of each cell (or the ``attribution``
        estimate); returns ``[k, n_pos]``."""
        if kind not in ("exact", "attribution"):
            raise InvalidOptionError("feature sweep kind", kind, ["exact", "attribution"])
        hook = str(self._sae(sae).cfg.hook_name)
        entry = self._grid(hook)
        if kind == "exact":
            lock = self._model_lock
            if not lock.acquire(blocking=False):
                raise InvalidOptionError("feature sweep while a sweep is running", kind, ["cancel_sweep() first"])
            try:
                sae_obj = self._fsaes[hook]
                entry["exact"] = grid.exact(self.runs, sae_obj, self._facts.clean_cache(sae_obj), entry["features"],
                                            max_batch=self.sweep_options.get("max_batch", 64))
            finally:
                lock.release()
        entry["shown"] = kind
        if hook == self.feature_sae:
            self.feature_grid = self._grid_payload(hook)
        return (entry["exact"] if kind == "exact" else entry["estimate"][:, entry["features"]].T).clone()

    # -- browser input ---------------------------------------------------------------------------
    def _feature_writable(self) -> Mapping[str, Schema]:
        return {"feature_sae": choices(list(self._fsaes) or [""])}

    def _add_feature_messages(self, router: MessageRouter) -> None:
        def add_fields() -> Mapping[str, Schema]:
            d_max = max([int(s.cfg.d_sae) for s in self._fsaes.values()] or [1])
            return {"hook": Str(500), "features": ListOf(Int(0, d_max - 1), 256),
                    "positions": Nullable(Span(self.runs.n_pos)), "mode": choices(FEATURE_MODES)}

        def add(m: dict) -> None:
            pos = None if m["positions"] is None else range(m["positions"][0], m["positions"][1] + 1)
            self.add_feature_patch(m["features"], pos, m["mode"], m["hook"])

        router.add("add_feature_patch", add, add_fields)
        router.add("remove_feature_patch", lambda m: self.remove_feature_patch(m["id"]),
                   lambda: {"id": Int(0, 2**31 - 1)})
        router.add("toggle_feature_patch", lambda m: self.toggle_feature_patch(m["id"], m["enabled"]),
                   lambda: {"id": Int(0, 2**31 - 1), "enabled": Bool()})
        router.add("clear_feature_patches", lambda m: self.clear_feature_patches())
        router.add("feature_sweep", lambda m: self.feature_sweep(m["kind"]),
                   lambda: {"kind": choices(("exact", "attribution"))})

    @t.validate("feature_sae")
    def _check_feature_sae(self, proposal: Any) -> str:
        value = proposal["value"]
        if value and value not in getattr(self, "_fsaes", {}):
            raise t.TraitError(str(UnknownNameError("SAE hook", value, list(self._fsaes))))
        return value

    @t.observe("feature_sae")
    def _on_feature_sae(self, change: Any) -> None:
        if change["new"] and getattr(self, "_fsaes", None) and change["old"] != change["new"]:
            self.feature_grid = self._grid_payload(change["new"], safe=True)

    # -- internals -----------------------------------------------------------------------------------
    def _sae(self, sae: Any) -> Any:
        if not self._fsaes:
            raise InvalidOptionError("SAE", sae, ["patcher(..., saes=[sae]) first"])
        if sae is None:
            sae = self.feature_sae
        if isinstance(sae, str):
            if sae not in self._fsaes:
                raise UnknownNameError("SAE hook", sae, list(self._fsaes))
            return self._fsaes[sae]
        for s in self._fsaes.values():
            if s is sae or getattr(sae, "_lenswidget_sae", None) is s:
                return s
        raise InvalidOptionError("SAE", type(sae).__name__, list(self._fsaes))

    def _find_feature(self, pid: int) -> FeatureChip:
        for c in self._fchips:
            if c.id == pid:
                return c
        raise UnknownNameError("feature patch id", pid, [str(c.id) for c in self._fchips])

    def _change_features(self, chips: list[FeatureChip]) -> None:
        """Adopt a new feature chip set and recompute the metric (rolled back if that fails)."""
        old = self._fchips
        self._fchips = chips
        try:
            with self.hold_sync():
                self._sync_feature_patches()
                self._refresh()
        except Exception:
            self._fchips = old
            self._sync_feature_patches()
            raise

    def _sync_feature_patches(self) -> None:
        self.feature_patches = [c.to_dict(self._fsaes[c.hook]) for c in self._fchips]

    def _grid(self, hook: str) -> dict:
        if not hook:
            raise InvalidOptionError("SAE", hook, list(self._fsaes) or ["patcher(..., saes=[sae]) first"])
        if hook not in self._fgrids:
            runs = self.runs
            lock = getattr(self, "_model_lock", None)
            if lock is not None and not lock.acquire(blocking=False):
                raise InvalidOptionError("SAE grid while a sweep is running", hook, ["cancel_sweep() first, or wait"])
            try:
                est = grid.estimate(runs, self._fsaes[hook], self._facts.clean_cache(self._fsaes[hook]))
            finally:
                if lock is not None:
                    lock.release()
            base = runs.value(runs.corrupted_logits)
            self._fgrids[hook] = {"estimate": est, "features": grid.top_features(est, base, self._ftop_k),
                                  "exact": None, "shown": "attribution"}
        return self._fgrids[hook]

    def _grid_payload(self, hook: str, safe: bool = False) -> dict[str, Any]:
        """The grid's trait; with ``safe``, a grid that cannot be computed (e.g. a metric without
        gradients) becomes a note and the chips still work."""
        try:
            entry = self._grid(hook)
        except Exception as exc:  # noqa: BLE001
            if not safe:
                raise
            return {"hook": hook, "label": label(self._fsaes[hook]), "features": [], "kind": "",
                    "note": f"no feature grid: {format_error(exc)}"}
        values = entry["exact"] if entry["shown"] == "exact" and entry["exact"] is not None else \
            entry["estimate"][:, entry["features"]].T
        return {"hook": hook, "label": label(self._fsaes[hook]), "features": list(entry["features"]),
                "kind": entry["shown"], **codec.encode(values.contiguous(), "float32")}

    def _features_new_runs(self, runs: Runs) -> list[FeatureChip]:
        """After new prompts: keep the chips that fit, forget grids and activations; returns the dropped."""
        kept = [c for c in self._fchips if c.positions is None or max(c.positions) < runs.n_pos]
        dropped = [c for c in self._fchips if c not in kept]
        self._fchips, self._fgrids = kept, {}
        forward = getattr(self, "_forward", None)
        same = isinstance(forward, FeatureForward) and forward.runs is runs
        self._facts = forward.acts if same else FeatureActs(runs)
        if self._fsaes:
            with self.hold_sync():
                self._sync_feature_patches()
                self.feature_grid = self._grid_payload(self.feature_sae, safe=True)
        return dropped
