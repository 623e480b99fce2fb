"""Locating the built front-end bundles (``lenswidget/static/<name>.js``)."""

from __future__ import annotations

import json
import pathlib

STATIC = pathlib.Path(__file__).resolve().parent.parent / "static"


def esm(name: str) -> pathlib.Path | str:
    """The bundle's path (anywidget watches it under ``ANYWIDGET_HMR=1``), or a stub module.

    The stub renders a notice instead of failing at import time when ``npm run build``
    has not been run (e.g. a plain source checkout running pytest).
    """
    path = STATIC / f"{name}.js"
    if path.is_file():
        return path
    notice = json.dumps(f"lenswidget: front end '{name}.js' is not built; run `npm install && npm run build`.")
    return f"export default {{ render({{ el }}) {{ el.textContent = {notice}; }} }};\n"
