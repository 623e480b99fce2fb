"""The small public-domain corpus shipped in ``lenswidget/data/corpus.txt`` (one document per block).

>>> docs = load_corpus()
>>> len(docs) > 500 and all(isinstance(d, str) and d for d in docs)
True

See ``lenswidget/data/build_corpus.py`` for what it contains and its licence (public domain).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

__all__ = ["load_corpus", "CORPUS_PATH"]

CORPUS_PATH = Path(__file__).resolve().parent.parent / "data" / "corpus.txt"


def load_corpus(limit: Optional[int] = None) -> List[str]:
    """The corpus documents (strings), in file order; ``limit`` keeps the first ``limit``."""
    docs = [d.strip() for d in CORPUS_PATH.read_text(encoding="utf-8").split("\n\n") if d.strip()]
    return docs if limit is None else docs[: int(limit)]
