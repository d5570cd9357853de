"""Agreements as code: the model, the loader and the bundled real agreements."""
