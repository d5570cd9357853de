"""Follow a hub and keep a verified copy of its log, as a party's national mirror.

Each round (``Follower.step``) reads the hub's latest checkpoint and keeps one only after
checking it all here (docs/adr/0012-national-mirrors.md):

* the checkpoint is signed by the pinned log key and names the pinned origin;
* the new leaves come from the hub's level-0 hash tiles; every entry the party may read
  (the entry bundles, with its token) hashes to its leaf;
* the tree the mirror already holds, extended by those leaves, has the checkpoint's root.
  That is the consistency check: nothing the mirror kept can be rewritten.

A round is bounded: at most ``MAX_ROUND_LEAVES`` new leaves and ``MAX_ROUND_ENTRY_BYTES``
of entries; further ahead, it keeps one of the hub's earlier checkpoints (its listing)
within reach, and the next round goes on. Progress is kept round by round.

If the root is not reached, either the hub served bad tiles (nothing is kept; the next
round tries again) or it signed two views that cannot both be true. A split view is
declared only when proven: the same size with two roots, or the hub's own leaves hashing
to its new signed root while their prefix does not hash to the root the mirror holds.
Then the mirror keeps both signed checkpoints as evidence and stops following for good. A
consistency proof the hub fails to give is a bad answer, not evidence.

Kept in the mirror's own store with the hub's tables (``log_nodes`` holds every complete
subtree, so the mirror serves the same proofs and tiles); an entry the party may not read
has its leaf hash and nothing else. The mirror cosigns each checkpoint it keeps with its
own key: "this mirror holds every hash of this tree and the entries its party may read".
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote

import httpx

from cbmnet.acts.model import SECRETARIAT, read_act
from cbmnet.errors import CbmnetError, FormatError, NotFoundError, VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import parse_checkpoint
from cbmnet.ledger.encoding import b64, unb64
from cbmnet.ledger.entry import decode_entry, encode_entry
from cbmnet.ledger.merkle import (
    EMPTY_ROOT,
    Node,
    extend_frontier,
    frontier_root,
    leaf_hash,
    split_range,
    verify_consistency,
)
from cbmnet.ledger.note import (
    new_cosigner,
    new_verifier,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    split_note,
)
from cbmnet.ledger.tiles import WIDTH, parse_bundle, split_hash_tile, tile_path, tile_width
from cbmnet.ledger.witness import cosignature_lines
from cbmnet.store.sql import MirrorItem, Store, StoredCheckpoint, StoredCosignature

MAX_TILE_BYTES = WIDTH * 32
MAX_BUNDLE_BYTES = WIDTH * (2 + 0xFFFF)
MAX_CHECKPOINT_BYTES = 64 * 1024
MAX_ROUND_LEAVES = 1 << 16
"""New leaves verified in one round: 256 tiles, 2 MiB of hashes."""
MAX_ROUND_ENTRY_BYTES = 128 << 20
"""Entries held in memory in one round, before they are kept."""
MAX_PROOF_LEAVES = 1 << 24
"""The largest tree whose leaves the mirror reads to prove a split view (O(log n) memory)."""
MAX_COSIGNATURES = 32
ROUND_S = 300.0
"""A round that has not finished in this long is abandoned (a hub sending slowly)."""
STOPPED = "mirror_stopped"
SPLIT_VIEW = "mirror_split_view"
HUB_INFO = "mirror_hub_info"
HUB_SEQ = "mirror_hub_seq"
"""The hub's number of the last checkpoint kept from its listing: where the next look starts."""
ITEMS_PAGE = 100
"""Entries asked per page of the hub's ``/v1/entries`` (1 when a page would be too large)."""
MAX_ITEMS_BYTES = 32 << 20
MAX_ANSWER_BYTES = 16 << 20
ANSWERS_EVERY_S = 30.0
"""How often the hub's answers to the party's reads are fetched again (obligations age)."""
ITEM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "integrated_at": str,
    "author": str,
    "payload_type": str,
    "kind": str,
    "agreement": (str, type(None)),
    "form": (str, type(None)),
    "ref": (int, type(None)),
    "event_id": (str, type(None)),
}
LAST_ROUND = "mirror_last_round_ms"
LAST_ERROR = "mirror_last_error"


class SplitViewError(VerificationError):
    """The hub showed two checkpoints that cannot both be true; the mirror stopped."""


@dataclass(frozen=True)
class Progress:
    size: int
    """The mirrored tree size after this round."""
    added: int
    """Leaves kept this round."""
    entries: int
    """Of those, entries this party may read (kept whole)."""
    tiles: int
    """Hash tiles and entry bundles fetched and verified."""
    behind: bool = False
    """The hub has more: the next round should start at once."""


class Follower:
    """One mirror of one log: ``store`` is the mirror's own, ``log_vkey`` pinned."""

    def __init__(
        self,
        store: Store,
        hub: str,
        log_vkey: str,
        *,
        mirror_key: str | None = None,
        party: str | None = None,
        token: Callable[[bool], str | None] = lambda _fresh: None,
        http: httpx.Client | None = None,
        answers_every: float = ANSWERS_EVERY_S,
    ) -> None:
        self.store = store
        self.hub = hub.rstrip("/")
        self.log_vkey = log_vkey
        self.verifier = new_verifier(log_vkey)
        self.origin = self.verifier.name
        self.mirror_key = mirror_key
        self.mirror_vkey = parse_signer_key(mirror_key).cosigner_verifier_key if mirror_key else None
        self.party = party
        """Whose entries and answers are kept (None: hashes only)."""
        self.token = token
        self.http = http or httpx.Client(timeout=30)
        self.answers_every = answers_every
        self._answered = (-1.0, -1)
        """(monotonic time, mirrored size) of the last fetch of the hub's answers."""
        self._described = 0
        """Entries below this size are described (this process asked the hub for them all)."""
        self._deadline = 0.0
        held = store.get_meta("origin")
        if held is None:
            with store.transaction():  # both pinned, or neither
                store.set_meta("origin", self.origin)
                store.set_meta("log_vkey", log_vkey)
        elif held != self.origin:
            raise FormatError(f"store {store.url} mirrors {held!r}, not {self.origin!r}")
        elif store.get_meta("log_vkey") != log_vkey:
            raise FormatError(f"store {store.url} mirrors {held!r} under another log key")

    # ---- the hub's answers -------------------------------------------------------------

    def _get(self, path: str, limit: int, *, auth: bool = False) -> bytes:
        for fresh in (False, True):
            headers = {}
            bearer = self.token(fresh) if auth else None
            if bearer:
                headers["Authorization"] = f"Bearer {bearer}"
            status, body = self._read(path, headers, limit)
            if status != 401 or not bearer:
                break
        if status != 200:
            raise NotFoundError(f"the hub answered {status} for {path}")
        return body

    def _read(self, path: str, headers: dict[str, str], limit: int) -> tuple[int, bytes]:
        try:
            with self.http.stream("GET", self.hub + path, headers=headers) as r:
                if r.status_code != 200:
                    return r.status_code, b""
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise FormatError(f"{path}: more than {limit} bytes")
                return 200, bytes(body)
        except httpx.HTTPError as e:
            raise NotFoundError(f"the hub cannot be reached ({path}): {e}") from None

    # ---- one round ---------------------------------------------------------------------

    def stopped(self) -> str | None:
        """Why the mirror stopped following (a split view), or None."""
        return self.store.get_meta(STOPPED)

    def step(self) -> Progress:
        """Keep the hub's latest checkpoint (or one on the way) if it checks out; raise
        naming what does not."""
        reason = self.stopped()
        if reason:
            raise SplitViewError(f"the mirror stopped following: {reason}")
        self._deadline = time.monotonic() + ROUND_S
        text = self._get("/v1/tlog/checkpoint", MAX_CHECKPOINT_BYTES).decode("utf-8", "replace")
        body, size_, root = self._open(text)
        size, _ = self.store.log_state()
        if size_ <= size:
            if self._root_at(size_) != root:
                # Both signed by the log: the mirror's leaves are proven by its own checkpoint.
                self._split(
                    text, f"the hub's checkpoint of size {size_} has another root than the mirror's"
                )
            self._cosign_latest()
            self._party_reads(size)
            self.store.set_meta(LAST_ROUND, str(int(time.time() * 1000)))
            return Progress(size, 0, 0, 0)
        target: tuple[str, str, int, bytes, int | None] = (text, body, size_, root, None)
        if size_ - size > MAX_ROUND_LEAVES:
            target = self._on_the_way(size, size_)
        t_text, t_body, t_size, t_root, t_seq = target
        leaves, entries, fetched = self._fetch(size, t_size)
        frontier = self._frontier(size)
        created: list[Node] = []
        for i, leaf in enumerate(leaves):
            extend_frontier(frontier, size + i, leaf, created)
        if frontier_root(frontier) != t_root:
            self._diagnose(t_text, size, t_size, t_root)
        try:
            info: bytes | None = self._get("/v1/hub", MAX_CHECKPOINT_BYTES)
        except NotFoundError:  # a log that is no hub (another mirror, a plain log)
            info = None
        self._keep(t_text, t_body, t_size, t_root, created, entries)
        if t_seq is not None:
            self.store.set_meta(HUB_SEQ, str(t_seq))
        if info is not None:
            self._keep_info(info)
        self._party_reads(t_size)
        self.store.set_meta(LAST_ROUND, str(int(time.time() * 1000)))
        return Progress(t_size, t_size - size, len(entries), fetched, behind=t_size < size_)

    # ---- what the party reads: entries described, and the hub's answers ----------------

    def _party_reads(self, size: int) -> None:
        """Keep what the party's tools read from the hub (``/v1/entries``, obligations, ...)
        so that they can read it from the mirror while the hub is down (ADR 0012)."""
        if self.party is None:
            return
        self._describe(size)
        last, at = self._answered
        now = time.monotonic()
        if last < 0 or now - last >= self.answers_every or (at != size and now - last >= 1.0):
            self._answers(size)
            self._answered = (now, size)

    def _describe(self, size: int) -> None:
        """The hub's description of each entry the party may read, up to ``size``: each
        checked against the entry the mirror holds, or against its leaf when the bundle
        left it out (longer than a bundle carries); then kept with it."""
        if size <= self._described:
            return
        after = self.store.last_mirror_item()
        limit = ITEMS_PAGE
        while after < size - 1:
            if time.monotonic() > self._deadline:
                raise NotFoundError(f"the round took more than {ROUND_S:g} s: the hub is too slow")
            try:
                raw = self._get(f"/v1/entries?after={after}&limit={limit}", MAX_ITEMS_BYTES, auth=True)
            except FormatError:
                if limit == 1:
                    raise
                limit = 1  # a page of long entries: one at a time
                continue
            page = _json(raw)
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list) or len(items) > limit:
                raise FormatError("the hub's /v1/entries: no list of items")
            rows: list[MirrorItem] = []
            found: list[tuple[int, int, bytes, bytes]] = []
            for it in items:
                idx = it.get("index") if isinstance(it, dict) else None
                if not isinstance(idx, int) or isinstance(idx, bool) or idx <= after:
                    raise FormatError("the hub's /v1/entries: items out of order")
                if idx >= size:
                    break
                row, recovered = self._check_item(it, idx)
                rows.append(row)
                if recovered is not None:
                    found.append(recovered)
                after = idx
            with self.store.transaction():
                if found:
                    self.store.insert_entries(found)
                self.store.put_mirror_items(rows)
            if len(rows) < len(items) or len(items) < limit:
                break
            limit = ITEMS_PAGE
        self._described = size

    def _check_item(
        self, it: dict[str, object], idx: int
    ) -> tuple[MirrorItem, tuple[int, int, bytes, bytes] | None]:
        """One item of ``/v1/entries``: its envelope is the entry the mirror holds (or hashes
        to the entry's leaf), and its author and kind are what that envelope says."""
        what = f"the hub's description of entry {idx}"
        for name, types in ITEM_FIELDS.items():
            if not isinstance(it.get(name), types):
                raise FormatError(f"{what}: field {name!r} missing or of the wrong type")
        ms, env = it.get("integrated_ms"), it.get("envelope")
        if not isinstance(ms, int) or isinstance(ms, bool) or not isinstance(env, dict):
            raise FormatError(f"{what}: no integration time or envelope")
        raw = json.dumps(env, separators=(",", ":")).encode()
        held = self.store.get_entry(idx)
        recovered = None
        if held is not None:
            if held.integrated_ms != ms or json.loads(held.envelope) != env:
                raise VerificationError(f"{what} is not the entry its tiles carry")
        else:
            leaf = self.store.nodes_at_level(0, idx, idx + 1).get(idx)
            data = encode_entry(ms, raw)
            if leaf is None or leaf_hash(data) != leaf:
                raise VerificationError(f"{what} does not hash to its leaf")
            digest = hashlib.sha256(b"cbmnet-mirror\n%d\n" % idx + leaf).digest()
            recovered = (idx, ms, digest, raw)
        signed = dsse.parse(raw)
        try:
            act = read_act(signed.payload_type, signed.payload)
            author, kind = act.author, act.kind
        except CbmnetError:
            author, kind = SECRETARIAT, "opaque"  # as the hub files a plain log append
        if (it["author"], it["kind"], it["payload_type"]) != (author, kind, signed.payload_type):
            raise VerificationError(f"{what}: its author or kind is not what the envelope says")
        item = {"index": idx, "integrated_ms": ms, **{k: it[k] for k in ITEM_FIELDS}}
        agreement, form = it["agreement"], it["form"]
        assert agreement is None or isinstance(agreement, str)
        assert form is None or isinstance(form, str)
        row = MirrorItem(idx, ms, author, kind, agreement, form, json.dumps(item, sort_keys=True))
        return row, recovered

    def answer_paths(self) -> list[str]:
        """The reads whose last answer the mirror keeps: the registry, the party's channels,
        and per agreement of the party its obligations and indicators."""
        paths = ["/v1/parties", "/v1/channels"]
        for a in party_agreements(self.store, self.party):
            q = quote(a, safe="")
            paths += [f"/v1/obligations?agreement={q}", f"/v1/indicators?agreement={q}"]
        return paths

    def _answers(self, size: int) -> None:
        """Fetch the hub's answers again; one that fails keeps the last (its time says so)."""
        failed: list[str] = []
        fetched: set[str] = set()
        for _pass in range(2):  # the second pass: the agreements the registry just named
            for path in self.answer_paths():
                if path in fetched:
                    continue
                fetched.add(path)
                try:
                    body = _json(self._get(path, MAX_ANSWER_BYTES, auth=True))
                except CbmnetError as e:
                    failed.append(f"{path}: {e}")
                    continue
                if not isinstance(body, dict):
                    failed.append(f"{path}: not a JSON object")
                    continue
                now = int(time.time() * 1000)
                self.store.put_mirror_answer(path, now, size, json.dumps(body, sort_keys=True))
        if failed:
            raise NotFoundError("the hub's answers not kept this round: " + "; ".join(failed)[:400])

    def _keep_info(self, raw: bytes) -> None:
        """The hub's ``/v1/hub`` (its keys and quorums), served as it was last seen, so an
        auditor reads the mirror as it reads the hub; its log key must be the pinned one."""
        info = _json(raw)
        if not isinstance(info, dict) or info.get("log_vkey") != self.log_vkey:
            raise VerificationError("the hub's /v1/hub names another log key than the pinned one")
        self.store.set_meta(HUB_INFO, json.dumps(info, sort_keys=True))

    def _open(self, text: str) -> tuple[str, int, bytes]:
        """A checkpoint signed by the pinned log key: its body, size and root."""
        body = open_note(text, [self.verifier]).text
        cp = parse_checkpoint(body)
        if cp.origin != self.origin:
            raise VerificationError(f"checkpoint of {cp.origin!r}, the mirror follows {self.origin!r}")
        return body, cp.size, cp.root_hash

    def _on_the_way(self, size: int, latest: int) -> tuple[str, str, int, bytes, int | None]:
        """The largest checkpoint the hub lists within ``MAX_ROUND_LEAVES`` of ``size``."""
        after = int(self.store.get_meta(HUB_SEQ) or -1)
        best: tuple[str, str, int, bytes, int | None] | None = None
        for _page in range(64):
            doc = _json(self._get(f"/v1/log/checkpoints?after={after}&limit=1000", 4 << 20))
            items = doc.get("checkpoints") if isinstance(doc, dict) else None
            if not isinstance(items, list) or not items:
                break
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("note"), str):
                    raise FormatError("the hub's checkpoint listing: an item without a note")
                seq = item.get("seq")
                if not isinstance(seq, int) or seq <= after:
                    raise FormatError("the hub's checkpoint listing is not in order")
                after = seq
                body, n, root = self._open(item["note"])
                if n > size + MAX_ROUND_LEAVES:
                    if best is None:
                        raise VerificationError(
                            f"the hub's next checkpoint is {n - size} leaves ahead of the mirror's"
                            f" {size}: more than one round verifies ({MAX_ROUND_LEAVES})"
                        )
                    return best
                if n > size:
                    best = (item["note"], body, n, root, seq)
        if best is None:
            raise VerificationError(
                f"the hub's checkpoint is {latest - size} leaves ahead and it lists none on the way"
            )
        return best

    def _leaf_tiles(self, lo: int, hi: int) -> Iterator[tuple[int, int, list[bytes]]]:
        """(tile index, width, hashes) of the level-0 tiles covering ``[lo, hi)``."""
        for t in range(lo // WIDTH, (hi - 1) // WIDTH + 1):
            if time.monotonic() > self._deadline:
                raise NotFoundError(f"the round took more than {ROUND_S:g} s: the hub is too slow")
            width = tile_width(0, t, hi)
            tile = self._get("/v1/tlog/" + tile_path(0, t, width), MAX_TILE_BYTES)
            yield t, width, split_hash_tile(tile, width)

    def _fetch(self, lo: int, hi: int) -> tuple[list[bytes], dict[int, bytes], int]:
        """Leaf hashes of ``[lo, hi)`` from the level-0 tiles, and the entries the party may
        read from the bundles, each checked against its leaf."""
        leaves: list[bytes] = []
        entries: dict[int, bytes] = {}
        held = 0
        fetched = 0
        for t, width, hashes in self._leaf_tiles(lo, hi):
            bundle = parse_bundle(
                self._get("/v1/tlog/" + tile_path(-1, t, width), MAX_BUNDLE_BYTES, auth=True), width
            )
            fetched += 2
            for k in range(width):
                n = t * WIDTH + k
                if n < lo:
                    continue
                data = bundle[k]
                if data is not None:
                    if leaf_hash(data) != hashes[k]:
                        raise VerificationError(f"entry {n}: its bytes do not hash to its leaf")
                    held += len(data)
                    if held > MAX_ROUND_ENTRY_BYTES:
                        raise VerificationError(
                            f"more than {MAX_ROUND_ENTRY_BYTES} bytes of entries in one round"
                        )
                    entries[n] = data
                leaves.append(hashes[k])
        return leaves, entries, fetched

    def _frontier(self, size: int) -> list[Node]:
        if size == 0:
            return []
        keys = split_range(0, size)
        got = self.store.get_nodes(keys)
        missing = [k for k in keys if k not in got]
        if missing:
            raise VerificationError(f"the mirror's store lacks tree node {missing[0]}")
        return [(level, idx, got[(level, idx)]) for level, idx in keys]

    def _root_at(self, size: int) -> bytes:
        return frontier_root(self._frontier(size)) if size else EMPTY_ROOT

    def _diagnose(self, text: str, old: int, new: int, new_root: bytes) -> NoReturn:
        """The leaves do not give the checkpoint's root: bad tiles, or a split view. A split
        is declared only when proven; anything else is a bad answer, tried again later."""
        bad = VerificationError(f"the hub's tiles do not hash to its checkpoint of size {new}")
        if old == 0:
            raise bad
        mine = self._root_at(old)
        doc = _json(self._get(f"/v1/log/consistency?old={old}&new={new}", 1 << 20))
        proof = doc.get("proof") if isinstance(doc, dict) else None
        if isinstance(proof, list) and len(proof) <= 128 and all(isinstance(h, str) for h in proof):
            try:
                hashes = [unb64(h, "consistency proof hash") for h in proof]
                verify_consistency(old, new, hashes, mine, new_root)
                raise bad  # the trees agree: the tiles were wrong
            except CbmnetError as e:
                if e is bad:
                    raise
        if new > MAX_PROOF_LEAVES:
            raise VerificationError(
                f"the hub's checkpoint of size {new} may not extend the mirror's of size {old};"
                f" a tree of more than {MAX_PROOF_LEAVES} leaves is not proven here"
            )
        # Prove it from the hub's own leaves: they must hash to its new signed root, and
        # their prefix to something other than the root the mirror holds.
        frontier: list[Node] = []
        prefix = None
        for t, _width, hashes in self._leaf_tiles(0, new):
            for k, h in enumerate(hashes):
                extend_frontier(frontier, t * WIDTH + k, h, [])
                if t * WIDTH + k + 1 == old:
                    prefix = frontier_root(frontier)
        if frontier_root(frontier) != new_root or prefix == mine:
            raise bad
        self._split(
            text, f"the hub's checkpoint of size {new} does not extend the mirror's of size {old}"
        )

    def _split(self, seen: str, why: str) -> NoReturn:
        latest = self.store.latest_checkpoint()
        held = (
            ""
            if latest is None
            else latest.note + "".join(c.line for c in self.store.cosignatures(latest.seq))
        )
        evidence = {"reason": why, "held": held, "seen": seen, "at_ms": int(time.time() * 1000)}
        with self.store.transaction():
            self.store.set_meta(SPLIT_VIEW, json.dumps(evidence, sort_keys=True))
            self.store.set_meta(STOPPED, why)
        raise SplitViewError(f"split view: {why}; both checkpoints kept, the mirror stopped following")

    def _keep(
        self,
        text: str,
        body: str,
        size: int,
        root: bytes,
        created: list[Node],
        entries: dict[int, bytes],
    ) -> None:
        """The new nodes, entries, checkpoint and the mirror's cosignature in one transaction."""
        _, sigs = split_note(text)
        log_sig = (self.verifier.name, self.verifier.key_id)
        own = [s for s in sigs if (s.name, s.key_id) == log_sig]
        note = body + "\n" + own[0].line
        # Witnesses' lines as the hub gave them (a client checks them as from the hub),
        # never one in the mirror's own name: that one is the mirror's to make.
        mine = parse_verifier_key(self.mirror_vkey) if self.mirror_vkey else None
        others = [
            s for s in sigs if (s.name, s.key_id) != log_sig and (mine is None or s.name != mine.name)
        ][:MAX_COSIGNATURES]
        now = int(time.time() * 1000)
        rows = []
        for n, data in sorted(entries.items()):
            e = decode_entry(data)
            # Unique per index (the column is UNIQUE; two equal leaves must not jam it).
            digest = hashlib.sha256(b"cbmnet-mirror\n%d\n" % n + leaf_hash(data)).digest()
            rows.append((n, e.integrated_ms, digest, e.envelope))
        with self.store.transaction():
            have, last_ms = self.store.lock_log()
            if have + len([n for n in created if n[0] == 0]) != size:
                raise VerificationError(f"the mirror's store moved to {have} while following")
            self.store.insert_nodes(created)
            self.store.insert_entries(rows)
            self.store.set_log_state(size, max([last_ms, *(r[1] for r in rows)]))
            latest = self.store.latest_checkpoint()
            seq = 0 if latest is None else latest.seq + 1
            self.store.insert_checkpoint(StoredCheckpoint(seq, size, root, note, now))
            for s in others:
                ident = f"{s.name}+{s.key_id:08x}"
                self.store.put_cosignature(StoredCosignature(seq, ident, s.line, s.timestamp or 0))
            self._cosign(seq, body)

    def _cosign(self, seq: int, body: str) -> None:
        if self.mirror_key and self.mirror_vkey:
            line = cosignature_lines(body, new_cosigner(self.mirror_key))
            now = int(time.time())
            self.store.put_cosignature(StoredCosignature(seq, self.mirror_vkey, line, now))

    def _cosign_latest(self) -> None:
        """The latest kept checkpoint, cosigned if it is not yet (a key given later)."""
        latest = self.store.latest_checkpoint()
        if latest is None or not self.mirror_vkey:
            return
        if any(c.witness_vkey == self.mirror_vkey for c in self.store.cosignatures(latest.seq)):
            return
        self._cosign(latest.seq, split_note(latest.note)[0])


def party_agreements(store: Store, party: str | None) -> list[str]:
    """The agreements ``party`` is registered for, as the hub last listed them (at most 64;
    whatever else the hub put there is ignored)."""
    kept = store.mirror_answer("/v1/parties")
    doc = json.loads(kept[2]) if kept is not None else None
    listed = doc.get("parties") if isinstance(doc, dict) else None
    for p in listed if isinstance(listed, list) else []:
        if isinstance(p, dict) and p.get("id") == party and isinstance(p.get("agreements"), list):
            return sorted({a for a in p["agreements"] if isinstance(a, str) and len(a) <= 128})[:64]
    return []


def describe(store: Store) -> dict[str, object]:
    """The mirror's state for ``/v1/mirror``: what it holds, and the evidence if it stopped."""
    size, _ = store.log_state()
    latest = store.latest_checkpoint()
    split = store.get_meta(SPLIT_VIEW)
    return {
        "origin": store.get_meta("origin"),
        "size": size,
        "checkpoint_size": None if latest is None else latest.size,
        "root": None if latest is None else b64(latest.root_hash),
        "following": store.get_meta(STOPPED) is None,
        "split_view": None if split is None else json.loads(split),
        "last_round_ms": int(store.get_meta(LAST_ROUND) or 0) or None,
        "last_error": store.get_meta(LAST_ERROR) or None,
    }


def _json(raw: bytes) -> object:
    """The hub's JSON, or a ``FormatError`` (never a crash of the follower)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise FormatError("the hub answered something that is not JSON") from None
