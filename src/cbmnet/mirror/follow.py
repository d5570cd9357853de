"""Follow a hub and keep a verified copy of its log, as a party's national mirror.

Each round (``Follower.step``) reads the hub's latest checkpoint and keeps it only after
checking it all here:

* the checkpoint is signed by the pinned log key and names the pinned origin;
* the new leaves come from the hub's level-0 hash tiles; every entry the party may read
  (the entry bundles, with its token) hashes to its leaf;
* the tree the mirror already holds, extended by those leaves, has the checkpoint's root.
  That is the consistency check: nothing the mirror kept can be rewritten.

If the root differs, the hub is asked for a consistency proof between the two checkpoints.
If that proof verifies, the hub served bad tiles: nothing is kept, and the next round tries
again. If it does not, the hub has shown two views that cannot both be true: the mirror
keeps both signed checkpoints as evidence (``split_view``) and stops following.

Kept in the mirror's own store with the hub's tables (``log_nodes`` holds every complete
subtree, as the hub's does, so the mirror serves the same proofs and tiles); an entry the
party may not read has its leaf hash and nothing else. After keeping a checkpoint the
mirror cosigns it with its own key (c2sp.org/tlog-mirror: "durably logged and made
accessible"; here, every hash, and the entries this party may read).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import httpx

from cbmnet.errors import CbmnetError, FormatError, NotFoundError, VerificationError
from cbmnet.ledger.checkpoint import parse_checkpoint
from cbmnet.ledger.encoding import b64, unb64
from cbmnet.ledger.entry import decode_entry
from cbmnet.ledger.merkle import (
    EMPTY_ROOT,
    Node,
    extend_frontier,
    frontier_root,
    leaf_hash,
    split_range,
    verify_consistency,
)
from cbmnet.ledger.note import new_cosigner, new_verifier, open_note, parse_signer_key, split_note
from cbmnet.ledger.tiles import WIDTH, parse_bundle, split_hash_tile, tile_path, tile_width
from cbmnet.ledger.witness import cosignature_lines
from cbmnet.store.sql import Store, StoredCheckpoint, StoredCosignature

MAX_TILE_BYTES = WIDTH * 32
MAX_BUNDLE_BYTES = WIDTH * (2 + 0xFFFF)
MAX_CHECKPOINT_BYTES = 64 * 1024
STOPPED = "mirror_stopped"
SPLIT_VIEW = "mirror_split_view"
HUB_INFO = "mirror_hub_info"


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


class Follower:
    """One mirror of one log: ``store`` is the mirror's own, ``log_vkey`` pinned."""

    def __init__(
        self,
        store: Store,
        hub: str,
        log_vkey: str,
        *,
        mirror_key: str | None = None,
        token: Callable[[bool], str | None] = lambda _fresh: None,
        http: httpx.Client | None = None,
    ) -> None:
        self.store = store
        self.hub = hub.rstrip("/")
        self.log_vkey = log_vkey
        self.verifier = new_verifier(log_vkey)
        self.origin = self.verifier.name
        self.mirror_key = mirror_key
        self.mirror_vkey = parse_signer_key(mirror_key).cosigner_verifier_key if mirror_key else None
        self.token = token
        self.http = http or httpx.Client(timeout=30)
        held = store.get_meta("origin")
        if held is None:
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
                body = b""
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise FormatError(f"{path}: more than {limit} bytes")
                return 200, body
        except httpx.HTTPError as e:
            raise NotFoundError(f"the hub cannot be reached ({path}): {e}") from None

    # ---- one round ---------------------------------------------------------------------

    def stopped(self) -> str | None:
        """Why the mirror stopped following (a split view), or None."""
        return self.store.get_meta(STOPPED)

    def step(self) -> Progress:
        """Keep the hub's latest checkpoint if it checks out; raise naming what does not."""
        reason = self.stopped()
        if reason:
            raise SplitViewError(f"the mirror stopped following: {reason}")
        text = self._get("/v1/tlog/checkpoint", MAX_CHECKPOINT_BYTES).decode("utf-8", "replace")
        body = open_note(text, [self.verifier]).text
        cp = parse_checkpoint(body)
        if cp.origin != self.origin:
            raise VerificationError(f"checkpoint of {cp.origin!r}, the mirror follows {self.origin!r}")
        size, _ = self.store.log_state()
        if cp.size <= size:
            if self._root_at(cp.size) != cp.root_hash:
                self._split(
                    text, f"the hub's checkpoint of size {cp.size} has another root than the mirror's"
                )
            return Progress(size, 0, 0, 0)
        leaves, entries, fetched = self._fetch(size, cp.size)
        frontier = self._frontier(size)
        created: list[Node] = []
        for i, leaf in enumerate(leaves):
            extend_frontier(frontier, size + i, leaf, created)
        if frontier_root(frontier) != cp.root_hash:
            self._diagnose(text, size, cp.size, cp.root_hash)
        try:
            info: bytes | None = self._get("/v1/hub", MAX_CHECKPOINT_BYTES)
        except NotFoundError:  # a log that is no hub (another mirror, a plain log)
            info = None
        self._keep(text, body, cp.size, cp.root_hash, created, entries)
        if info is not None:
            self._keep_info(info)
        return Progress(cp.size, cp.size - size, len(entries), fetched)

    def _keep_info(self, raw: bytes) -> None:
        """The hub's ``/v1/hub`` (its keys and quorums), served as it was last seen, so an
        auditor reads the mirror as it reads the hub; its log key must be the pinned one."""
        try:
            info = json.loads(raw)
        except ValueError:
            raise FormatError("the hub's /v1/hub is not JSON") from None
        if not isinstance(info, dict) or info.get("log_vkey") != self.log_vkey:
            raise VerificationError("the hub's /v1/hub names another log key than the pinned one")
        self.store.set_meta(HUB_INFO, json.dumps(info, sort_keys=True))

    def _fetch(self, lo: int, hi: int) -> tuple[list[bytes], dict[int, bytes], int]:
        """Leaf hashes of ``[lo, hi)`` from the level-0 tiles, and the entries the party may
        read from the bundles, each checked against its leaf."""
        leaves: list[bytes] = []
        entries: dict[int, bytes] = {}
        fetched = 0
        for t in range(lo // WIDTH, (hi - 1) // WIDTH + 1):
            width = tile_width(0, t, hi)
            hashes = split_hash_tile(
                self._get("/v1/tlog/" + tile_path(0, t, width), MAX_TILE_BYTES), width
            )
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
                        raise VerificationError(
                            f"entry {n}: its bytes do not hash to its leaf in the tile"
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

    def _diagnose(self, text: str, old: int, new: int, new_root: bytes) -> None:
        """The leaves do not give the checkpoint's root: bad tiles, or a split view."""
        if old == 0:
            raise VerificationError(f"the hub's tiles do not hash to its checkpoint of size {new}")
        doc = json.loads(self._get(f"/v1/log/consistency?old={old}&new={new}", 1 << 20))
        proof = [unb64(h, "consistency proof hash") for h in doc.get("proof", [])]
        try:
            verify_consistency(old, new, proof, self._root_at(old), new_root)
        except CbmnetError:
            self._split(
                text, f"the hub's checkpoint of size {new} does not extend the mirror's of size {old}"
            )
        raise VerificationError(f"the hub's tiles do not hash to its checkpoint of size {new}")

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
        """The new nodes, entries and checkpoint in one transaction, then the mirror's
        cosignature: a crash between the two leaves a kept checkpoint it cosigns next round."""
        _, sigs = split_note(text)
        own = [s for s in sigs if (s.name, s.key_id) == (self.verifier.name, self.verifier.key_id)]
        note = body + "\n" + own[0].line
        others = [s for s in sigs if s not in own]
        now = int(time.time() * 1000)
        rows = []
        for n, data in sorted(entries.items()):
            e = decode_entry(data)
            rows.append((n, e.integrated_ms, leaf_hash(data), e.envelope))
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
            if self.mirror_key and self.mirror_vkey:
                line = cosignature_lines(body, new_cosigner(self.mirror_key))
                self.store.put_cosignature(StoredCosignature(seq, self.mirror_vkey, line, now // 1000))


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
    }
