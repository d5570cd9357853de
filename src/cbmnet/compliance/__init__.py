"""The compliance engine: events in, obligations and findings out. Pure."""
