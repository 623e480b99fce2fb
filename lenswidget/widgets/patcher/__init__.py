"""Drag-to-patch widget (Python side of ``src/patcher/``)."""

from .widget import Patcher, patcher

__all__ = ["Patcher", "patcher"]
