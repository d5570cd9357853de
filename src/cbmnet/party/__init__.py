"""The party side: what a party (or the secretariat) runs on its own machine.

``client`` (HubClient: signs locally, verifies receipts, opens hotline and sealed bodies),
``witness`` (the party's witness and one witnessing round against a hub) and ``audit``
(the remote audit, a pure auditor over the ``HubReader`` protocol). Depends on the ledger,
the acts and the communication helpers, never on ``cbmnet.hub``.
"""
