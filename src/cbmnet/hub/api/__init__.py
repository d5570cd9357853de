"""The hub's JSON API and WebSocket streams: one ``APIRouter`` module per concern.

Routes only: the rules live in the service (``cbmnet.hub.service``); what routes share
(the hub, the caller, the limits) comes from ``cbmnet.hub.deps``.
"""
