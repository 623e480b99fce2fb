"""Analysis tools (``lenswidget.tools.analysis``)."""
