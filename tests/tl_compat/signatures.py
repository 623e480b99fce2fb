"""Dump the public signatures of the TransformerLens API surface, from either library.

Run as ``python signatures.py transformer_lens`` (in the TL venv) or ``... lenswidget``;
prints JSON ``{"Area.name": {"params": [[name, kind, default], ...]} | {"kind": ...}}``.
Importable without torch-side imports of the other library (the TL venv runs it).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys

# (area label, module path, attribute or None for the module itself)
AREAS = [
    ("HookedTransformer", "{lib}", "HookedTransformer"),
    ("ActivationCache", "{lib}", "ActivationCache"),
    ("HookPoint", "{lib}.hook_points", "HookPoint"),
    ("HookedRootModule", "{lib}.hook_points", "HookedRootModule"),
    ("FactoredMatrix", "{lib}", "FactoredMatrix"),
    ("utils", "{lib}.utils", None),
    ("patching", "{lib}.patching", None),
    ("tools.analysis", "{lib}.tools.analysis", None),
]


def _default(p: inspect.Parameter):
    if p.default is inspect.Parameter.empty:
        return "<required>"
    d = p.default
    if isinstance(d, (bool, int, float, str, type(None))):
        return d
    if isinstance(d, (tuple, list)) and all(isinstance(x, (bool, int, float, str, type(None))) for x in d):
        return list(d)
    return f"<{type(d).__name__}>"


def _params(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [[n, p.kind.name, _default(p)] for n, p in sig.parameters.items() if n not in ("self", "cls")]


def _public(names):
    return sorted(n for n in names if not n.startswith("_") or n in ("__getitem__", "__len__", "__iter__", "__init__"))


def dump(lib: str) -> dict:
    out: dict = {}
    for area, mod_path, attr in AREAS:
        mod = importlib.import_module(mod_path.format(lib=lib))
        obj = mod if attr is None else getattr(mod, attr)
        if attr is None:
            names = getattr(obj, "__all__", None) or [n for n in dir(obj) if not n.startswith("_")]
            for n in _public(names):
                member = getattr(obj, n, None)
                if inspect.ismodule(member) or member is None:
                    continue
                if getattr(member, "__module__", "") and not str(getattr(member, "__module__", "")).startswith(lib):
                    continue  # re-exported third-party names (torch, typing, ...)
                if inspect.isclass(member):
                    out[f"{area}.{n}"] = {"kind": "class", "params": _params(member)}
                elif callable(member):
                    out[f"{area}.{n}"] = {"kind": "function", "params": _params(member)}
            continue
        for n in _public(dir(obj)):
            if n in dir(object) and n != "__init__" or (n in dir(__import__("torch").nn.Module) and area in ("HookedTransformer", "HookPoint", "HookedRootModule") and n not in ("forward", "to", "cuda", "cpu", "__init__")):
                continue
            raw = inspect.getattr_static(obj, n)
            if isinstance(raw, property):
                out[f"{area}.{n}"] = {"kind": "property"}
            elif isinstance(raw, (staticmethod, classmethod)) or callable(raw):
                out[f"{area}.{n}"] = {"kind": "method", "params": _params(getattr(obj, n))}
            else:
                out[f"{area}.{n}"] = {"kind": "attribute"}
    return out


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    json.dump(dump(sys.argv[1]), sys.stdout, indent=0, sort_keys=True)
