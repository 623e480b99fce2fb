"""Attention inspector (Python side of ``src/attention/``).

* :mod:`.api` - ``attention(...)`` from a model, a cache or a tensor;
* :mod:`.widget` - :class:`AttentionInspector` (traits, browser input, encoding);
* :mod:`.sources` / :mod:`.store` - recording patterns, float16 under a memory cap;
* :mod:`.thumbs` - max-pooled thumbnails (BOS/sink in a bin of its own);
* :mod:`.fake` - a weightless stand-in model for tests and demos.
"""

from .api import attention
from .store import PatternMemoryError
from .widget import AttentionInspector

__all__ = ["AttentionInspector", "PatternMemoryError", "attention"]
