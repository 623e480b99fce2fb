"""Drag-to-patch: activation patching between a clean and a corrupted run, by hand.

>>> w = patcher(model, "When John and Mary went to the store, Mary gave a drink to",   # doctest: +SKIP
...             "When John and Mary went to the store, John gave a drink to",
...             answer=" John", incorrect=" Mary")
>>> w.add_patch("resid_pre", layers=20, positions=-1)                               # doctest: +SKIP
>>> w.metric_value, w.patches, w.code                                               # doctest: +SKIP

The browser shows both runs as layer x position grids (layer x head for per-head
activations); dragging clean cells onto the corrupted grid adds a patch (a chip), dropping
them on the ablate target zero- or mean-ablates them. Every change reruns the corrupted
prompt with all enabled chips composed (:mod:`.forward`) and updates the metric
and the top tokens. The sweep button runs the patching module's exact sweep of the grid in
a background thread (so the kernel still hears "cancel"); "Estimate" shows the attribution
patching estimate at once. ``code`` is a ``run_with_hooks`` script reproducing the chips.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping

import torch
import traitlets as t

from ...errors import InvalidOptionError, UnknownNameError
from ...patching.progress import PatchingCancelled
from .. import codec
from ..assets import esm
from ..base import LensWidget, format_error
from ..messages import MessageRouter
from .code import generate
from .features import PatcherFeatures
from .forward import PatchedForward
from .messages import register
from .patches import ACT_LABELS, HEAD_ACTS, MAX_PATCHES, Patch, make_patch
from .runs import Runs, difference_map, top_tokens
from .sweep import attribution_sweep, exact_sweep, sweep_size
from ..validation import Int, Nullable, Schema, choices

SWEEP_KINDS = ("exact", "attribution")
_KEEP = object()


class Patcher(PatcherFeatures, LensWidget):
    """Clean vs corrupted patching widget; build it with :func:`patcher`."""

    _esm = esm("patcher")

    acts = t.List(t.Unicode()).tag(sync=True)
    act_labels = t.Dict().tag(sync=True)
    act = t.Unicode("resid_pre").tag(sync=True)
    head_position = t.Int(None, allow_none=True).tag(sync=True)
    prompt_index = t.Int(0).tag(sync=True)
    ablation = t.Unicode("zero").tag(sync=True)
    dims = t.Dict().tag(sync=True)
    clean_str_tokens = t.List(t.Unicode()).tag(sync=True)
    corrupted_str_tokens = t.List(t.Unicode()).tag(sync=True)
    token_differs = t.List(t.Bool()).tag(sync=True)
    clean_prompt = t.Unicode("").tag(sync=True)
    corrupted_prompt = t.Unicode("").tag(sync=True)
    editable = t.Bool(False).tag(sync=True)
    cell_diff = t.Dict(default_value=codec.empty()).tag(sync=True)
    patches = t.List(t.Dict()).tag(sync=True)
    metric_name = t.Unicode("").tag(sync=True)
    metric_value = t.Float(0.0).tag(sync=True)
    metric_before = t.Float(None, allow_none=True).tag(sync=True)
    metric_clean = t.Float(1.0).tag(sync=True)
    metric_corrupted = t.Float(0.0).tag(sync=True)
    metric_pending = t.Bool(False).tag(sync=True)
    top_clean = t.List(t.Dict()).tag(sync=True)
    top_corrupted = t.List(t.Dict()).tag(sync=True)
    top_patched = t.List(t.Dict()).tag(sync=True)
    sweep = t.Dict(default_value=codec.empty()).tag(sync=True)
    sweep_state = t.Unicode("idle").tag(sync=True)
    sweep_progress = t.List(t.Int(), default_value=[0, 0]).tag(sync=True)
    code = t.Unicode("").tag(sync=True)
    notice = t.Unicode("").tag(sync=True)
    cell_size = t.Int(16).tag(sync=True)

    def __init__(self, runs: Runs, *, act: str = "resid_pre", top_k: int = 5, answer: Any = None,
                 incorrect: Any = None, sweep_options: Mapping[str, Any] | None = None, saes: Any = None,
                 feature_top_k: int = 12, **kwargs: Any):
        # Plain attributes first: validators and message schemas read them.
        self._init_features(runs, saes, feature_top_k)  # SAE features (features.py)
        self.runs, self._forward = runs, self._new_forward(runs)
        self._answer, self._incorrect = answer, incorrect
        self._patches: list[Patch] = []
        self._next_id, self._top_k = 1, max(1, int(top_k))
        self._sweeps: dict[tuple, dict] = {}
        # Chunks of at most 64 patched runs: "cancel" is heard between chunks.
        self.sweep_options = {"max_batch": 64, **dict(sweep_options or {})}
        self._model_lock, self._state_lock = threading.Lock(), threading.RLock()
        self._stale, self._stop, self._thread = False, threading.Event(), None
        self._last_patched = runs.corrupted_logits[:, -1]
        self._progress_at = 0.0
        if act not in runs.acts:
            raise InvalidOptionError("activation", act, runs.acts)
        super().__init__(acts=list(runs.acts), act_labels={a: ACT_LABELS[a] for a in runs.acts}, act=act,
                         **self._run_state(runs, 0), **self._features_state(), **kwargs)
        with self.hold_sync():
            self._sync_patches()
            self._show_view()
            self._publish(self.metric_corrupted, runs.corrupted_logits[:, -1], before=None)

    # -- Python API ------------------------------------------------------------------------------
    @property
    def patch_set(self) -> list[Patch]:
        """The chips as :class:`~lenswidget.widgets.patcher.patches.Patch` objects, in order."""
        return list(self._patches)

    @property
    def sweep_result(self) -> torch.Tensor | None:
        """The overlay's values ([n_layers, n_cols]) for the shown activation, or None."""
        entry = self._sweeps.get(self._view_key())
        return None if entry is None else entry["values"].clone()

    @property
    def sweep_results(self) -> dict:
        """Every stored sweep: ``{(act, position): {"values", "kind", "complete"}}``."""
        return {k: dict(v) for k, v in self._sweeps.items()}

    def add_patch(self, act: str, layers: Any, positions: Any = None, heads: Any = None, mode: str = "clean",
                  enabled: bool = True) -> int:
        """Add a chip; returns its id. ``layers``/``positions``/``heads``: an int, a range or a list
        (negative counts from the end); ``positions=None`` means every position."""
        with self._state_lock:
            if act not in self.acts:
                raise InvalidOptionError("activation", act, self.acts)
            if len(self._patches) >= MAX_PATCHES:
                raise InvalidOptionError(f"number of patches (at most {MAX_PATCHES})", len(self._patches) + 1,
                                         ["remove or clear chips first"])
            patch = make_patch(self._next_id, self.runs.dims, act, layers, positions, heads, mode, enabled)
            self._change(self._patches + [patch])
            self._next_id += 1
            return patch.id

    def remove_patch(self, pid: int) -> None:
        with self._state_lock:
            self._find(pid)
            self._change([p for p in self._patches if p.id != pid])

    def toggle_patch(self, pid: int, enabled: bool | None = None) -> None:
        """Enable/disable a chip (``None`` flips it); disabled chips stay listed but do nothing."""
        with self._state_lock:
            old = self._find(pid)
            new = old.with_enabled(not old.enabled if enabled is None else enabled)
            self._change([new if p.id == pid else p for p in self._patches])

    def clear_patches(self) -> None:
        with self._state_lock:
            self._change([])

    def patched_logits(self) -> torch.Tensor:
        """Full logits [batch, pos, d_vocab] of the corrupted run with the enabled chips."""
        with self._model_lock:
            return self._forward.logits(self._patches, list(range(self.runs.n_pos)))

    def run_sweep(self, act: str | None = None, position: Any = _KEEP, kind: str = "exact",
                  block: bool = True) -> torch.Tensor | None:
        """Sweep every cell of a grid (default: the shown one) and overlay the result.

        ``kind="exact"``: the patching module's sweep; ``"attribution"``: the gradient estimate.
        ``block=False`` runs in a background thread (progress in ``sweep_progress``, stop with
        :meth:`cancel_sweep`); ``block=True`` returns the ``[n_layers, n_cols]`` result.
        """
        act = self.act if act is None else act
        if act not in self.acts:
            raise InvalidOptionError("activation", act, self.acts)
        if kind not in SWEEP_KINDS:
            raise InvalidOptionError("sweep kind", kind, SWEEP_KINDS)
        position = (self.head_position if position is _KEEP else position) if act in HEAD_ACTS else None
        if position is not None:
            Int(-self.runs.n_pos, self.runs.n_pos - 1).check(position, "position")
            position %= self.runs.n_pos
        if not self._model_lock.acquire(blocking=False):
            raise InvalidOptionError("sweep while another sweep is running", kind, ["cancel_sweep() first, or wait_sweep()"])
        self._stop.clear()
        with self._state_lock, self.hold_sync():
            self.sweep_state = "running"
            self.sweep_progress = [0, sweep_size(self.runs, act, position)]
        if block:
            return self._sweep_body(act, position, kind, raise_errors=True)
        self._thread = threading.Thread(target=self._sweep_body, args=(act, position, kind, False),
                                        name="lenswidget-patcher-sweep", daemon=True)
        self._thread.start()
        return None

    def cancel_sweep(self) -> None:
        """Ask a running sweep to stop after its current chunk (partial results are kept)."""
        self._stop.set()

    @property
    def cancel_requested(self) -> bool:
        """True once :meth:`cancel_sweep` was called, until the next sweep starts."""
        return self._stop.is_set()

    def wait_sweep(self, timeout: float | None = None) -> bool:
        """Wait for a background sweep; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def set_prompts(self, clean: Any, corrupted: Any, answer: Any = _KEEP, incorrect: Any = _KEEP) -> None:
        """New clean/corrupted prompts (answers as given to :func:`patcher` unless passed).

        Chips that still fit the new length are kept; stored sweeps are dropped. Nothing
        changes if the prompts are invalid (e.g. of different token lengths).
        """
        answer = self._answer if answer is _KEEP else answer
        incorrect = self._incorrect if incorrect is _KEEP else incorrect
        if not self._model_lock.acquire(blocking=False):
            raise InvalidOptionError("prompt change while a sweep is running", "set_prompts", ["cancel_sweep() first"])
        try:
            metric = None if self.runs.default_metric else self.runs.metric
            runs = Runs.build(self.runs.model, clean, corrupted, answer, incorrect, metric)
            forward = self._new_forward(runs)
            kept, dropped = [], []
            for p in self._patches:
                try:
                    kept.append(make_patch(p.id, runs.dims, p.act, p.layers, p.positions, p.heads, p.mode, p.enabled))
                except Exception:  # noqa: BLE001 - out of range for the new length
                    dropped.append(p)
            value, last = _evaluate(forward, runs, kept)
        finally:
            self._model_lock.release()
        with self._state_lock, self.hold_sync():
            self.runs, self._forward, self._answer, self._incorrect = runs, forward, answer, incorrect
            self._patches, self._sweeps, self._last_patched = kept, {}, last
            index = self.prompt_index if self.prompt_index < runs.batch else 0
            for key, value_ in self._run_state(runs, index).items():
                setattr(self, key, value_)
            self.notice = ("removed chips outside the new prompt: " + ", ".join(d.to_dict()["label"] for d in dropped)) if dropped else ""
            self._sync_patches()
            self._publish(value, last, before=self.metric_value)
            self._show_view()
            self._features_new_runs(runs)

    # -- browser input ----------------------------------------------------------------------------
    def browser_writable(self) -> Mapping[str, Schema]:
        return {"act": choices(self.acts), "head_position": Nullable(Int(0, self.runs.n_pos - 1)),
                "prompt_index": Int(0, self.runs.batch - 1), "ablation": choices(("zero", "mean")),
                **self._feature_writable()}

    def _add_messages(self, router: MessageRouter) -> None:
        register(router, self)
        self._add_feature_messages(router)

    def _handle_msg(self, msg: Any) -> None:
        with self._state_lock:  # a background sweep publishes under the same lock
            super()._handle_msg(msg)

    def _set_prompts_from_browser(self, clean: str, corrupted: str) -> None:
        if not self.editable:
            raise InvalidOptionError("set_prompts from the browser", "read-only",
                                     ["a patcher built from one clean and one corrupted prompt string"])
        self.set_prompts(clean, corrupted)

    @t.validate("act")
    def _check_act(self, proposal: Any) -> str:
        if self.acts and proposal["value"] not in self.acts:
            raise t.TraitError(str(InvalidOptionError("activation", proposal["value"], self.acts)))
        return proposal["value"]

    @t.validate("head_position")
    def _check_position(self, proposal: Any) -> int | None:
        value = proposal["value"]
        if value is not None and not 0 <= value < self.runs.n_pos:
            raise t.TraitError(f"head_position {value} is out of range; valid: None or 0..{self.runs.n_pos - 1}")
        return value

    @t.validate("prompt_index")
    def _check_prompt_index(self, proposal: Any) -> int:
        if not 0 <= proposal["value"] < self.runs.batch:
            raise t.TraitError(f"prompt_index {proposal['value']} is out of range; valid: 0..{self.runs.batch - 1}")
        return proposal["value"]

    @t.validate("ablation")
    def _check_ablation(self, proposal: Any) -> str:
        if proposal["value"] not in ("zero", "mean"):
            raise t.TraitError(str(InvalidOptionError("ablation", proposal["value"], ("zero", "mean"))))
        return proposal["value"]

    @t.validate("patches")
    def _check_patches(self, proposal: Any) -> list:
        if proposal["value"] != [p.to_dict() for p in self._patches]:
            raise t.TraitError("patches is read-only: use add_patch(), remove_patch(), toggle_patch() or clear_patches()")
        return proposal["value"]

    @t.observe("act", "head_position")
    def _on_view(self, change: Any) -> None:
        self._show_view()

    @t.observe("prompt_index")
    def _on_prompt_index(self, change: Any) -> None:
        with self.hold_sync():
            for key, value in self._prompt_state(self.runs, self.prompt_index).items():
                setattr(self, key, value)
            self.top_patched = top_tokens(self.runs.model, self._last_patched[self.prompt_index], self._top_k)

    # -- internals ---------------------------------------------------------------------------------
    def _find(self, pid: int) -> Patch:
        for p in self._patches:
            if p.id == pid:
                return p
        raise UnknownNameError("patch id", pid, [str(p.id) for p in self._patches])

    def _change(self, patches: list[Patch]) -> None:
        """Adopt a new patch set and recompute (rolled back if the recompute fails)."""
        old = self._patches
        self._patches = patches
        try:
            with self.hold_sync():
                self._sync_patches()
                self._refresh()
        except Exception:
            self._patches = old
            self._sync_patches()
            raise

    def _sync_patches(self) -> None:
        self.patches = [p.to_dict() for p in self._patches]
        self.code = generate(self.runs, self._patches)

    def _refresh(self) -> None:
        """Recompute the metric for the current chips, unless a sweep holds the model (then
        ``metric_pending`` is set and the sweep's thread recomputes when it finishes)."""
        self._stale = True
        while self._stale:
            if not self._model_lock.acquire(blocking=False):
                self.metric_pending = True
                return
            try:
                self._stale = False
                value, last = _evaluate(self._forward, self.runs, list(self._patches))
                with self._state_lock, self.hold_sync():
                    self._publish(value, last, before=self.metric_value)
            finally:
                self._model_lock.release()

    def _publish(self, value: float, last: torch.Tensor, before: float | None) -> None:
        self._last_patched = last
        self.metric_before = before
        self.metric_value = value
        self.metric_pending = self._stale
        self.top_patched = top_tokens(self.runs.model, last[self.prompt_index], self._top_k)

    def _run_state(self, runs: Runs, index: int) -> dict:
        """Every trait derived from the runs (not from the chips or the view)."""
        d = runs.dims
        texts = runs.texts
        state = {
            "dims": {"n_layers": d.n_layers, "n_pos": d.n_pos, "n_heads": d.n_heads, "n_kv_heads": d.n_kv_heads,
                     "batch": runs.batch},
            "editable": bool(texts and len(texts[0]) == 1 and len(texts[1]) == 1),
            "clean_prompt": texts[0][0] if texts else "", "corrupted_prompt": texts[1][0] if texts else "",
            "metric_name": "normalised logit difference" if runs.default_metric else getattr(runs.metric, "__name__", "metric"),
            "metric_clean": runs.value(runs.clean_logits), "metric_corrupted": runs.value(runs.corrupted_logits),
        }
        state["prompt_index"] = index
        state.update(self._prompt_state(runs, index))
        return state

    def _prompt_state(self, runs: Runs, i: int) -> dict:
        return {
            "clean_str_tokens": runs.clean_str[i], "corrupted_str_tokens": runs.corrupted_str[i],
            "token_differs": [bool(a != b) for a, b in zip(runs.clean_tokens[i].tolist(), runs.corrupted_tokens[i].tolist())],
            "top_clean": top_tokens(runs.model, runs.clean_logits[i, -1], self._top_k),
            "top_corrupted": top_tokens(runs.model, runs.corrupted_logits[i, -1], self._top_k),
        }

    def _view_key(self) -> tuple:
        return (self.act, self.head_position if self.act in HEAD_ACTS else None)

    def _show_view(self) -> None:
        """The grid's difference map and the stored sweep for the shown activation."""
        act, position = self._view_key()
        with self.hold_sync():
            self.cell_diff = codec.encode(difference_map(self.runs, act, position), "float32")
            entry = self._sweeps.get((act, position))
            if entry is None:
                self.sweep = {**codec.empty(), "act": "", "position": None, "kind": "", "complete": False}
            else:
                self.sweep = {**codec.encode(entry["values"], "float32"), "act": act, "position": position,
                              "kind": entry["kind"], "complete": entry["complete"]}

    def _on_progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._progress_at < 0.1:
            return
        self._progress_at = now
        with self._state_lock:
            self.sweep_progress = [int(done), int(total)]

    def _sweep_body(self, act: str, position: int | None, kind: str, raise_errors: bool) -> torch.Tensor | None:
        """Run one sweep holding the model lock; publish it; then catch up on chip changes."""
        values, state, error = None, "done", None
        shape = (self.runs.dims.n_layers, self.runs.dims.cols(act))
        try:
            try:
                if kind == "exact":
                    values = exact_sweep(self.runs, act, position, self._on_progress, self._stop.is_set,
                                         **self.sweep_options)
                else:
                    values = attribution_sweep(self.runs, act, position)
            except PatchingCancelled as exc:
                state = "cancelled"
                partial = exc.partial
                values = None if partial is None or partial.numel() != shape[0] * shape[1] else partial.reshape(shape).cpu()
            except Exception as exc:  # noqa: BLE001 - reported in the banner (or raised to a Python caller)
                state, error = "error", exc
            with self._state_lock, self.hold_sync():
                if values is not None:
                    self._sweeps[(act, position)] = {"values": values.float(), "kind": kind, "complete": state == "done"}
                    self._show_view()
                total = shape[0] * shape[1]
                done = total if state == "done" else self.sweep_progress[0]
                self.sweep_progress = [done, total]
                self.sweep_state = state
                if error is not None:
                    self.error = format_error(error)
        finally:
            self._model_lock.release()
        if self._stale:
            try:
                self._refresh()
            except Exception as exc:  # noqa: BLE001 - background thread: report, never raise
                with self._state_lock:
                    self.error = format_error(exc)
        if error is not None and raise_errors:
            raise error
        return values


def _evaluate(forward: PatchedForward, runs: Runs, patches: list[Patch]) -> tuple[float, torch.Tensor]:
    """(metric, last-position logits [batch, d_vocab]) of the corrupted run with ``patches``."""
    last = runs.n_pos - 1
    read = runs.adapter.positions
    positions = sorted(set(read) | {last})
    logits = forward.logits(patches, positions)
    sel = logits[:, [positions.index(p) for p in read]]
    return float(runs.adapter.evaluate(sel[None])[0]), logits[:, positions.index(last)]


def patcher(model: Any, clean: Any, corrupted: Any, answer: Any = None, incorrect: Any = None,
            metric: Callable | None = None, *, act: str = "resid_pre", title: str = "", top_k: int = 5,
            cell_size: int = 16, sweep_options: Mapping[str, Any] | None = None, saes: Any = None,
            feature_top_k: int = 12) -> Patcher:
    """A :class:`Patcher` comparing ``clean`` and ``corrupted`` (str, list of str, or tokens).

    ``metric=None`` is seed 004's normalised logit difference of ``answer`` vs ``incorrect``
    at the last position (str, token id, one per prompt, or a ``[batch, n]`` tensor; by
    default the clean run's top token vs the corrupted run's top other token): 0 = corrupted
    run, 1 = clean run. Otherwise ``metric(logits [batch, pos, d_vocab]) -> scalar``, or a
    ``patching.batched_metric``. ``act`` is the grid shown first; ``sweep_options`` go to the
    patching engine (``method``, ``max_batch``, ``memory_budget``). ``saes``: SAEs whose
    features can be patched (default: a ``HookedSAETransformer``'s attached SAEs), with a grid
    of the ``feature_top_k`` features of the shown SAE by attribution (features.py).
    """
    runs = Runs.build(model, clean, corrupted, answer, incorrect, metric)
    return Patcher(runs, act=act, top_k=top_k, answer=answer, incorrect=incorrect, sweep_options=sweep_options,
                   title=title, cell_size=max(6, min(48, int(cell_size))), saes=saes, feature_top_k=feature_top_k)
