"""The residual explorer's SAE features: drill from an SAE's hooked activation into its top
features by direct attribution (plus the error term and the decoder bias), and from a
feature into its detail: its activation on every token of the prompt and the tokens its
decoder direction promotes and suppresses.

``residual(model, prompt, answer, saes=[sae, ...])`` takes lenswidget or SAELens SAEs; with
``saes=None`` a ``HookedSAETransformer``'s attached SAEs (``model.acts_to_saes``) are used.

State: ``sae_path`` is ``[]``, ``[hook]`` (that SAE's feature bars) or ``[hook, "F<i>"]``
(and feature ``i``'s detail). Python: :meth:`open_sae`, :meth:`open_feature`,
:meth:`close_sae`, ``feature_data``. Browser messages: ``open_sae {hook}``,
``open_feature {hook, feature}``, ``sae_back {depth}``.

The model must be a ``HookedSAETransformer``; the SAE numbers come from one extra forward
pass with the SAEs attached with their error term (the model's own run), so they explain the
same run as the component bars unless SAEs are attached *without* the error term.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import torch
import traitlets as t

from ...errors import InvalidOptionError, OutOfRangeError, UnknownNameError
from .. import codec
from ..messages import MessageRouter
from ..saes import attached, check_all, label, panels_esm, top_effects
from ..validation import Int, Str
from .answers import Answers
from .feature_attr import RunFeatures, SAEAttribution
from .source import Run
from .views import N_TOP_TOKENS, reduce

_FEATURE = re.compile(r"^F(\d+)$")


class SAEFeatures(t.HasTraits):
    """Mixin of :class:`~.widget.ResidualExplorer`: the SAE traits, API and messages."""

    sae_esm = t.Unicode("").tag(sync=True)  # the SAE panels' module (a data: URL), only when there are SAEs
    saes = t.List(t.Dict()).tag(sync=True)  # [{hook, label, d_sae, value}]
    sae_path = t.List(t.Unicode()).tag(sync=True)
    sae_bars = t.Dict().tag(sync=True)
    sae_check = t.Dict().tag(sync=True)
    sae_detail = t.Dict().tag(sync=True)

    def _init_features(self, model: Any, saes: Any) -> None:
        chosen = attached(model) if saes is None else saes
        self._sae_objs = check_all(model, chosen) if chosen else []
        self._sae_esm = panels_esm(self._sae_objs)
        self._feat: Optional[RunFeatures] = None
        self._effects: dict[tuple, tuple] = {}

    # -- Python API ------------------------------------------------------------------------------
    @property
    def sae_list(self) -> list:
        """The explorer's SAEs (lenswidget SAE objects), in the order shown."""
        return list(self._sae_objs)

    def open_sae(self, sae: Any) -> None:
        """Show the feature bars of ``sae`` (its input hook name, its index, or the SAE object)."""
        self._set_sae_path([self._hook_of(sae)])

    def open_feature(self, feature: int, sae: Any = None) -> None:
        """Open feature ``feature`` of ``sae`` (default: the open SAE, or the only one)."""
        if sae is None:
            if self.sae_path:
                sae = self.sae_path[0]
            elif len(self._sae_objs) == 1:
                sae = 0
            else:
                raise InvalidOptionError("sae for open_feature", None, [s.cfg.hook_name for s in self._sae_objs])
        hook = self._hook_of(sae)
        self._set_sae_path([hook, f"F{self._feature_index(hook, feature)}"])

    def close_sae(self, depth: int = 0) -> None:
        """Back to depth ``depth`` of the SAE path (0: no SAE open; 1: the SAE's features)."""
        if type(depth) is not int or not 0 <= depth <= len(self.sae_path):
            raise OutOfRangeError("SAE breadcrumb depth", depth, 0, len(self.sae_path))
        self._set_sae_path(list(self.sae_path)[:depth])

    @property
    def feature_data(self) -> dict[str, Any]:
        """What the SAE panel shows, as tensors: ``saes`` (hook -> total), ``bars`` (labels, kinds,
        ``values``, ``per_prompt`` [n_bars, batch], ``target``) and ``detail`` (the open feature)."""
        return dict(self._raw.get("features") or {})

    # -- payload (called from the explorer's _compute) ------------------------------------------------
    def _features_payload(self, run: Run, answers: Answers, prompt: Optional[int],
                          path: Optional[list] = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(payload, raw)``: the SAE traits for ``path`` (default: the current one) and their tensors."""
        path = list(self.sae_path if path is None else path)
        feat = self._run_features(run, answers)
        shown = 0 if prompt is None else prompt
        saes = []
        for sae in self._sae_objs:
            a = feat.of(sae)
            saes.append({"hook": sae.cfg.hook_name, "label": label(sae), "d_sae": int(sae.cfg.d_sae),
                         "value": float(reduce(a.total, prompt))})
        raw: dict[str, Any] = {"saes": {s["hook"]: s["value"] for s in saes}, "bars": None, "detail": None}
        payload: dict[str, Any] = {"sae_esm": self._sae_esm, "saes": saes, "sae_path": path, "sae_bars": {},
                                   "sae_check": {}, "sae_detail": {}}
        if not path:
            return payload, raw
        sae = self._sae_objs[self._index_of(path[0])]
        a = feat.of(sae)
        pinned = self._feature_index(path[0], path[1]) if len(path) > 1 else None
        bars = feature_bars(a, prompt, int(getattr(self, "_top_k", 10)), pinned)
        raw["bars"] = bars
        payload["sae_bars"] = {"hook": path[0], "label": label(sae), "labels": bars["labels"], "kinds": bars["kinds"],
                               "prompt": prompt, "values": codec.encode(bars["values"], "float32")}
        payload["sae_check"] = {"sum": float(bars["values"].sum()), "target": float(reduce(a.total, prompt)),
                                "label": f"DLA of {label(sae)}"}
        if pinned is not None:
            detail = self._detail(sae, a, pinned, run, prompt, shown)
            raw["detail"] = detail
            tensors = ("acts", "promoted_values", "suppressed_values")
            payload["sae_detail"] = {k: codec.encode(v, "float32") if k in tensors else v
                                     for k, v in detail.items()}
        return payload, raw

    def _detail(self, sae: Any, a: SAEAttribution, f: int, run: Run, prompt: Optional[int], shown: int) -> dict:
        key = (sae.cfg.hook_name, f)
        if key not in self._effects:
            self._effects[key] = top_effects(self._model, sae, f, N_TOP_TOKENS)
        up, up_v, down, down_v = self._effects[key]
        acts = a.acts[shown, :, f]
        first = 1 if _has_bos(self._model, run, shown) else 0  # the attention sink: no SAE is trained there
        return {"hook": sae.cfg.hook_name, "label": f"F{f}", "feature": f,
                "value": float(reduce(a.features[f], prompt)),
                "activation": float(acts[run.pos]), "pos": run.pos, "prompt": shown,
                "scale_max": float(acts[first:].max()) if acts.numel() > first else 0.0,
                "tokens": list(run.str_tokens[shown]), "acts": acts.clone(), "promoted": up, "promoted_values": up_v,
                "suppressed": down, "suppressed_values": down_v}

    def _run_features(self, run: Run, answers: Answers) -> RunFeatures:
        feat = self._feat
        if feat is not None and feat.run is run:
            if feat.answers.key() != answers.key():
                feat = feat.with_answers(answers)
        else:
            feat = RunFeatures(self._model, self._sae_objs, run, answers)
        self._feat = feat
        return feat

    # -- messages -----------------------------------------------------------------------------------
    def _add_feature_messages(self, router: MessageRouter) -> None:
        router.add("open_sae", lambda m: self.open_sae(m["hook"]), lambda: {"hook": Str(500)})
        router.add("open_feature", lambda m: self.open_feature(m["feature"], m["hook"]),
                   lambda: {"hook": Str(500), "feature": Int(0, self._max_d_sae() - 1)})
        router.add("sae_back", lambda m: self.close_sae(m["depth"]), lambda: {"depth": Int(0, len(self.sae_path))})

    # -- helpers -------------------------------------------------------------------------------------
    def _set_sae_path(self, path: list[str]) -> None:
        """Compute the new SAE view first; change the traits only when that worked."""
        prompt = self.prompt_index
        payload, raw = self._features_payload(self._run, self._answers, prompt, path)
        with self.hold_sync():
            for key, value in payload.items():
                setattr(self, key, value)
            self._raw["features"] = raw

    def _max_d_sae(self) -> int:
        return max([int(s.cfg.d_sae) for s in self._sae_objs] or [1])

    def _hooks(self) -> list[str]:
        return [str(s.cfg.hook_name) for s in self._sae_objs]

    def _index_of(self, hook: str) -> int:
        hooks = self._hooks()
        if hook not in hooks:
            if not hooks:
                raise InvalidOptionError("SAE", hook, ["residual(model, prompt, saes=[sae])"])
            raise UnknownNameError("SAE hook", hook, hooks, "the explorer's SAEs, by input hook name")
        return hooks.index(hook)

    def _hook_of(self, sae: Any) -> str:
        if isinstance(sae, str):
            return self._hooks()[self._index_of(sae)]
        if isinstance(sae, int) and not isinstance(sae, bool):
            if not 0 <= sae < len(self._sae_objs):
                raise OutOfRangeError("SAE index", sae, 0, len(self._sae_objs) - 1)
            return self._hooks()[sae]
        for s in self._sae_objs:
            if s is sae or getattr(sae, "_lenswidget_sae", None) is s:
                return str(s.cfg.hook_name)
        raise InvalidOptionError("SAE", type(sae).__name__, self._hooks() or ["none: pass saes=[...] to residual()"])

    def _feature_index(self, hook: str, feature: Any) -> int:
        d_sae = int(self._sae_objs[self._index_of(hook)].cfg.d_sae)
        if isinstance(feature, str):
            m = _FEATURE.match(feature)
            if not m:
                raise UnknownNameError("feature", feature, [f"F0 .. F{d_sae - 1}"])
            feature = int(m.group(1))
        if not isinstance(feature, int) or isinstance(feature, bool) or not 0 <= feature < d_sae:
            raise OutOfRangeError("feature", feature, 0, d_sae - 1, f"the SAE at {hook!r} has d_sae={d_sae}")
        return feature


def _has_bos(model: Any, run: Run, prompt: int) -> bool:
    bos = getattr(getattr(model, "tokenizer", None), "bos_token_id", None)
    return bos is not None and int(run.tokens[prompt, 0]) == int(bos)


def feature_bars(a: SAEAttribution, prompt: Optional[int], k: int, pinned: Optional[int]) -> dict[str, Any]:
    """The top-``k`` features by |attribution| (plus ``pinned``), largest first, then the rest of
    the features, and each other term (decoder bias, error): they add up to ``a.total``."""
    shown_values = reduce(a.features, prompt)  # [d_sae]
    k = max(1, min(int(k), shown_values.numel()))
    order = shown_values.abs().topk(k).indices.tolist()
    if pinned is not None and pinned not in order:
        order.append(pinned)
    order.sort(key=lambda i: -abs(float(shown_values[i])))
    per_prompt = [a.features[i] for i in order]
    labels = [f"F{i}" for i in order]
    kinds = ["feature"] * len(order)
    rest = a.features.sum(0) - torch.stack(per_prompt).sum(0)
    per_prompt.append(rest)
    labels.append("other features")
    kinds.append("remainder")
    for name, value in a.terms.items():
        per_prompt.append(value)
        labels.append(name)
        kinds.append("error" if "error" in name else "bias")
    stacked = torch.stack(per_prompt)  # [n_bars, batch]
    return {"labels": labels, "kinds": kinds, "per_prompt": stacked, "values": reduce(stacked, prompt),
            "features": order}
