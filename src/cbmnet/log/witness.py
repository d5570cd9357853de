"""A witness as a service: the pure decision of ``ledger.witness`` plus durable state.

Check-and-persist is atomic: the new state is written only if the held size is still the
one the decision was made against (compare-and-swap), as tlog-witness requires, so two
concurrent requests can never both be cosigned from the same old state.
"""

from __future__ import annotations

from collections.abc import Sequence

from cbmnet.errors import ConflictError, FormatError
from cbmnet.ledger.checkpoint import parse_checkpoint
from cbmnet.ledger.note import ALG_ED25519, new_cosigner, new_verifier, split_note
from cbmnet.ledger.tlogproof import parse_add_checkpoint
from cbmnet.ledger.witness import Latest, check_add_checkpoint, cosignature_lines
from cbmnet.store.sql import Store, WitnessRecord


class Witness:
    def __init__(self, store: Store, signer_key: str, log_vkeys: Sequence[str]) -> None:
        self.store = store
        self._skey = signer_key
        self.cosigner = new_cosigner(signer_key)
        self.logs = {}
        for v in log_vkeys:
            ver = new_verifier(v)
            if ver.alg != ALG_ED25519:
                raise FormatError(f"log key {v}: must be an Ed25519 (type 0x01) key")
            self.logs[ver.name] = ver

    def add_checkpoint(self, request: str, *, timestamp: int | None = None) -> str:
        """Handle one add-checkpoint request body; returns the cosignature line(s)."""
        req = parse_add_checkpoint(request)
        text, _ = split_note(req.checkpoint)
        origin = parse_checkpoint(text).origin
        rec = self.store.witness_latest(origin)
        latest = Latest(rec.size, rec.root_hash) if rec else None
        cp = check_add_checkpoint(req, self.logs, latest)
        new = WitnessRecord(origin, cp.size, cp.root_hash, req.checkpoint)
        if not self.store.witness_replace(rec.size if rec else None, new):
            now = self.store.witness_latest(origin)
            held = now.size if now else 0
            raise ConflictError(
                f"witness: state for {origin} moved to size {held} meanwhile", current_size=held
            )
        cosigner = new_cosigner(self._skey, timestamp) if timestamp is not None else self.cosigner
        return cosignature_lines(text, cosigner)
