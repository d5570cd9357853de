"""The dashboard: server-rendered pages over the same Hub reads the JSON API uses.

``dashboard`` (overview, deadlines, archive, log, verify, quotas, sign-in), ``hotline`` (the
console and its WebSocket) and ``maps`` each hold a router; ``render`` what the pages share
(templates, headers, static files), ``charts`` the sparklines, ``witness`` the log page's
witness verdict. The caller comes from ``cbmnet.hub.deps`` (``who``, ``evaluating``).
"""
