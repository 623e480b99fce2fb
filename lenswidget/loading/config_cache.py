"""Converted config fields of models in lenswidget's own cache, so a reload skips transformers.

Building the HF config object imports the model's transformers config class, which costs more
than the rest of a reload. For directories lenswidget created (GGUF conversions, e.g. the
default model), the family converter's config fields are stored beside ``config.json`` as
``lenswidget-config-<key>.json``; the key covers ``config.json``'s bytes and the converter
code, so a changed file or a new lenswidget version converts again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

logger = logging.getLogger("lenswidget.loading")

_CODE_DIGEST: str | None = None


def _code_digest() -> str:
    """Digest of the converter code (families package and config module)."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        here = Path(__file__).resolve().parent
        files = sorted((here / "families").glob("*.py")) + [here / "registry.py",
                                                             here.parent / "config.py"]
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
        _CODE_DIGEST = h.hexdigest()[:16]
    return _CODE_DIGEST


def _key(directory: Path) -> str:
    raw = (Path(directory) / "config.json").read_bytes()
    return hashlib.sha256(raw + _code_digest().encode()).hexdigest()[:16]


def _path(directory: Path) -> Path:
    return Path(directory) / f"lenswidget-config-{_key(directory)}.json"


def config_fields(directory: Path, convert: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The converted config fields of ``directory``: cached, else ``convert()`` (then cached)."""
    path = _path(directory)
    try:
        return json.loads(path.read_text())["fields"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    fields = convert()
    try:
        text = json.dumps({"fields": fields})
        if json.loads(text)["fields"] != fields:  # e.g. tuples: not exactly representable
            return fields
    except (TypeError, ValueError):
        return fields
    for old in Path(directory).glob("lenswidget-config-*.json"):
        old.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("lenswidget: could not cache the converted config in %s (%s)", directory, exc)
        tmp.unlink(missing_ok=True)
    return fields
