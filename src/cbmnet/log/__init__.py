"""The log and witness services: the edge between the pure ledger and the store."""
