"""Higher-level analyses built on the hooked model and its cache."""
