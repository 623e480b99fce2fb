"""Front-end bundles (``lenswidget/static/<name>.js``), shipped once per kernel, not once per widget.

anywidget sends a widget's ``_esm`` (the whole bundle, 35-60 KB) with every instance, and
a notebook saved with widget state stores it once per instance. lenswidget widgets
instead carry a small loader as ``_esm`` and a reference (``_bundle``) to one
:class:`Bundle` model per bundle name and kernel, which holds the code. The loader imports
the code once per page (shared by every widget of that kind) and renders with it; a saved
notebook keeps one copy of each bundle next to the widgets' own (small) state.

With ``ANYWIDGET_HMR=1`` (the live-reload dev loop) widgets use the bundle file directly,
as plain anywidget does, so anywidget can watch it.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Optional

import ipywidgets
import traitlets as t

STATIC = pathlib.Path(__file__).resolve().parent.parent / "static"

# Reads the `_bundle` reference ("IPY_MODEL_<id>"), fetches that model from the widget
# manager, imports its code once per page (keyed by the code) and delegates to it.
LOADER = """\
const cache = (globalThis.__lenswidgetBundles ??= new Map());
async function bundle(model) {
  const ref = String(model.get("_bundle") ?? "").replace(/^IPY_MODEL_/, "");
  const holder = await model.widget_manager.get_model(ref);
  const code = holder.get("code");
  if (!cache.has(code)) {
    const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
    cache.set(code, import(url).finally(() => URL.revokeObjectURL(url)));
  }
  return (await cache.get(code)).default;
}
export default {
  async render(ctx) {
    try {
      return (await bundle(ctx.model)).render(ctx);
    } catch (err) {
      ctx.el.textContent = "lenswidget: could not load the front end (" + err + "); re-run the cell.";
    }
  },
};
"""


class EsmRef(str):
    """A widget class' ``_esm``: the loader source, remembering which bundle it loads."""

    bundle: str

    def __new__(cls, source: str, bundle: str) -> "EsmRef":
        obj = super().__new__(cls, source)
        obj.bundle = bundle
        return obj


class Bundle(ipywidgets.Widget):
    """One bundle's code, shared by every widget of that kind (a model with no view)."""

    name = t.Unicode("").tag(sync=True)
    code = t.Unicode("").tag(sync=True)


_shared: dict[str, Bundle] = {}


def hmr() -> bool:
    return os.environ.get("ANYWIDGET_HMR", "") not in ("", "0")


def source(name: str) -> str:
    """The bundle's code, or a module that says it is not built."""
    path = STATIC / f"{name}.js"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    notice = json.dumps(f"lenswidget: front end '{name}.js' is not built; run `npm install && npm run build`.")
    return f"export default {{ render({{ el }}) {{ el.textContent = {notice}; }} }};\n"


def esm(name: str) -> pathlib.Path | str:
    """A widget class' ``_esm``: the loader (or, under ``ANYWIDGET_HMR``, the bundle file to watch)."""
    path = STATIC / f"{name}.js"
    if hmr() and path.is_file():
        return path
    return EsmRef(LOADER, name)


def shared_bundle(esm_value: object) -> Optional[Bundle]:
    """The kernel's :class:`Bundle` for a class' ``_esm`` (None when it is not a loader)."""
    if not isinstance(esm_value, EsmRef):
        return None
    bundle = _shared.get(esm_value.bundle)
    if bundle is None or bundle.comm is None:  # first use, or closed (Widget.close_all)
        bundle = _shared[esm_value.bundle] = Bundle(name=esm_value.bundle, code=source(esm_value.bundle))
    return bundle
