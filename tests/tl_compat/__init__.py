"""Differential suite against TransformerLens 3.9 (a package, so its conftest does not shadow tests/conftest.py)."""
