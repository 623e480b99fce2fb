"""Residual-stream explorer widget (Python side of ``src/residual/``)."""

from .widget import ResidualExplorer, residual

__all__ = ["ResidualExplorer", "residual"]
