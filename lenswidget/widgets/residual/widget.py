"""Residual-stream explorer: direct logit attribution that drills down, plus a logit lens.

``residual(model, prompts, answer, incorrect=None, pos=-1)`` runs the model once with
caching (or takes ``cache=`` and ``tokens=``) and shows each component's contribution to
the answer's logit (or logit difference) at ``pos``. Clicking an attention bar opens its
heads, an MLP bar its top neurons, a head its pattern and direct effect on the logits;
nothing reruns the model. Changing the answer recomputes from the cache; changing the
prompts reruns the model once.

Python side: ``widget.selection`` (the drill path), ``widget.data`` (what is shown, as
tensors with labels), ``select(label)``, ``back(depth)``, ``set_answer(...)``,
``set_prompts(...)``. Browser contract: src/residual/ and docs/residual.md.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence

import torch
import traitlets as t

from ...errors import InvalidOptionError, OutOfRangeError
from . import encode as enc
from ..assets import esm
from ..base import LensWidget
from ..messages import MessageRouter
from .answers import Answers, resolve
from .attrib import Attribution
from .features import SAEFeatures
from .lens import LogitLens
from .path import Pick, level_of, parse
from .source import Run, from_cache, run_prompts, run_tokens
from .views import bars_for, detail, lens_curve, lens_grid, reduce, shape_of
from ..validation import Bool, Int, ListOf, Nullable, Schema, Str, choices

VIEWS = ("attribution", "lens")
MAX_PROMPTS = 64
MAX_PROMPT_CHARS = 20_000
_ID = re.compile(r"^#(\d+)$")


class ResidualExplorer(SAEFeatures, LensWidget):
    """Drill-down DLA and logit lens over one cached run; see the module docstring."""

    _esm = esm("residual")

    # kernel -> browser
    prompts = t.List(t.Unicode()).tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)  # the shown prompt's tokens
    n_prompts = t.Int(1).tag(sync=True)
    pos = t.Int(0).tag(sync=True)
    answer = t.List(t.Unicode()).tag(sync=True)
    incorrect = t.List(t.Unicode()).tag(sync=True)
    metric = t.Unicode("logit").tag(sync=True)
    editable = t.Bool(False).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_heads = t.Int(0).tag(sync=True)
    top_k = t.Int(10).tag(sync=True)
    path = t.List(t.Unicode()).tag(sync=True)
    bars = t.Dict().tag(sync=True)
    check = t.Dict().tag(sync=True)
    head_grid = t.Dict().tag(sync=True)
    detail = t.Dict().tag(sync=True)
    lens = t.Dict().tag(sync=True)
    lens_grid = t.Dict().tag(sync=True)
    # browser-writable
    sort = t.Unicode(enc.DEFAULT_SORT).tag(sync=True)
    all_heads = t.Bool(False).tag(sync=True)
    prompt_index = t.Int(None, allow_none=True).tag(sync=True)
    view = t.Unicode("attribution").tag(sync=True)

    def __init__(self, model: Any, run: Run, answers: Answers, *, editable: bool, top_k: int = 10,
                 lens_top_k: int = 5, max_tokens: int = 256, pos_arg: Optional[int] = None, saes: Any = None,
                 **kwargs: Any):
        self._model, self._run, self._answers = model, run, answers
        self._init_features(model, saes)  # SAE features (features.py)
        self._lens_k, self._max_tokens, self._pos_arg = max(1, int(lens_top_k)), max_tokens, pos_arg
        if self._pos_arg is None:
            self._pos_arg = run.pos - run.n_tokens  # counted from the end, so new prompts keep it
        self._attr: Optional[Attribution] = None
        self._lens: Optional[LogitLens] = None
        self._raw: dict[str, Any] = {}
        self._applying = True  # no observer refreshes until the first state is in
        state = {"path": [], "prompt_index": None, "all_heads": False, "view": "attribution", "sort": enc.DEFAULT_SORT,
                 **{k: kwargs.pop(k) for k in ("path", "prompt_index", "all_heads", "view", "sort") if k in kwargs}}
        _check_option("view", state["view"], VIEWS)
        _check_option("sort", state["sort"], enc.SORTS)
        self._top_k = max(1, int(top_k))
        payload, raw = self._compute(run, answers, state)
        super().__init__(editable=editable, top_k=self._top_k, n_layers=int(model.cfg.n_layers),
                         n_heads=int(model.cfg.n_heads), sort=state["sort"], **payload, **kwargs)
        self._raw, self._attr, self._lens = raw, raw["attr"], raw["lens_obj"]
        self._applying = False

    # -- Python API ---------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        return self._model

    @property
    def cache(self) -> Any:
        return self._run.cache

    @property
    def attribution(self) -> Attribution:
        """The memoised attribution of the current run and answer (per-prompt tensors)."""
        return self._attribution(self._run, self._answers)

    @property
    def selection(self) -> dict[str, Any]:
        """The drill path and the selected component (kind, layer, head or neuron), and view options."""
        path = list(self.path)
        pick = self._pick(path)
        level, layer = level_of(path, self._shape())
        out: dict[str, Any] = {"path": path, "component": path[-1] if path else None,
                               "kind": pick.kind if pick else None, "level": level, "layer": layer,
                               "prompt_index": self.prompt_index, "view": self.view, "all_heads": self.all_heads,
                               "sort": self.sort}
        if pick is not None and pick.kind in ("head", "neuron"):
            out[pick.kind] = pick.index
            out["layer"] = pick.layer
        return out

    @property
    def data(self) -> dict[str, Any]:
        """What is shown, as float32 tensors with labels (bars in display order).

        ``labels`` / ``values`` / ``kinds`` / ``per_prompt`` ``[n_bars, batch]``: the bars;
        ``sum`` and ``target`` (what they must add up to, named by ``target_label``);
        ``detail`` (the selected head or neuron), ``heads`` ``[n_layers, n_heads]`` (with
        ``all_heads``), ``lens`` / ``lens_grid`` (in the lens view), else None.
        """
        b = self._raw["bars"]
        values = reduce(b.per_prompt, self.prompt_index)
        idx = enc.order(values.tolist(), b.kinds, self.sort)
        return {
            "view": self.view, "level": b.level, "layer": b.layer, "metric": self.metric,
            "labels": [b.labels[i] for i in idx], "kinds": [b.kinds[i] for i in idx],
            "values": values[idx].clone(), "per_prompt": b.per_prompt[idx].clone(),
            "sum": float(values.sum()), "target": float(reduce(b.target, self.prompt_index)),
            "target_label": b.target_label, "prompt_index": self.prompt_index,
            "detail": self._raw.get("detail"), "heads": self._raw.get("heads"),
            "lens": self._raw.get("lens"), "lens_grid": self._raw.get("lens_grid"),
        }

    def select(self, component: str) -> None:
        """Open ``component``: ``'3_attn_out'`` (its heads), ``'L3H2'``, ``'5_mlp_out'``, ``'L5N10'``, ``'embed'``."""
        self._apply(path=parse(component, self._shape()).path)

    def back(self, depth: int = 0) -> None:
        """Go back to breadcrumb ``depth`` (0 = all components)."""
        if type(depth) is not int or not 0 <= depth <= len(self.path):
            raise OutOfRangeError("breadcrumb depth", depth, 0, len(self.path))
        self._apply(path=list(self.path)[:depth])

    def set_answer(self, answer: Any, incorrect: Any = None) -> None:
        """New answer (and optional incorrect) token(s); recomputed from the cache, no forward pass."""
        answers = resolve(self._model, answer, incorrect, self._run.n_prompts)
        self._apply(answers=answers)

    def set_prompts(self, prompts: Sequence[str] | str) -> None:
        """Rerun the model once on new prompts (same answer; equal token lengths)."""
        if not self.editable:
            raise InvalidOptionError("set_prompts on an explorer built from a cache", "prompts",
                                     ["residual(model, prompts, ...)"])
        run = run_prompts(self._model, prompts, self._pos_arg, self._max_tokens)
        answers = self._answers.for_batch(self._model, run.n_prompts)
        prompt = self.prompt_index if self.prompt_index is None or self.prompt_index < run.n_prompts else None
        self._apply(run=run, answers=answers, prompt_index=prompt)

    # -- browser input -------------------------------------------------------------------------
    def browser_writable(self) -> Mapping[str, Schema]:
        return {"sort": choices(enc.SORTS), "all_heads": Bool(), "view": choices(VIEWS),
                "prompt_index": Nullable(Int(0, self._run.n_prompts - 1))}

    def _add_messages(self, router: MessageRouter) -> None:
        router.add("select", lambda m: self.select(m["component"]), lambda: {"component": Str(64)})
        router.add("back", lambda m: self.back(m["depth"]), lambda: {"depth": Int(0, len(self.path))})
        router.add("set_answer", lambda m: self._set_answer_text(m["answer"], m["incorrect"]),
                   lambda: {"answer": Str(200), "incorrect": Str(200)})
        router.add("set_prompts", lambda m: self.set_prompts(m["prompts"]),
                   lambda: {"prompts": ListOf(Str(MAX_PROMPT_CHARS), MAX_PROMPTS)})
        self._add_feature_messages(router)

    def _set_answer_text(self, answer: str, incorrect: str) -> None:
        """Picker text: a single-token string, or ``#id``; an empty incorrect means none."""
        self.set_answer(_token_value(answer), _token_value(incorrect) if incorrect != "" else None)

    @t.validate("prompt_index")
    def _check_prompt_index(self, proposal: Any) -> Optional[int]:
        value = proposal["value"]
        if value is not None and not 0 <= value < self._run.n_prompts:
            raise t.TraitError(str(OutOfRangeError("prompt_index", value, 0, self._run.n_prompts - 1,
                                                   "None shows the mean over prompts")))
        return value

    @t.validate("view")
    def _check_view(self, proposal: Any) -> str:
        return _check_option("view", proposal["value"], VIEWS)

    @t.validate("sort")
    def _check_sort(self, proposal: Any) -> str:
        return _check_option("sort", proposal["value"], enc.SORTS)

    @t.observe("prompt_index", "all_heads", "view")
    def _on_option(self, change: Any) -> None:
        if not self._applying:
            self._apply()

    # -- computing and applying -------------------------------------------------------------------
    def _state(self, **overrides: Any) -> dict[str, Any]:
        state = {"path": list(self.path), "prompt_index": self.prompt_index, "all_heads": self.all_heads,
                 "view": self.view}
        state.update(overrides)
        return state

    def _apply(self, run: Optional[Run] = None, answers: Optional[Answers] = None, **overrides: Any) -> None:
        """Compute everything for the new state first; only then change any trait (all or nothing)."""
        run, answers = run or self._run, answers or self._answers
        payload, raw = self._compute(run, answers, self._state(**overrides))
        self._applying = True
        try:
            with self.hold_sync():
                if raw["lens_obj"] is not None or run is not self._run:
                    self._lens = raw["lens_obj"]  # never keep an old run's cache alive
                self._run, self._answers, self._raw, self._attr = run, answers, raw, raw["attr"]
                for key, value in payload.items():
                    setattr(self, key, value)
        finally:
            self._applying = False

    def _compute(self, run: Run, answers: Answers, state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        attr = self._attribution(run, answers)
        if run is not self._run or self._attr is None:
            attr.heads()  # with the forward pass, so that the first click on a layer or head is quick
        shape = shape_of(attr)
        path = list(state["path"])
        picks = [parse(p, shape) for p in path]
        pick = picks[-1] if picks else None
        level, layer = level_of(path, shape)
        prompt = state["prompt_index"]
        if prompt is not None and not 0 <= prompt < run.n_prompts:
            raise OutOfRangeError("prompt_index", prompt, 0, run.n_prompts - 1)
        b = bars_for(attr, level, layer, prompt, self._top_k, pick)
        raw: dict[str, Any] = {"bars": b, "detail": None, "heads": None, "lens": None, "lens_grid": None,
                               "attr": attr, "lens_obj": None}
        if pick is not None and pick.kind in ("head", "neuron"):
            raw["detail"] = detail(attr, pick, prompt)
        if state["all_heads"]:
            raw["heads"] = reduce(attr.heads(), prompt)
        if state["view"] == "lens":
            lens = raw["lens_obj"] = self._logit_lens(run)
            raw["lens"] = lens_curve(lens, attr, prompt)
            raw["lens_grid"] = lens_grid(lens, 0 if prompt is None else prompt, self._lens_k)
        metric = "logit" if answers.incorrect is None else "logit_diff"
        payload = {
            "prompts": list(run.prompts), "tokens": list(run.str_tokens[0 if prompt is None else prompt]),
            "n_prompts": run.n_prompts, "pos": run.pos, "answer": list(answers.text),
            "incorrect": list(answers.incorrect_text), "metric": metric,
            "path": path, "prompt_index": prompt, "all_heads": bool(state["all_heads"]), "view": state["view"],
            "bars": enc.bars(b, prompt), "check": enc.check(b, prompt, _metric_text(answers)),
            "detail": enc.detail(raw["detail"]), "head_grid": enc.heads(raw["heads"]),
            "lens": enc.lens(raw["lens"], metric), "lens_grid": enc.lens_grid(raw["lens_grid"], self._model),
        }
        features, raw["features"] = self._features_payload(run, answers, prompt)  # SAE features (features.py)
        payload.update(features)
        return payload, raw

    def _attribution(self, run: Run, answers: Answers) -> Attribution:
        """The memoised attribution when (run, answers) are current, else a fresh one."""
        attr = self._attr
        if attr is not None and attr.run is run:
            return attr if attr.answers.key() == answers.key() else attr.with_answers(answers)
        return Attribution(self._model, run, answers)

    def _logit_lens(self, run: Run) -> LogitLens:
        if self._lens is not None and self._lens.run is run:
            return self._lens
        return LogitLens(self._model, run)

    def _shape(self):
        return shape_of(self._attribution(self._run, self._answers))

    def _pick(self, path: list[str]) -> Optional[Pick]:
        return parse(path[-1], self._shape()) if path else None


def residual(model: Any, prompts: Sequence[str] | str | None = None, answer: Any = None, incorrect: Any = None,
             pos: int = -1, *, cache: Any = None, tokens: Any = None, top_k: int = 10, lens_top_k: int = 5,
             title: str = "", max_tokens: int = 256, sort: str = enc.DEFAULT_SORT, saes: Any = None) -> ResidualExplorer:
    """A :class:`ResidualExplorer` of ``model`` on ``prompts`` (or on ``cache`` + ``tokens``).

    ``answer`` / ``incorrect``: a single-token string or id (for every prompt) or one per
    prompt; with ``incorrect`` the bars attribute the logit difference. Without
    ``answer`` the model's top prediction at ``pos`` is used. ``top_k`` neurons are shown
    per MLP layer; ``lens_top_k`` tokens per logit-lens cell. ``sort``: bar order, by
    ``"abs"`` value (default: the components that matter first), ``"value"`` or ``"layer"``.
    ``saes``: SAEs whose features the explorer drills into (default: a
    ``HookedSAETransformer``'s attached SAEs; see features.py).
    """
    if model is None or not hasattr(model, "cfg"):
        raise InvalidOptionError("model", type(model).__name__, ["HookedTransformer"])
    if cache is not None:
        if tokens is None:
            if prompts is None:
                raise InvalidOptionError("tokens", None, ["the tokens the cache was run on (residual(model, cache=cache, tokens=tokens, ...))"])
            tokens = model.to_tokens(prompts)
        run, editable = from_cache(model, cache, tokens, pos), False
    elif tokens is not None:
        run, editable = run_tokens(model, tokens, pos, max_tokens), getattr(model, "tokenizer", None) is not None
    elif prompts is not None:
        run, editable = run_prompts(model, prompts, pos, max_tokens), True
    else:
        raise InvalidOptionError("prompts", None, ["a prompt string", "a list of prompts", "cache= and tokens="])
    if answer is None:
        answer = top_prediction(model, run)
    answers = resolve(model, answer, incorrect, run.n_prompts)
    return ResidualExplorer(model, run, answers, editable=editable, top_k=top_k, lens_top_k=lens_top_k,
                            max_tokens=max_tokens, pos_arg=pos, title=title, sort=sort, saes=saes)


def top_prediction(model: Any, run: Run) -> torch.Tensor:
    """The model's most likely next token at the attributed position, per prompt."""
    with torch.no_grad():
        final = run.cache["resid_post", -1][:, run.pos : run.pos + 1]
        x = model.ln_final(final) if getattr(model, "ln_final", None) is not None else final
        return model.unembed(x)[:, 0].argmax(-1).cpu()


def _token_value(text: str) -> Any:
    m = _ID.match(text)
    return int(m.group(1)) if m else text


def _metric_text(answers: Answers) -> str:
    return "logit − b_U" if answers.incorrect is None else "logit diff − b_U diff"


def _check_option(what: str, value: Any, valid: Sequence[str]) -> str:
    if value not in valid:
        raise t.TraitError(str(InvalidOptionError(what, value, valid)))
    return value
