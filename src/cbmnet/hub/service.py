"""The hub's service layer: the log, the state folded from it, and the hub's own duties.

No HTTP here (``hub.app`` maps it). One ``Hub`` per process; several processes may share
one PostgreSQL database. Each holds the state folded from the log; an append takes the
log's writer lock in the database, catches the state up with whatever other processes
appended, decides (``HubState.check``) and logs, all in one transaction, so two
processes can never admit acts that contradict each other (a message signed by a key
another process has just revoked, say).

Lock order: the store's lock (held through a write transaction) may be followed by the
state lock, never the reverse: readers copy what they need out of the state first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cbmnet import collector
from cbmnet.acts import snapshot
from cbmnet.acts.model import HUB, PT_HUB, SECRETARIAT, Act, read_act
from cbmnet.acts.state import Entry, HubState, act_json
from cbmnet.agreements.loader import parse_agreement, resolve_zones
from cbmnet.agreements.model import Agreement
from cbmnet.compliance.report import Report
from cbmnet.compliance.timeutil import format_time
from cbmnet.errors import (
    CbmnetError,
    ConflictError,
    ForbiddenError,
    FormatError,
    NotFoundError,
    StoreError,
    VerificationError,
)
from cbmnet.hub.views import ReadModel
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key, parse_verifier_key
from cbmnet.ledger.tlogproof import ProofBundle
from cbmnet.log.sequencer import Sequencer
from cbmnet.log.service import Receipt, TransparencyLog, now_ms
from cbmnet.store import Store, open_store

log = logging.getLogger("cbmnet.hub")

META_AGREEMENTS = "hub_agreements"
META_SECRETARIAT = "hub_secretariat_vkey"
META_HUB_VKEY = "hub_vkey"
CACHE_BYTES = 64 << 20
"""Per cache (recent envelopes, serialised pushes): bounded by bytes, not entries."""
META_TOKEN_SECRET = "hub_token_secret"  # noqa: S105 - the meta key, not the secret


@dataclass(frozen=True)
class HubKeys:
    """The hub's two private keys: the log's (checkpoints) and the hub's own (its acts)."""

    log_key: str
    hub_key: str

    @classmethod
    def load(cls, folder: Path) -> HubKeys:
        try:
            return cls(
                (folder / "log.key").read_text().strip(), (folder / "hub.key").read_text().strip()
            )
        except OSError as e:
            raise NotFoundError(
                f"hub keys: {e.strerror}: {e.filename} (run 'cbmnet hub init')"
            ) from None


def init_hub(
    url: str,
    keys_dir: Path,
    *,
    origin: str,
    secretariat_vkey: str,
    agreements: Sequence[Agreement],
) -> HubKeys:
    """Create a hub: keys (0600) in ``keys_dir``, the log and the hub's settings in the store."""
    sec = parse_verifier_key(secretariat_vkey)
    if sec.alg != 0x01:
        raise FormatError("secretariat key: must be an Ed25519 (type 0x01) verifier key")
    if not agreements:
        raise FormatError("a hub serves at least one agreement")
    keys_dir.mkdir(parents=True, exist_ok=True)
    paths = {"log": keys_dir / "log.key", "hub": keys_dir / "hub.key"}
    made: dict[str, str] = {}
    for what, path in paths.items():
        if path.exists():
            made[what] = path.read_text().strip()
            continue
        skey, _ = generate_key(origin if what == "log" else origin + "/hub")
        fd = path.open("x")
        path.chmod(0o600)
        with fd:
            fd.write(skey + "\n")
        made[what] = skey
    keys = HubKeys(made["log"], made["hub"])
    # The public halves, for parties to pin (witnesses, audits, offline receipts).
    (keys_dir / "log.vkey").write_text(parse_signer_key(keys.log_key).verifier_key + "\n")
    (keys_dir / "hub.vkey").write_text(parse_signer_key(keys.hub_key).verifier_key + "\n")
    pins = {
        "origin": origin,
        "log_vkey": parse_signer_key(keys.log_key).verifier_key,
        "hub_vkey": parse_signer_key(keys.hub_key).verifier_key,
        "secretariat_vkey": sec.text,
    }
    # What the secretariat hands each party out of band: clients pin it (CBMNET_PINS).
    (keys_dir / "hub.json").write_text(json.dumps(pins, indent=1) + "\n")
    store = open_store(url, create=True)
    try:
        TransparencyLog.create(store, keys.log_key)
        docs = [a.model_dump(mode="json") for a in agreements]
        with store.transaction():
            have = store.get_meta(META_SECRETARIAT)
            if have is not None and have != sec.text:
                raise ConflictError(f"store {store.url} already serves another secretariat")
            store.set_meta(META_SECRETARIAT, sec.text)
            store.set_meta(META_AGREEMENTS, json.dumps(docs, sort_keys=True))
            store.set_meta(META_HUB_VKEY, parse_signer_key(keys.hub_key).verifier_key)
            if store.get_meta(META_TOKEN_SECRET) is None:
                store.set_meta(META_TOKEN_SECRET, secrets.token_hex(32))
    finally:
        store.close()
    return keys


def describe_batch(data: bytes, fmt: str, what: str) -> dict[str, Any]:
    """Validate every row of a batch file (strictly: the first bad row is named and nothing
    is kept) and say its shape: rows, and the first and last detection time."""
    from cbmnet.verification.observations import observations_in

    rows, lo, hi = 0, None, None
    with observations_in(data, fmt, what) as source:
        for b in source.batches():
            rows += len(b)
            if len(b):
                first, last = int(b.time.min()), int(b.time.max())
                lo = first if lo is None else min(lo, first)
                hi = last if hi is None else max(hi, last)
    return {
        "rows": rows,
        "start": format_time(lo) if lo is not None else None,
        "end": format_time(hi) if hi is not None else None,
    }


class WriteBudget(Protocol):
    """A per-author write budget (``hub.app``): refuse or charge one act, or pay it back."""

    def spent(self, who: str) -> None: ...
    def take(self, who: str) -> None: ...
    def give_back(self, who: str) -> None: ...


@dataclass
class HubSettings:
    sweep_s: float = 2.0
    """How often the hub looks for missed deadlines (hotline acknowledgements, obligations)."""
    checkpoint_s: float = 1.0
    """How often a new checkpoint is signed when the log grew."""
    token_ttl_s: int = 900
    writes_per_s: float = 500.0
    """Per client address (before anything is verified); a burst of twice this is allowed."""
    party_writes_per_s: float = 100.0
    """Per party, once its signature is verified: a flood spends its author's own budget."""
    evaluations_per_s: float = 5.0
    """Compliance views per party per second (each may run the engine over an agreement)."""
    smtp_host: str | None = None
    """The SMTP relay alerts are mailed through (none: e-mail alerts wait, logged as such)."""
    smtp_port: int = 25
    smtp_from: str = "cbmnet@localhost"
    public_url: str = ""
    """The dashboard's address as parties reach it, for the links in alerts."""
    alerts_allow_private: bool = False
    """Webhooks to http:// and private addresses (a closed network, a test)."""


class Hub:
    def __init__(
        self,
        url: str,
        keys: HubKeys,
        settings: HubSettings | None = None,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.url = url
        self.settings = settings or HubSettings()
        self.clock = clock
        self._stores: list[Store] = []
        self.wstore = self._open()
        self.rstore = self._open()
        self.log = TransparencyLog(self.wstore, signer_key=keys.log_key, clock=clock)
        self.rlog = TransparencyLog(self.rstore, clock=clock)
        meta = {k: self.rstore.get_meta(k) for k in (META_AGREEMENTS, META_SECRETARIAT, META_HUB_VKEY)}
        secret = self.rstore.get_meta(META_TOKEN_SECRET)
        if None in meta.values() or secret is None:
            raise NotFoundError(f"store {url} holds no hub: run 'cbmnet hub init'")
        self.token_secret = bytes.fromhex(secret)
        self.agreements: dict[str, Agreement] = {}
        for doc in json.loads(str(meta[META_AGREEMENTS])):
            a = parse_agreement(json.dumps(doc), f"hub agreement {doc.get('id')}")
            self.agreements[a.id] = a
        self.zones = {aid: resolve_zones(a) for aid, a in self.agreements.items()}
        self.secretariat_vkey = str(meta[META_SECRETARIAT])
        self.hub_vkey = parse_signer_key(keys.hub_key).verifier_key
        if self.hub_vkey != meta[META_HUB_VKEY]:
            raise FormatError("the hub key given is not the key this hub was created with")
        self._hub_key = parse_signer_key(keys.hub_key)
        self._secretariat_pub = parse_verifier_key(self.secretariat_vkey).public_key
        self._state_lock = threading.Lock()
        self.state = self._new_state()
        self._cp_lock = threading.Lock()
        self.views = ReadModel(self, self._state_lock, self.agreements, self.zones, clock)
        """What routes and pages read: the committed log, cut to each caller, cached there."""
        self._listeners: dict[str, set[Callable[[], None]]] = {}
        """Party -> wake-up callbacks of its open streams (woken only for what it may read)."""
        self._listeners_lock = threading.Lock()
        self._recent: OrderedDict[int, bytes] = OrderedDict()
        self._recent_bytes = 0
        self.push_cache: OrderedDict[int, str] = OrderedDict()
        """Serialised items by index: one message fanned out to 100 members is encoded once."""
        self._push_bytes = 0
        self.committed = 0
        """Entries below this index are durable: the only ones any reader is shown."""
        self._deliveries: queue.Queue[tuple[int, str, int] | None] = queue.Queue()
        self.dstore = self._open()
        self.dstore.relax_durability()  # "delivered" is the hub's word, not evidence
        self._delivery_thread = threading.Thread(
            target=self._record_deliveries, name="cbmnet-deliveries", daemon=True
        )
        self._delivery_thread.start()
        from cbmnet.hub.alerts import AlertDesk

        self.alerts = AlertDesk(self, self._open())
        """Alert subscriptions, derivation and delivery (``run_alerts`` drives it)."""
        self._restore()
        self.sync()
        self.sequencer = Sequencer(
            self.log, admit=self._admit, on_commit=self._on_commit, on_failure=self._forget
        )
        # The state folded at start-up lives as long as the process: keep the cyclic
        # collector from rescanning it on every full collection (it stalls pushes).
        collector.keep()

    def _open(self) -> Store:
        s = open_store(self.url)
        self._stores.append(s)
        return s

    def _new_state(self) -> HubState:
        return HubState(self.agreements, self._secretariat_pub, self._hub_key.public_key)

    # ---- the state's snapshot: a start without refolding the whole log (ADR 0009) -------

    SNAPSHOT_EVERY = 50_000
    """``run_duties`` snapshots the state once the log grew this much since the last one."""

    def _snapshot_key(self) -> bytes:
        return snapshot.snapshot_key(self._hub_key.private_key.private_bytes_raw())

    def _restore(self) -> None:
        """Start from the stored snapshot if it is this hub's and names the log's own root;
        else (none, or refused: the warning says why) from nothing, by the full fold."""
        self._snapshot_size = 0
        try:
            got = self.rstore.latest_snapshot()
            if got is None:
                return
            size, blob = got
            with collector.paused():  # millions of objects: no collection in between
                state, root = snapshot.load(
                    blob,
                    self._snapshot_key(),
                    agreements=self.agreements,
                    secretariat_key=self._secretariat_pub,
                    hub_key=self._hub_key.public_key,
                )
            if state.size != size:
                raise FormatError(f"stored as of size {size}, holds a state of size {state.size}")
            have = self.rstore.log_state()[0]
            if state.size > have:
                raise VerificationError(f"of size {state.size}, past the log's {have} entries")
            if root != self.rlog.root_at(state.size):
                raise VerificationError(f"names a root at size {state.size} that is not the log's")
        except CbmnetError as e:
            log.warning("hub-state snapshot not used (%s): folding the whole log", e)
            return
        with self._state_lock:
            self.state = state
            # Durable (in the log, under its root); nobody listens yet, so none to wake.
            self.committed = state.size
        self._snapshot_size = state.size
        log.info("hub state restored from its snapshot at %d entries", state.size)

    def save_snapshot(self, grown: int = 1) -> bool:
        """Store a snapshot of the state as of ``committed`` if the log grew by ``grown``
        since the last one; True if one was written. Never of admitted acts not yet
        committed: a state ahead of ``committed`` waits for the next call.

        The dump holds the state lock, so it stalls admission and reads: about 3 s at a
        million entries (2.8 s measured, 118 MB, then about 1 s to write it outside the
        lock; ADR 0009). Hence once per ``SNAPSHOT_EVERY`` entries in ``run_duties``,
        which bounds what a start folds after the snapshot (about 3.5 s at most).
        """
        with self._state_lock:
            size = self.committed
            if self.state.size != size or size - self._snapshot_size < grown:
                return False
        root = self.rlog.root_at(size)  # outside the state lock: store before state, never after
        with self._state_lock:
            if self.state.size != size:
                return False
            with collector.paused():
                blob = snapshot.dump(self.state, root, self._snapshot_key())
        self.wstore.put_snapshot(size, blob)
        self._snapshot_size = size
        return True

    def close(self) -> None:
        self.sequencer.close()
        try:
            self.save_snapshot()
        except CbmnetError as e:  # the next start folds a little more: no reason not to close
            log.warning("hub-state snapshot not written at close: %s", e)
        self._deliveries.put(None)
        self._delivery_thread.join(timeout=10)
        for s in self._stores:
            s.close()

    # ---- the state, kept up with the log ------------------------------------------------

    def _fold(self, store: Store, size: int) -> None:
        """Fold entries up to ``size`` (read first, then applied under the state lock)."""
        have = self.state.size
        if size <= have:
            return
        rows = []
        for row in store.iter_entries(after=have - 1):
            if row.idx >= size:
                break
            rows.append(row)
        with self._state_lock:
            for row in rows:
                if row.idx == self.state.size:
                    env = dsse.parse(row.envelope)
                    self.state.apply_logged(row.idx, row.integrated_ms, env.payload_type, env.payload)
                    self._remember(row.idx, row.envelope)

    def sync(self) -> int:
        """Catch the state up with the log (other processes' appends); returns its size."""
        size = self.rstore.log_state()[0]  # committed, by any process
        self._fold(self.rstore, size)
        self._advance(size)
        return size

    def _on_commit(self) -> None:
        """After a durable commit (sequencer thread, before it admits anything else)."""
        with self._state_lock:
            size = self.state.size
        self._advance(size)

    def _advance(self, size: int) -> None:
        """Entries below ``size`` are durable: show them, and wake only those who may read them."""
        with self._state_lock:
            old = self.committed
            if size <= old:
                return
            self.committed = size
            readers = {SECRETARIAT}
            for i in range(old, min(size, self.state.size)):
                readers |= self.state.audience(self.state.entries[i])
        self.wake(readers)

    def _admit(self, size: int, ms: int, envelopes: Sequence[dsse.Envelope]) -> list[CbmnetError | None]:
        self._fold(self.wstore, size)  # inside the write transaction: exact
        out: list[CbmnetError | None] = []
        with self._state_lock:
            if self.state.size != size:
                raise StoreError(f"hub state at {self.state.size}, log at {size}")
            for env in envelopes:
                try:
                    act = read_act(env.payload_type, env.payload)
                    self.state.check(act, env.verified_keys, ms)
                except CbmnetError as e:
                    out.append(e)
                    continue
                self._remember(self.state.size, env.logged_form())
                self.state.apply(act, self.state.size, ms, env.statement_digest())
                out.append(None)
        return out

    def _forget(self, err: BaseException) -> None:
        """A commit failed after admit folded its acts: rebuild the state from the log.

        Nothing of the failed acts was ever shown (readers stop at ``committed``), and
        every cache that could hold them is dropped.
        """
        log.warning("commit failed (%s); rebuilding the hub state from the log", err)
        with self._state_lock:
            self.state = self._new_state()
            self._recent.clear()
            self._recent_bytes = 0
            self.push_cache.clear()
            self.views.clear()
        size = self.wstore.log_state()[0]
        self._fold(self.wstore, size)
        with self._state_lock:
            self.committed = size

    # ---- listeners (pushes) -------------------------------------------------------------

    def add_listener(self, party: str, fn: Callable[[], None]) -> None:
        with self._listeners_lock:
            self._listeners.setdefault(party, set()).add(fn)

    def remove_listener(self, party: str, fn: Callable[[], None]) -> None:
        with self._listeners_lock:
            fns = self._listeners.get(party)
            if fns is not None:
                fns.discard(fn)
                if not fns:
                    del self._listeners[party]

    @property
    def listener_count(self) -> int:
        with self._listeners_lock:
            return sum(len(f) for f in self._listeners.values())

    def _remember(self, index: int, envelope: bytes) -> None:
        """Keep recent envelopes in memory: a push to 100 members reads the store once."""
        self._recent[index] = envelope
        self._recent_bytes += len(envelope)
        while self._recent_bytes > CACHE_BYTES and self._recent:
            self._recent_bytes -= len(self._recent.popitem(last=False)[1])

    def pushed_text(self, index: int) -> str | None:
        with self._state_lock:
            return self.push_cache.get(index)

    def keep_pushed(self, index: int, text: str) -> None:
        with self._state_lock:
            if index >= self.committed or index in self.push_cache:
                return
            self.push_cache[index] = text
            self._push_bytes += len(text)
            while self._push_bytes > CACHE_BYTES and self.push_cache:
                self._push_bytes -= len(self.push_cache.popitem(last=False)[1])

    def cached_envelope(self, index: int) -> bytes | None:
        with self._state_lock:
            return self._recent.get(index)

    def wake(self, parties: set[str] | None = None) -> None:
        """Wake the streams of ``parties`` (None: every stream)."""
        with self._listeners_lock:
            if parties is None:
                fns = [f for fs in self._listeners.values() for f in fs]
            else:
                fns = [f for p in parties for f in self._listeners.get(p, ())]
        for fn in fns:
            try:
                fn()
            except Exception:  # a closed event loop must not stop the writer thread
                log.exception("listener failed")

    # ---- submitting -----------------------------------------------------------------------

    def submit(self, envelope: bytes | str, budget: WriteBudget | None = None) -> Receipt:
        """Verify an act under its author's active keys, admit and log it durably.

        A statement logged already is answered with its original receipt first, before
        the budget or the signature is looked at (``logged_receipt``): anyone holding a
        party's logged envelopes (the log, its receipts) could otherwise replay them to
        spend that party's budget. Then an author over ``budget`` is refused before its
        signature is checked; the signature is checked against this process's view of
        the registry, which may lag other processes by a moment (a miss is retried once
        after catching up); only then does the proven author pay, and it is paid back if
        the log found the statement already there. The decision that counts is taken
        again inside the write transaction (``_admit``); an act refused there stays paid
        for: it was the author's own signed attempt, not one found in the log.
        """
        env = dsse.parse(envelope)
        act = read_act(env.payload_type, env.payload)
        known = self.logged_receipt(env)
        if known is not None:
            return known
        if budget is not None:
            budget.spent(act.author)
        try:
            verified = self._verify_author(envelope, act)
        except CbmnetError:
            self.sync()
            verified = self._verify_author(envelope, act)
        if budget is not None:
            budget.take(act.author)
        receipt = self.sequencer.submit([verified]).result()[0]
        if receipt.duplicate and budget is not None:
            budget.give_back(act.author)
        return receipt

    def logged_receipt(self, env: dsse.Envelope) -> Receipt | None:
        """The receipt of ``env``'s statement if the log holds it with one of ``env``'s
        signatures, byte for byte; else None (then the signature must be checked).

        A logged signature verified over this very statement (same PAE digest), and
        Ed25519 verification is a function of key, message and signature only: an
        identical signature is as good as one checked again, and costs a lookup instead.
        Without one (a statement guessed, not signed), nothing is said about the log.
        """
        digest = env.statement_digest()
        index = self.rstore.find_statements([digest]).get(digest)
        if index is None:
            return None
        row = self.rstore.get_entry(index)
        if row is None:
            return None
        logged = {s.sig for s in dsse.parse(row.envelope).signatures}
        if not any(s.sig in logged for s in env.signatures):
            return None
        return Receipt(index, row.integrated_ms, duplicate=True)

    def _verify_author(self, envelope: bytes | str, act: Act) -> dsse.Envelope:
        author = act.author
        with self._state_lock:
            keys = self.state.signers_for(act)  # a recovery or quorum rotation: other keys
            party = self.state.parties.get(author)
            old = [k.public for k in party.keys if k.until is not None] if party else []
        if not keys and not old:
            raise ForbiddenError(f"{author!r} is not a registered party of this hub")
        try:
            if keys:
                return dsse.verify(envelope, keys)
        except VerificationError:
            pass
        try:
            dsse.verify(envelope, old)
        except VerificationError:
            raise VerificationError(
                f"the envelope carries no valid signature by an active key of {author!r}"
            ) from None
        raise ForbiddenError(f"signed by a revoked or retired key of {author!r}")

    def sign_hub_act(self, doc: dict[str, Any]) -> bytes:
        return dsse.sign(PT_HUB, act_json(doc), [self._hub_key.private_key])

    def receipt_bundle(self, index: int) -> ProofBundle:
        """A tlog-proof of ``index``, signing a new checkpoint if none covers it yet."""
        with self._cp_lock:
            if self.rstore.checkpoint_covering(index) is None:
                self.log.checkpoint()
        return self.rlog.proof_bundle(index)

    # ---- reading ------------------------------------------------------------------------

    def envelope(self, index: int) -> bytes:
        row = self.rstore.get_entry(index)
        if row is None:
            raise NotFoundError(f"the log has no entry {index}")
        return row.envelope

    def status(self, party: str, index: int) -> dict[str, Any]:
        """Delivered (the hub's word) and acknowledged (the recipient's signed act) per addressee."""
        with self._state_lock:
            e = self.views.committed_entry(index)
            if party not in (e.author, SECRETARIAT):
                raise ForbiddenError(f"only the author of entry {index} sees its delivery status")
            to = sorted(self.state.audience(e) - {e.author})
            acks = {p: self.state.acks.get((index, p)) for p in to}
            ack_ms = {p: self.state.entries[a].ms for p, a in acks.items() if a is not None}
        delivered = self.rstore.deliveries(index)
        return {
            p: {
                "delivered_ms": delivered.get(p),
                "acknowledged_by_entry": acks[p],
                "acknowledged_ms": ack_ms.get(p),
            }
            for p in to
        }

    def record_delivery(self, party: str, entries: Sequence[Entry]) -> None:
        """Record now (an inbox fetch answers after the record is written)."""
        ms = self.clock()
        rows = [(e.index, party, ms) for e in entries if e.author != party]
        if rows:
            self.dstore.record_deliveries(rows)

    def queue_delivery(self, party: str, entries: Sequence[Entry]) -> None:
        """Record soon, in batches (pushes must not wait on a write per member)."""
        ms = self.clock()
        for e in entries:
            if e.author != party:
                self._deliveries.put((e.index, party, ms))

    def _record_deliveries(self) -> None:
        stop = False
        while not stop:
            first = self._deliveries.get()
            if first is None:
                return
            rows = [first]
            time.sleep(0.05)
            while True:
                try:
                    nxt = self._deliveries.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                rows.append(nxt)
            try:
                self.dstore.record_deliveries(rows)
            except CbmnetError as e:
                log.warning("delivery records lost: %s", e)

    # ---- observation batches -------------------------------------------------------------

    def put_batch(self, party: str, index: int, data: bytes) -> dict[str, Any]:
        """Store the rows of a logged observations act: only its author, only the signed bytes."""
        with self._state_lock:
            e = self.views.committed_entry(index)
            meta = self.state.batches.get(index)
        if meta is None:
            raise NotFoundError(f"entry {index} is not an observations batch")
        if party != e.author:
            raise ForbiddenError(f"only {e.author!r}, who signed batch {index}, uploads its rows")
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != meta["bytes"] or digest != meta["sha256"]:
            raise VerificationError(
                f"batch {index}: these {len(data)} bytes (SHA-256 {digest}) are not the "
                f"{meta['bytes']} bytes signed in the log (SHA-256 {meta['sha256']})"
            )
        shape = describe_batch(data, meta["format"], f"batch {index}")  # every row, or nothing
        if meta.get("rows") is not None and meta["rows"] != shape["rows"]:
            raise VerificationError(
                f"batch {index}: {shape['rows']} rows, its provider signed {meta['rows']}"
            )
        stored = self.wstore.put_batch(index, data)
        return {"index": index, "sha256": digest, "stored": stored, **shape}

    def get_batch(self, party: str, index: int) -> bytes:
        self.views.readable(party, index)
        with self._state_lock:
            meta = self.state.batches.get(index)
        if meta is None:
            raise NotFoundError(f"entry {index} is not an observations batch")
        data = self.rstore.get_batch(index)
        if data is None:
            raise NotFoundError(f"the rows of batch {index} have not been uploaded")
        return data

    # ---- the hub's own duties -----------------------------------------------------------

    def annual_report(self, party: str, agreement: str, year: int, now: int) -> dict[str, Any]:
        """The annual implementation report as ``party`` may read it, with the latest signed
        checkpoint the figures rest on (None while the log has signed none): one answer for
        the API, the page and its PDF."""
        doc = self.views.annual_for(party, agreement, year, now)
        stored = self.rlog.store.latest_checkpoint()
        return {**doc, "checkpoint": None if stored is None else self.rlog.signed_checkpoint(stored)}

    def sweep(self, now: int | None = None) -> list[Receipt]:
        """Log what the hub must state itself: missed acknowledgements, overdue obligations.

        Hub acts are deterministic (same payload, same Ed25519 signature), so two
        processes sweeping at once log each statement once.
        """
        now = self.clock() if now is None else now
        self.sync()
        with self._state_lock:
            due = self.state.unanswered(now)
            seen = set(self.state.overdue)
            checked = set(self.state.check_results)
            registered = set(self.state.parties)
        overdue: list[dict[str, Any]] = []
        for aid in self.agreements:
            try:
                rep = self.views.report(aid, now)
            except CbmnetError as e:
                log.error("sweep: %s skipped: %s", aid, e)
                continue
            overdue += self._check_results(aid, rep, checked)
            for o in rep.obligations:
                # Only parties on this hub: the others' duties are not its to report.
                if o.status == "missed" and o.party in registered and (aid, o.id) not in seen:
                    overdue.append(
                        {
                            "act": "obligation.overdue",
                            "agreement": aid,
                            "obligation": o.id,
                            "party": o.party,
                            "provision": o.provision,
                            "kind": o.kind,
                            "due": o.to_json()["due"],
                            "subjects": list(o.subjects),
                        }
                    )
        out = self._state_all(due)  # hotline first: no agreement's trouble may delay it
        for doc in overdue:
            out += self._state_all([doc])
        return out

    def _state_all(self, docs: Sequence[dict[str, Any]]) -> list[Receipt]:
        out = []
        for doc in docs:
            try:
                out.append(self.submit(self.sign_hub_act(doc)))
            except ConflictError:
                continue  # answered, or stated by another process, in the meantime
        return out

    def _check_results(
        self, aid: str, rep: Report, checked: set[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        """Communication checks settled since the last sweep: passed or missed, for the record."""
        out = []
        for o in rep.obligations:
            if o.kind != "reply_deadline" or o.status == "pending" or not o.subjects:
                continue
            request = o.subjects[0]
            if (aid, request) in checked:
                continue
            with self._state_lock:
                doc = self.state.event_doc(aid, request)
            if doc is None or doc.get("kind") != "communication_check":
                continue
            out.append(
                {
                    "act": "check.result",
                    "agreement": aid,
                    "request": request,
                    "party": o.party,
                    "result": "passed" if o.status in ("met", "waived") else "missed",
                    "due": o.to_json()["due"],
                    "answered_by": o.met_by,
                }
            )
        return out

    def checkpoint_if_grown(self) -> None:
        with self._cp_lock:
            latest = self.rstore.latest_checkpoint()
            if latest is None or latest.size < self.rstore.log_state()[0]:
                self.log.checkpoint()

    def run_duties(self, stop: threading.Event) -> None:
        """The background loop: sweeps and checkpoints until ``stop`` is set."""
        next_sweep = next_cp = 0.0
        try:
            self.views.warm()  # then the first sweep evaluates every agreement
        except CbmnetError as e:
            log.warning("hub duty failed: %s", e)
        while not stop.is_set():
            t = time.monotonic()
            try:
                if t >= next_cp:
                    self.checkpoint_if_grown()
                    next_cp = t + self.settings.checkpoint_s
                if t >= next_sweep:
                    self.sweep()
                    next_sweep = t + self.settings.sweep_s
                self.save_snapshot(self.SNAPSHOT_EVERY)
            except CbmnetError as e:
                log.warning("hub duty failed: %s", e)
            stop.wait(min(self.settings.checkpoint_s, self.settings.sweep_s, 0.5))

    def run_alerts(self, stop: threading.Event) -> None:
        """The alerts' loop: derive from new entries and deliver, until ``stop``."""
        self.alerts.run(stop)

    @property
    def hub_signer(self) -> Any:
        """The hub's own Ed25519 signer: what it states itself, and its webhook signatures."""
        return self._hub_key

    @property
    def author_keys(self) -> dict[str, Any]:
        return {SECRETARIAT: self.secretariat_vkey, HUB: self.hub_vkey}
