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
from cbmnet.acts.state import stated_fields
from cbmnet.compliance.timeutil import format_time
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
"""How often the hub's answers to the party's reads are fetched again (obligations age;
the party's evaluations at the hub are shared with its own tools)."""
MAX_AGREEMENTS = 16
"""Agreements whose obligations and indicators are kept (a party is in a few)."""
PAGE_ROWS = 200
ITEM_ERRORS = "mirror_item_errors"
PARTY = "mirror_party"
MAX_ITEM_ERRORS = 20
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


class HubAnswer(NotFoundError):
    """The hub answered something else than 200 (its status kept: 429 means wait)."""

    def __init__(self, status: int, path: str) -> None:
        super().__init__(f"the hub answered {status} for {path}")
        self.status = status


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
        self._answered = -1.0
        """When (monotonic) the hub's answers were last fetched."""
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
        pin_party(store, party)

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
            raise HubAnswer(status, path)
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
        so that they can read it from the mirror while the hub is down (ADR 0012). The
        answers are fetched again every ``answers_every`` seconds, whatever happened to the
        descriptions (one bad one never stops them)."""
        if self.party is None:
            return
        now = time.monotonic()
        due = self._answered < 0 or now - self._answered >= self.answers_every
        try:
            self._describe(size)
        finally:
            if due:
                self._answered = now
                self._answers(size)

    def _describe(self, size: int) -> None:
        """The hub's description of each entry the party may read, up to ``size``, checked
        against the entry the mirror holds (or against its leaf when the bundle left it
        out: too long for a bundle), then kept with it. A description that disagrees with
        the signed envelope is replaced by what the envelope states and marked disputed;
        an entry nothing verifies is set aside. Either is named in ``mirror_item_errors``."""
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
                limit = max(1, limit // 4)  # a page of long entries: fewer at a time
                continue
            page = _json(raw)
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list) or len(items) > limit:
                raise FormatError("the hub's /v1/entries: no list of items")
            rows: list[MirrorItem] = []
            found: list[tuple[int, int, bytes, bytes]] = []
            problems: list[str] = []
            done = len(items) < limit
            for it in items:
                idx = it.get("index") if isinstance(it, dict) else None
                if not isinstance(idx, int) or isinstance(idx, bool) or idx <= after:
                    raise FormatError("the hub's /v1/entries: items out of order")
                if idx >= size:
                    done = True
                    break
                after = idx
                try:
                    row, recovered, problem = self._check_item(it, idx)
                except CbmnetError as e:
                    problems.append(f"entry {idx} set aside: {e}"[:300])
                    continue
                rows.append(row)
                if recovered is not None:
                    found.append(recovered)
                if problem:
                    problems.append(f"entry {idx}: {problem}"[:300])
            with self.store.transaction():
                if found:
                    self.store.insert_entries(found)
                self.store.put_mirror_items(rows)
                if problems:
                    kept = json.loads(self.store.get_meta(ITEM_ERRORS) or "[]")
                    self.store.set_meta(ITEM_ERRORS, json.dumps((kept + problems)[-MAX_ITEM_ERRORS:]))
            if done:
                break
            limit = min(ITEMS_PAGE, limit * 2)
        self._described = size

    def _check_item(
        self, it: dict[str, object], idx: int
    ) -> tuple[MirrorItem, tuple[int, int, bytes, bytes] | None, str | None]:
        """One item of ``/v1/entries``: (the row kept, the entry if the mirror did not hold
        it, what the hub got wrong). The envelope must be the entry the tile carried, or
        hash to its leaf; author, kind, payload type and what the act states itself
        (``stated_fields``) are taken from the envelope; only what needs the hub's state
        (an answer's request, an acknowledged entry's agreement) is the hub's word."""
        ms, env = it.get("integrated_ms"), it.get("envelope")
        if not isinstance(ms, int) or isinstance(ms, bool) or not isinstance(env, dict):
            raise FormatError("no integration time or envelope")
        raw = json.dumps(env, separators=(",", ":")).encode()
        held = self.store.get_entry(idx)
        recovered = None
        problem = None
        if held is not None:
            if held.integrated_ms != ms or json.loads(held.envelope) != env:
                problem = "the hub's listing carries another entry than its tiles"
                ms, raw = held.integrated_ms, held.envelope
        else:
            leaf = self.store.nodes_at_level(0, idx, idx + 1).get(idx)
            if leaf is None or leaf_hash(encode_entry(ms, raw)) != leaf:
                raise VerificationError("the hub's listing does not hash to its leaf")
            digest = hashlib.sha256(b"cbmnet-mirror\n%d\n" % idx + leaf).digest()
            recovered = (idx, ms, digest, raw)
        signed = dsse.parse(raw)
        try:
            act = read_act(signed.payload_type, signed.payload)
            stated = {"author": act.author, "kind": act.kind, **stated_fields(act)}
        except CbmnetError:
            stated = {"author": SECRETARIAT, "kind": "opaque"}  # as the hub files a plain append
        stated["payload_type"] = signed.payload_type
        item: dict[str, object] = {}
        for name, types in ITEM_FIELDS.items():
            value = it.get(name)
            if name in stated:
                if problem is None and value != stated[name]:
                    problem = (
                        f"the hub describes its {name} as {str(value)[:60]!r}; the act says otherwise"
                    )
                value = stated[name]
            elif problem is not None or not isinstance(value, types):
                value = None  # the hub's word, and the hub's word is in doubt here
            item[name] = value
        if problem is not None:
            # Only what the envelope states: nothing of the hub's beside a disputed record.
            item = {k: (stated.get(k)) for k in ITEM_FIELDS}
            item["disputed"] = problem
        item["index"] = idx
        item["integrated_ms"] = ms
        item["integrated_at"] = format_time(ms)
        row = MirrorItem(
            idx,
            ms,
            str(item["author"]),
            str(item["kind"]),
            _column(item["agreement"]),
            _column(item["form"]),
            json.dumps(item, sort_keys=True),
        )
        return row, recovered, problem

    def answer_paths(self) -> list[str]:
        """The reads whose last answer the mirror keeps: the registry, the party's channels,
        and per agreement of the party its obligations and indicators."""
        paths = ["/v1/parties", "/v1/channels"]
        for a in registration(self.store, self.party).agreements:
            q = quote(a, safe="")
            paths += [f"/v1/obligations?agreement={q}", f"/v1/indicators?agreement={q}"]
        return paths

    def _answers(self, size: int) -> None:
        """Fetch the hub's answers again; one that fails keeps the last (its time says so).
        A hub that asks to slow down (429: the party's evaluations are shared with its own
        tools) is left alone until the next time."""
        failed: list[str] = []
        fetched: set[str] = set()
        for _pass in range(2):  # the second pass: the agreements the registry just named
            for path in self.answer_paths():
                if path in fetched:
                    continue
                fetched.add(path)
                try:
                    body = _json(self._get(path, MAX_ANSWER_BYTES, auth=True))
                except HubAnswer as e:
                    failed.append(f"{path}: {e}")
                    if e.status == 429:
                        break
                    continue
                except CbmnetError as e:
                    failed.append(f"{path}: {e}")
                    continue
                if not isinstance(body, dict):
                    failed.append(f"{path}: not a JSON object")
                    continue
                now = int(time.time() * 1000)
                with self.store.transaction():
                    self.store.put_mirror_answer(path, now, size, json.dumps(body, sort_keys=True))
                    if path.startswith("/v1/obligations?"):
                        summary = page_summary(body, self.party)
                        self.store.put_mirror_answer("page:" + path, now, size, json.dumps(summary))
        if failed:
            raise NotFoundError("the hub's answers not kept this round: " + "; ".join(failed)[:400])

    def _keep_info(self, raw: bytes) -> None:
        """The hub's ``/v1/hub`` (its keys and quorums), served as it was last seen, so an
        auditor reads the mirror as it reads the hub; its log key must be the pinned one."""
        info = _json(raw)
        if not isinstance(info, dict) or info.get("log_vkey") != self.log_vkey:
            raise VerificationError("the hub's /v1/hub names another log key than the pinned one")
        if info.get("origin") != self.origin:
            raise VerificationError("the hub's /v1/hub names another origin than the pinned one")
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


def pin_party(store: Store, party: str | None) -> None:
    """A mirror's store keeps one party's entries: the first party it follows for, for
    good (another party's tools would read them otherwise)."""
    if party is None:
        return
    held = store.get_meta(PARTY)
    if held is None:
        store.set_meta(PARTY, party)
    elif held != party:
        raise FormatError(
            f"store {store.url} keeps {held!r}'s entries, not {party!r}'s: one store per party"
        )


@dataclass(frozen=True)
class Registration:
    """A party's entry in the registry as the hub last listed it (``/v1/parties``)."""

    agreements: tuple[str, ...] = ()
    """At most ``MAX_AGREEMENTS``; whatever else the hub put there is ignored."""
    signing_keys: frozenset[str] | None = None
    """Its active keys (base64), or None where the hub listed none for it."""


def registration(store: Store, party: str | None) -> Registration:
    """``party``'s registration in the hub's last ``/v1/parties`` answer."""
    kept = store.mirror_answer("/v1/parties")
    doc = json.loads(kept[2]) if kept is not None else None
    listed = doc.get("parties") if isinstance(doc, dict) else None
    for p in listed if isinstance(listed, list) else []:
        if not isinstance(p, dict) or p.get("id") != party:
            continue
        got = p.get("agreements")
        found = (
            {a for a in got if isinstance(a, str) and 0 < len(a) <= 128}
            if isinstance(got, list)
            else set()
        )
        keys = p.get("signing_keys")
        active = frozenset(k for k in keys if isinstance(k, str)) if isinstance(keys, list) else None
        return Registration(tuple(sorted(found)[:MAX_AGREEMENTS]), active)
    return Registration()


def page_summary(body: dict[str, object], party: str | None) -> dict[str, object]:
    """What the page shows of an obligations answer, made once when it is fetched: the
    pending obligations (the party's own first, by due date) and the findings, at most
    ``PAGE_ROWS`` each, whatever else the hub's answer holds."""

    def records(key: str) -> list[dict[str, object]]:
        got = body.get(key)
        return [r for r in got if isinstance(r, dict)] if isinstance(got, list) else []

    pending = [o for o in records("obligations") if o.get("status") == "pending"]
    pending.sort(key=lambda o: (o.get("party") != party, str(o.get("due"))))
    findings = records("findings")
    return {
        "agreement": str(body.get("agreement"))[:128],
        "as_of": str(body.get("as_of"))[:64],
        "pending": pending[:PAGE_ROWS],
        "pending_count": len(pending),
        "findings": findings[:PAGE_ROWS],
        "findings_count": len(findings),
    }


def _column(value: object) -> str | None:
    """A filterable column: text without NUL (PostgreSQL refuses it), else none."""
    return value if isinstance(value, str) and "\x00" not in value else None


def describe(store: Store, *, private: bool = False) -> dict[str, object]:
    """The mirror's state for ``/v1/mirror``: what it holds, and the evidence if it stopped.
    The last error's text only with ``private`` (for its party): it may name entries and
    agreements of the party's."""
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
        "last_error": (store.get_meta(LAST_ERROR) or None)
        if private
        else bool(store.get_meta(LAST_ERROR)),
        **({"set_aside": json.loads(store.get_meta(ITEM_ERRORS) or "[]")} if private else {}),
    }


def _json(raw: bytes) -> object:
    """The hub's JSON, or a ``FormatError`` (never a crash of the follower)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise FormatError("the hub answered something that is not JSON") from None
