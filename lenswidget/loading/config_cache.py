"""Converted config fields of models in lenswidget's own cache, so a reload skips transformers.

Building the HF config object imports the model's transformers config class, which costs more
than the rest of a reload. For directories lenswidget created (GGUF conversions, e.g. the
default model), the family converter's config fields are stored beside ``config.json`` as
``lenswidget-config-<key>.json``, with what the model needs to know about the directory's
tokenizer (whether it prepends BOS, its padding side), so that the tokenizer itself can be loaded
on first use. The key covers ``config.json``'s bytes and the converter code, so a changed file
or a new lenswidget version converts again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

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


def load(directory: Path) -> dict[str, Any] | None:
    """The cached entry of ``directory`` (``{"fields": ..., "tokenizer": ...}``), or None."""
    try:
        entry = json.loads(_path(directory).read_text())
        return entry if isinstance(entry.get("fields"), dict) else None
    except (OSError, ValueError, AttributeError):
        return None


def save(directory: Path, entry: dict[str, Any]) -> None:
    """Store ``entry`` for ``directory`` (skipped if it does not survive JSON exactly)."""
    try:
        text = json.dumps(entry)
        if json.loads(text) != entry:  # e.g. tuples: not exactly representable
            return
    except (TypeError, ValueError):
        return
    path = _path(directory)
    for old in Path(directory).glob("lenswidget-config-*.json"):
        old.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("lenswidget: could not cache the converted config in %s (%s)", directory, exc)
        tmp.unlink(missing_ok=True)
