"""A party's witness: the pure decision of ``ledger.witness`` plus durable state, and one
witnessing round against a hub over HTTP.

Check-and-persist is atomic: the new state is written only if the held size is still the
one the decision was made against (compare-and-swap), as tlog-witness requires, so two
concurrent requests can never both be cosigned from the same old state. Nothing here
trusts the hub's word: ``witness_hub`` cosigns only what ``Witness`` accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cbmnet.errors import ConflictError, FormatError, NotFoundError, VerificationError
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


# ---- witnessing a hub over HTTP -------------------------------------------------------


@dataclass(frozen=True)
class WitnessRound:
    """What one round cosigned: the hub's checkpoint of ``size`` and ``root_hash``."""

    origin: str
    old_size: int
    """The size this witness held before the round."""
    size: int
    root_hash: bytes
    cosignatures: str
    """The cosignature line(s) sent to the hub."""
    stored: int
    """How many lines the hub accepted."""


class WitnessedHub(Protocol):
    """What a witnessing round asks of the hub (``HubClient`` asks it over HTTP); every
    answer is checked here before anything is cosigned."""

    url: str

    def info(self) -> dict[str, Any]:
        """``/v1/hub``: its log origin among the rest."""

    def checkpoint(self) -> str:
        """The latest signed checkpoint."""

    def witness_request(self, old: int) -> str:
        """The add-checkpoint body from tree size ``old`` (c2sp.org/tlog-witness)."""

    def add_cosignatures(self, size: int, lines: str) -> dict[str, Any]:
        """Hand the cosignature lines for the checkpoint of ``size`` back to the hub."""


def _hub_origin(client: WitnessedHub) -> str:
    origin = client.info().get("origin")
    if not isinstance(origin, str) or not origin:
        raise VerificationError(f"the hub at {client.url} names no log origin in /v1/hub")
    return origin


def _rolled_back(origin: str, hub_size: int, old: int) -> VerificationError:
    return VerificationError(
        f"witness: the hub's latest checkpoint of {origin} has size {hub_size}, smaller "
        f"than size {old} this witness already cosigned: the hub rolled its log back or "
        "shows this witness a split view"
    )


def _add_checkpoint_body(client: WitnessedHub, origin: str, old: int) -> str:
    """GET the add-checkpoint body; the hub's 409 means its tree is smaller than ours.

    The latest checkpoint's size is read first: the client cannot read the 409's
    ``text/x.tlog.size`` body yet (it parses "7\n" as JSON and fails), so a hub behind
    the witness is caught here before it would answer one.
    """
    text, _ = split_note(client.checkpoint())
    size = parse_checkpoint(text).size
    if size < old:
        raise _rolled_back(origin, size, old)
    try:
        return client.witness_request(old)
    except ConflictError as e:
        if e.current_size is None:
            raise
        raise _rolled_back(origin, e.current_size, old) from e


def witness_hub(client: WitnessedHub, witness: Witness, *, timestamp: int | None = None) -> WitnessRound:
    """One witnessing round: fetch the hub's add-checkpoint body, check it, cosign, post.

    ``Witness.add_checkpoint`` verifies the log signature and the consistency proof from the
    size this witness holds and persists the new state atomically before anything is sent.
    A 409 from the witness (its state moved since ``old`` was read) is retried once with the
    size it holds; a 409 that repeats the same size means the hub shows another root for a
    size already cosigned (a split view) and fails loudly, as does a hub whose tree is
    smaller than what the witness cosigned.
    """
    origin = _hub_origin(client)
    if origin not in witness.logs:
        raise NotFoundError(
            f"witness: does not follow the hub's log {origin!r} (give that log's verifier key)"
        )
    rec = witness.store.witness_latest(origin)
    old = rec.size if rec else 0
    retried = False
    while True:
        body = _add_checkpoint_body(client, origin, old)
        try:
            lines = witness.add_checkpoint(body, timestamp=timestamp)
        except ConflictError as e:
            if e.current_size == old:
                raise VerificationError(
                    f"witness: split view of {origin}: the hub presents a different root for "
                    f"size {old} than the one this witness cosigned ({e})"
                ) from e
            if e.current_size is None or retried:
                raise
            old, retried = e.current_size, True
            continue
        break
    cp = parse_checkpoint(split_note(parse_add_checkpoint(body).checkpoint)[0])
    answer = client.add_cosignatures(cp.size, lines)
    return WitnessRound(origin, old, cp.size, cp.root_hash, lines, int(answer.get("stored", 0)))
