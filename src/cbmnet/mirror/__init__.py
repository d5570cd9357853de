"""A national mirror of the hub's log (issue 16): ``follow.py`` keeps a verified copy,
``app.py`` serves it read-only (C2SP tlog-tiles and the log's read API)."""
