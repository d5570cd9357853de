"""The SQL both backends share.

Tables (schema version 1):

* ``log_meta``: key/value facts about the log (origin, its verifier key, schema version);
* ``log_state``: one row, the tree size and the last integration time; writers lock it;
* ``log_entries``: ``idx``, integration time (ms), the statement digest (SHA-256 of the
  DSSE PAE, unique: the same act is never logged twice) and the canonical envelope;
* ``log_nodes``: hashes of every complete aligned subtree, ``(level, idx)``; level 0 holds
  the leaf hashes. Any proof needs O(log n) of them, read in one query;
* ``log_checkpoints`` / ``log_cosignatures``: the signed checkpoints and what witnesses
  added to them;
* ``witness_state``: for a witness, the latest checkpoint it cosigned per origin;
* ``hub_used_nonces``: nonces of sign-in challenges and dashboard sign-in codes redeemed,
  and of dashboard sessions signed out, each until its expiry, so each is used once across
  every hub process of the database. Added without a schema version bump: every table is
  created ``IF NOT EXISTS`` at open, so an older database gains it on first open.
* ``hub_snapshots``: at most one row, the hub's folded state at some log size
  (``cbmnet.acts.snapshot``), so a hub starts without refolding the whole log; lost or
  refused, it costs a full fold, nothing more. Added the same way, without a bump.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cbmnet.errors import IntegrityError, StoreError

SCHEMA_VERSION = 1
MAX_NODES_PER_QUERY = 200


@dataclass(frozen=True)
class StoredCheckpoint:
    seq: int
    size: int
    root_hash: bytes
    note: str
    """The log-signed note, without cosignatures."""
    created_ms: int


@dataclass(frozen=True)
class StoredCosignature:
    checkpoint_seq: int
    witness_vkey: str
    line: str
    timestamp: int


@dataclass(frozen=True)
class StoredEntry:
    idx: int
    integrated_ms: int
    envelope: bytes
    statement: bytes = b""


def _b(value: Any, what: str) -> bytes:
    """A stored blob, or an IntegrityError: SQLite will keep any type in any column."""
    if isinstance(value, bytes | memoryview | bytearray):
        return bytes(value)
    raise IntegrityError(f"{what}: stored value is not bytes (altered behind the log)")


def _i(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise IntegrityError(f"{what}: stored value is not an integer (altered behind the log)")


def _s(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    raise IntegrityError(f"{what}: stored value is not text (altered behind the log)")


MIN_INDEX = -(1 << 63)


@dataclass(frozen=True)
class WitnessRecord:
    origin: str
    size: int
    root_hash: bytes
    note: str


def _ddl(blob: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS log_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " size BIGINT NOT NULL, last_ms BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS log_entries (idx BIGINT PRIMARY KEY,"
        f" integrated_ms BIGINT NOT NULL, statement {blob} NOT NULL UNIQUE,"
        f" envelope {blob} NOT NULL)",
        "CREATE TABLE IF NOT EXISTS log_nodes (level INTEGER NOT NULL, idx BIGINT NOT NULL,"
        f" hash {blob} NOT NULL, PRIMARY KEY (level, idx))",
        "CREATE TABLE IF NOT EXISTS log_checkpoints (seq BIGINT PRIMARY KEY,"
        f" size BIGINT NOT NULL UNIQUE, root {blob} NOT NULL, note TEXT NOT NULL,"
        " created_ms BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS log_cosignatures (checkpoint_seq BIGINT NOT NULL,"
        " witness_vkey TEXT NOT NULL, line TEXT NOT NULL, timestamp BIGINT NOT NULL,"
        " PRIMARY KEY (checkpoint_seq, witness_vkey))",
        # The hub's statement "delivered" (the recipient fetched or was pushed the entry):
        # operational, not evidence; the signed acknowledgement is the evidence, in the log.
        "CREATE TABLE IF NOT EXISTS hub_deliveries (idx BIGINT NOT NULL, party TEXT NOT NULL,"
        " delivered_ms BIGINT NOT NULL, PRIMARY KEY (idx, party))",
        # Rows of a logged observations batch, beside the act that holds their SHA-256.
        f"CREATE TABLE IF NOT EXISTS hub_batches (idx BIGINT PRIMARY KEY, data {blob} NOT NULL)",
        "CREATE TABLE IF NOT EXISTS witness_state (origin TEXT PRIMARY KEY,"
        f" size BIGINT NOT NULL, root {blob} NOT NULL, note TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS hub_used_nonces (nonce TEXT PRIMARY KEY, exp BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS hub_snapshots (size BIGINT PRIMARY KEY, blob {blob} NOT NULL)",
        # Alerts (issue 15): each party's subscription, and every alert with its delivery.
        "CREATE TABLE IF NOT EXISTS hub_alert_subscriptions (party TEXT PRIMARY KEY, doc TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS hub_alert_outbox (akey TEXT PRIMARY KEY, party TEXT NOT NULL,"
        " channel TEXT NOT NULL, target TEXT NOT NULL, payload TEXT NOT NULL,"
        " created_ms BIGINT NOT NULL, attempts INTEGER NOT NULL, next_ms BIGINT NOT NULL,"
        " status TEXT NOT NULL, last_error TEXT, delivered_ms BIGINT)",
        "CREATE INDEX IF NOT EXISTS hub_alert_outbox_due ON hub_alert_outbox (status, next_ms)",
        "CREATE INDEX IF NOT EXISTS hub_alert_outbox_party ON hub_alert_outbox (party, created_ms)",
        # A national mirror (issue 16, ADR 0012): the hub's description of each entry its
        # party may read (checked against the entry it holds), and the hub's last answers to
        # its party's reads (the hub's word, served as such while the hub is down).
        "CREATE TABLE IF NOT EXISTS mirror_items (idx BIGINT PRIMARY KEY, integrated_ms BIGINT NOT NULL,"
        " author TEXT NOT NULL, kind TEXT NOT NULL, agreement TEXT, form TEXT, item TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS mirror_answers (path TEXT PRIMARY KEY, fetched_ms BIGINT NOT NULL,"
        " size BIGINT NOT NULL, body TEXT NOT NULL)",
    ]


@dataclass(frozen=True)
class MirrorItem:
    """One row of ``mirror_items``: the hub's item JSON and the columns its filters use."""

    idx: int
    ms: int
    author: str
    kind: str
    agreement: str | None
    form: str | None
    item: str


@dataclass(frozen=True)
class AlertRow:
    """One alert to send: where, what (JSON), and how often it was tried."""

    key: str
    channel: str
    target: str
    payload: str
    attempts: int
    lease: int
    """The ``next_ms`` the claim set: only its holder settles the row."""


class AppendWatch:
    """Waits until another process may have appended, or a timeout: the polling kind."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def wait(self, timeout: float) -> None:
        """Return after ``timeout`` seconds at most, sooner if an append was announced."""
        self._closed.wait(timeout)

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> AppendWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(ABC):
    """A log's (and a witness's) durable state. Thread-safe: one connection, one lock."""

    blob_type = "BLOB"

    def __init__(self) -> None:
        # One connection per store object; every statement takes this lock, and a
        # transaction holds it throughout, so no thread reads another's uncommitted rows.
        self._lock = threading.RLock()
        self._in_tx = False
        self._migrate()

    # ---- backend hooks ------------------------------------------------------------------

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders); return its rows (empty for writes)."""

    @abstractmethod
    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:  # another thread's open transaction must not be seen or joined
            return self._run(sql, params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            self._run_many(sql, rows)

    @abstractmethod
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction, committed durably on normal exit."""

    @abstractmethod
    def _lock_log_sql(self) -> str:
        """The statement that reads the log state and holds it until commit."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def url(self) -> str: ...

    # ---- schema -----------------------------------------------------------------------

    def _migrate_lock_sql(self) -> str | None:
        """A statement that serialises concurrent first opens (None: the transaction does)."""
        return None

    def _migrate(self) -> None:
        with self.transaction():
            lock = self._migrate_lock_sql()
            if lock:
                self._execute(lock)
            for stmt in _ddl(self.blob_type):
                self._execute(stmt)
            rows = self._execute("SELECT value FROM log_meta WHERE key = 'schema_version'")
            if not rows:
                self._execute(
                    "INSERT INTO log_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                self._execute("INSERT INTO log_state (id, size, last_ms) VALUES (1, 0, 0)")
            elif rows[0][0] != str(SCHEMA_VERSION):
                raise StoreError(
                    f"store {self.url}: schema version {rows[0][0]}, this cbmnet reads {SCHEMA_VERSION}"
                )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes of one logical step, atomically; nested uses join the outer one."""
        with self._lock:
            if self._in_tx:
                yield
                return
            self._in_tx = True
            try:
                with self._transaction():
                    yield
            finally:
                self._in_tx = False

    # ---- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._execute("SELECT value FROM log_meta WHERE key = ?", (key,))
        return _s(rows[0][0], f"log meta {key}") if rows else None

    def set_meta(self, key: str, value: str) -> None:
        # One statement, so two processes setting the same key never collide (a DELETE
        # then INSERT did: the alerts cursor of two hubs on one database).
        self._execute(
            "INSERT INTO log_meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # ---- log state ----------------------------------------------------------------------

    def lock_log(self) -> tuple[int, int]:
        """Inside a transaction: take the writer's lock; returns (size, last_ms)."""
        if not self._in_tx:
            raise RuntimeError("lock_log outside a transaction")
        rows = self._execute(self._lock_log_sql())
        if not rows:
            raise IntegrityError("the log state row is missing")
        return _i(rows[0][0], "log state size"), _i(rows[0][1], "log state time")

    def log_state(self) -> tuple[int, int]:
        rows = self._execute("SELECT size, last_ms FROM log_state WHERE id = 1")
        if not rows:
            raise IntegrityError("the log state row is missing")
        return _i(rows[0][0], "log state size"), _i(rows[0][1], "log state time")

    def relax_durability(self) -> None:  # noqa: B027 - PostgreSQL commits stay synchronous
        """For a connection that writes only operational records (deliveries), never the log."""

    def watch_appends(self) -> AppendWatch:
        """What a process waits on for other processes' appends: here, time alone (the
        caller then looks at ``log_state``); PostgreSQL wakes it at their commit."""
        return AppendWatch()

    def announce(self, size: int) -> None:  # noqa: B027 - a no-op where nobody listens
        """Inside the append transaction: tell other processes, at commit, the log grew."""

    def set_log_state(self, size: int, last_ms: int) -> None:
        self._execute("UPDATE log_state SET size = ?, last_ms = ? WHERE id = 1", (size, last_ms))

    # ---- entries and nodes --------------------------------------------------------------

    def insert_entries(self, rows: Sequence[tuple[int, int, bytes, bytes]]) -> None:
        """Rows of (idx, integrated_ms, statement digest, envelope)."""
        self._executemany(
            "INSERT INTO log_entries (idx, integrated_ms, statement, envelope) VALUES (?, ?, ?, ?)",
            rows,
        )

    def insert_nodes(self, rows: Sequence[tuple[int, int, bytes]]) -> None:
        self._executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", rows)

    def find_statements(self, digests: Sequence[bytes]) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for i in range(0, len(digests), MAX_NODES_PER_QUERY):
            chunk = digests[i : i + MAX_NODES_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            for idx, st in self._execute(
                f"SELECT idx, statement FROM log_entries WHERE statement IN ({marks})", chunk
            ):
                out[_b(st, f"entry {idx} statement")] = _i(idx, "entry index")
        return out

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out: dict[tuple[int, int], bytes] = {}
        for i in range(0, len(keys), MAX_NODES_PER_QUERY):
            chunk = keys[i : i + MAX_NODES_PER_QUERY]
            # An OR of point lookups: both engines answer it from the primary key, where
            # SQLite scans the table for a row-value IN (VALUES ...).
            where = " OR ".join(["(level = ? AND idx = ?)"] * len(chunk))
            params = [v for k in chunk for v in k]
            for level, idx, h in self._execute(
                f"SELECT level, idx, hash FROM log_nodes WHERE {where}", params
            ):
                key = (_i(level, "node level"), _i(idx, "node index"))
                out[key] = _b(h, f"tree node level {level} index {idx}")
        return out

    def nodes_at_level(self, level: int, lo: int, hi: int) -> dict[int, bytes]:
        """Stored hashes at ``level`` with ``lo <= idx < hi``."""
        rows = self._execute(
            "SELECT idx, hash FROM log_nodes WHERE level = ? AND idx >= ? AND idx < ?",
            (level, lo, hi),
        )
        return {_i(i, "node index"): _b(h, f"tree node level {level} index {i}") for i, h in rows}

    def node_counts(self) -> list[tuple[int, int, int, int]]:
        """Per level: (level, count, min idx, max idx)."""
        rows = self._execute(
            "SELECT level, COUNT(*), MIN(idx), MAX(idx) FROM log_nodes GROUP BY level ORDER BY level"
        )
        return [
            (_i(a, "node level"), _i(b, "node count"), _i(c, "node index"), _i(d, "node index"))
            for a, b, c, d in rows
        ]

    def entry_counts(self) -> tuple[int, int, int]:
        """(count, min idx, max idx); min and max are -1 when empty."""
        rows = self._execute("SELECT COUNT(*), MIN(idx), MAX(idx) FROM log_entries")
        n, lo, hi = rows[0]
        if n == 0:
            return 0, -1, -1
        return _i(n, "entry count"), _i(lo, "entry index"), _i(hi, "entry index")

    def get_entry(self, idx: int) -> StoredEntry | None:
        rows = self._execute(
            "SELECT idx, integrated_ms, envelope FROM log_entries WHERE idx = ?", (idx,)
        )
        return self._entry(rows[0]) if rows else None

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> StoredEntry:
        idx = _i(row[0], "entry index")
        statement = _b(row[3], f"entry {idx} statement") if len(row) > 3 else b""
        return StoredEntry(
            idx,
            _i(row[1], f"entry {idx} integration time"),
            _b(row[2], f"entry {idx} envelope"),
            statement,
        )

    def iter_entries(self, after: int = MIN_INDEX, chunk: int = 5000) -> Iterator[StoredEntry]:
        """Every entry with index > ``after``, in index order, read in chunks."""
        last = after
        while True:
            rows = self._execute(
                "SELECT idx, integrated_ms, envelope, statement FROM log_entries WHERE idx > ?"
                " ORDER BY idx LIMIT ?",
                (last, chunk),
            )
            if not rows:
                return
            for row in rows:
                yield self._entry(row)
            last = _i(rows[-1][0], "entry index")

    # ---- checkpoints and cosignatures ---------------------------------------------------

    def _checkpoint(self, row: tuple[Any, ...]) -> StoredCheckpoint:
        seq = _i(row[0], "checkpoint number")
        what = f"checkpoint #{seq}"
        return StoredCheckpoint(
            seq,
            _i(row[1], f"{what} size"),
            _b(row[2], f"{what} root"),
            _s(row[3], f"{what} note"),
            _i(row[4], f"{what} time"),
        )

    _CP_COLS = "seq, size, root, note, created_ms"

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = self._execute(f"SELECT {self._CP_COLS} FROM log_checkpoints ORDER BY seq DESC LIMIT 1")
        return self._checkpoint(rows[0]) if rows else None

    def checkpoint_covering(self, idx: int) -> StoredCheckpoint | None:
        """The latest checkpoint whose tree contains leaf ``idx``."""
        rows = self._execute(
            f"SELECT {self._CP_COLS} FROM log_checkpoints WHERE size > ? ORDER BY seq DESC LIMIT 1",
            (idx,),
        )
        return self._checkpoint(rows[0]) if rows else None

    def checkpoint_by_size(self, size: int) -> StoredCheckpoint | None:
        rows = self._execute(f"SELECT {self._CP_COLS} FROM log_checkpoints WHERE size = ?", (size,))
        return self._checkpoint(rows[0]) if rows else None

    def checkpoints_after(self, seq: int, limit: int) -> list[StoredCheckpoint]:
        rows = self._execute(
            f"SELECT {self._CP_COLS} FROM log_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [self._checkpoint(r) for r in rows]

    def cosignatures_between(self, lo: int, hi: int) -> list[StoredCosignature]:
        """Cosignatures of checkpoints ``lo <= seq <= hi``, in one query."""
        return self._cosignatures("WHERE checkpoint_seq >= ? AND checkpoint_seq <= ?", (lo, hi))

    def all_checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._execute(f"SELECT {self._CP_COLS} FROM log_checkpoints ORDER BY seq")
        return [self._checkpoint(r) for r in rows]

    def insert_checkpoint(self, cp: StoredCheckpoint) -> None:
        self._execute(
            "INSERT INTO log_checkpoints (seq, size, root, note, created_ms) VALUES (?, ?, ?, ?, ?)",
            (cp.seq, cp.size, cp.root_hash, cp.note, cp.created_ms),
        )

    def put_cosignature(self, cs: StoredCosignature) -> None:
        """Keep a witness's newest cosignature of a checkpoint (one per witness key)."""
        self._execute(
            "INSERT INTO log_cosignatures (checkpoint_seq, witness_vkey, line, timestamp)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (checkpoint_seq, witness_vkey)"
            " DO UPDATE SET line = excluded.line, timestamp = excluded.timestamp",
            (cs.checkpoint_seq, cs.witness_vkey, cs.line, cs.timestamp),
        )

    def cosignatures(self, seq: int | None = None) -> list[StoredCosignature]:
        if seq is None:
            return self._cosignatures("", ())
        return self._cosignatures("WHERE checkpoint_seq = ?", (seq,))

    def _cosignatures(self, where: str, params: Sequence[Any]) -> list[StoredCosignature]:
        rows = self._execute(
            "SELECT checkpoint_seq, witness_vkey, line, timestamp FROM log_cosignatures "
            f"{where} ORDER BY checkpoint_seq, witness_vkey",
            params,
        )
        return [
            StoredCosignature(
                _i(a, "cosignature checkpoint"),
                _s(b, "cosignature key"),
                _s(c, "cosignature line"),
                _i(d, "cosignature time"),
            )
            for a, b, c, d in rows
        ]

    # ---- witness state ------------------------------------------------------------------

    def witness_latest(self, origin: str) -> WitnessRecord | None:
        rows = self._execute(
            "SELECT origin, size, root, note FROM witness_state WHERE origin = ?", (origin,)
        )
        if not rows:
            return None
        o, s, r, n = rows[0]
        return WitnessRecord(
            _s(o, "witness origin"), _i(s, "witness size"), _b(r, "witness root"), _s(n, "witness note")
        )

    def witness_replace(self, expected: int | None, record: WitnessRecord) -> bool:
        """Compare-and-swap: store ``record`` only if the held size is still ``expected``."""
        with self.transaction():
            if expected is None:
                rows = self._execute(
                    "INSERT INTO witness_state (origin, size, root, note) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (origin) DO NOTHING RETURNING origin",
                    (record.origin, record.size, record.root_hash, record.note),
                )
                return bool(rows)
            rows = self._execute(
                "UPDATE witness_state SET size = ?, root = ?, note = ? WHERE origin = ? AND size = ?"
                " RETURNING origin",
                (record.size, record.root_hash, record.note, record.origin, expected),
            )
            return bool(rows)

    # ---- deliveries (the hub's operational record) ---------------------------------------

    def record_deliveries(self, rows: Sequence[tuple[int, str, int]]) -> None:
        """Rows of (entry index, party, ms); the first delivery of each pair is kept."""
        if not rows:
            return
        with self.transaction():
            self._executemany(
                "INSERT INTO hub_deliveries (idx, party, delivered_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (idx, party) DO NOTHING",
                rows,
            )

    def deliveries(self, idx: int) -> dict[str, int]:
        rows = self._execute("SELECT party, delivered_ms FROM hub_deliveries WHERE idx = ?", (idx,))
        return {_s(p, "delivery party"): _i(m, "delivery time") for p, m in rows}

    # ---- observation batches -------------------------------------------------------------

    def put_batch(self, idx: int, data: bytes) -> bool:
        """Store a batch's bytes once; False if some bytes were stored for it already."""
        with self.transaction():
            rows = self._execute(
                "INSERT INTO hub_batches (idx, data) VALUES (?, ?) ON CONFLICT (idx) DO NOTHING"
                " RETURNING idx",
                (idx, data),
            )
        return bool(rows)

    def get_batch(self, idx: int) -> bytes | None:
        rows = self._execute("SELECT data FROM hub_batches WHERE idx = ?", (idx,))
        return _b(rows[0][0], f"batch {idx}") if rows else None

    # ---- a national mirror's descriptions and the hub's answers (mirror/follow.py) --------

    def put_mirror_items(self, rows: Sequence[MirrorItem]) -> None:
        """The hub's description of entries the mirror's party may read (one transaction)."""
        with self.transaction():
            self._executemany(
                "INSERT INTO mirror_items (idx, integrated_ms, author, kind, agreement, form, item)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idx) DO NOTHING",
                [(r.idx, r.ms, r.author, r.kind, r.agreement, r.form, r.item) for r in rows],
            )

    def last_mirror_item(self) -> int:
        rows = self._execute("SELECT MAX(idx) FROM mirror_items")
        return -1 if not rows or rows[0][0] is None else _i(rows[0][0], "mirror item index")

    def mirror_items(
        self,
        after: int,
        limit: int,
        *,
        not_author: str | None = None,
        newest: bool = False,
        match: Mapping[str, str | int | None] | None = None,
    ) -> list[tuple[int, str]]:
        """(idx, item JSON) after ``after``, oldest first (``newest``: the last ``limit``,
        newest first); ``match``: author, kind, agreement, form equal, ``since``/``until``
        on the integration time; ``not_author``: that author's left out."""
        match = match or {}
        where: list[str] = ["idx > ?"]
        params: list[Any] = [after]
        for col in ("author", "kind", "agreement", "form"):
            if match.get(col) is not None:
                where.append(f"{col} = ?")
                params.append(match[col])
        if not_author is not None:
            where.append("author <> ?")
            params.append(not_author)
        if match.get("since") is not None:
            where.append("integrated_ms >= ?")
            params.append(match["since"])
        if match.get("until") is not None:
            where.append("integrated_ms < ?")
            params.append(match["until"])
        rows = self._execute(
            f"SELECT idx, item FROM mirror_items WHERE {' AND '.join(where)}"
            f" ORDER BY idx {'DESC' if newest else 'ASC'} LIMIT ?",
            (*params, limit),
        )
        return [(_i(i, "mirror item index"), _s(t, f"mirror item {i}")) for i, t in rows]

    def mirror_item(self, idx: int) -> str | None:
        rows = self._execute("SELECT item FROM mirror_items WHERE idx = ?", (idx,))
        return _s(rows[0][0], f"mirror item {idx}") if rows else None

    def put_mirror_answer(self, path: str, fetched_ms: int, size: int, body: str) -> None:
        self._execute(
            "INSERT INTO mirror_answers (path, fetched_ms, size, body) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET fetched_ms = excluded.fetched_ms,"
            " size = excluded.size, body = excluded.body",
            (path, fetched_ms, size, body),
        )

    def mirror_answer_time(self, path: str) -> int | None:
        """When the hub's last answer to ``path`` was fetched (without reading it)."""
        rows = self._execute("SELECT fetched_ms FROM mirror_answers WHERE path = ?", (path,))
        return _i(rows[0][0], "answer time") if rows else None

    def mirror_answer(self, path: str) -> tuple[int, int, str] | None:
        """(fetched_ms, log size then, body) of the hub's last answer to ``path``."""
        rows = self._execute("SELECT fetched_ms, size, body FROM mirror_answers WHERE path = ?", (path,))
        if not rows:
            return None
        ms, size, body = rows[0]
        return _i(ms, "answer time"), _i(size, "answer size"), _s(body, f"answer {path}")

    # ---- single-use nonces (sign-in challenges and codes, signed-out sessions) -----------

    def spend_nonce(self, nonce: str, exp_s: int, now_s: int) -> bool:
        """Mark ``nonce`` used until ``exp_s``; False if it was used already.

        Insert-or-fail in one transaction, so two processes redeeming one challenge at once
        cannot both succeed; rows past their expiry are pruned (what they guarded expired).
        """
        with self.transaction():
            self._execute("DELETE FROM hub_used_nonces WHERE exp < ?", (now_s,))
            rows = self._execute(
                "INSERT INTO hub_used_nonces (nonce, exp) VALUES (?, ?)"
                " ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
                (nonce, exp_s),
            )
        return bool(rows)

    def nonce_spent(self, nonce: str) -> bool:
        return bool(self._execute("SELECT 1 FROM hub_used_nonces WHERE nonce = ?", (nonce,)))

    # ---- alerts (operational: who asked to be told, and what was sent) ------------------

    def put_alert_subscription(self, party: str, doc: str | None) -> None:
        """Replace ``party``'s subscription (None: remove it)."""
        with self.transaction():
            self._execute("DELETE FROM hub_alert_subscriptions WHERE party = ?", (party,))
            if doc is not None:
                self._execute(
                    "INSERT INTO hub_alert_subscriptions (party, doc) VALUES (?, ?)", (party, doc)
                )

    def alert_subscriptions(self) -> dict[str, str]:
        rows = self._execute("SELECT party, doc FROM hub_alert_subscriptions")
        return {_s(p, "alert party"): _s(d, "alert subscription") for p, d in rows}

    def queue_alerts(self, rows: Sequence[tuple[str, str, str, str, str, int]]) -> int:
        """Rows of (key, party, channel, target, payload, created_ms); a key queued before is
        left as it is (each alert goes out once, whichever process derived it). Answers how
        many were new."""
        if not rows:
            return 0
        new = 0
        with self.transaction():
            for key, party, channel, target, payload, ms in rows:
                got = self._execute(
                    "INSERT INTO hub_alert_outbox (akey, party, channel, target, payload,"
                    " created_ms, attempts, next_ms, status) VALUES (?, ?, ?, ?, ?, ?, 0, ?, 'queued')"
                    " ON CONFLICT (akey) DO NOTHING RETURNING akey",
                    (key, party, channel, target, payload, ms, ms),
                )
                new += len(got)
        return new

    def claim_alerts(self, now_ms: int, lease_ms: int, limit: int) -> list[AlertRow]:
        """Alerts due now, each leased to this caller for ``lease_ms``: another process
        takes it only once the lease lapses (a claim is a compare-and-set on ``next_ms``)."""
        claimed: list[AlertRow] = []
        with self.transaction():
            rows = self._execute(
                "SELECT akey, channel, target, payload, attempts, next_ms FROM hub_alert_outbox"
                " WHERE status = 'queued' AND next_ms <= ? ORDER BY next_ms, akey LIMIT ?",
                (now_ms, limit),
            )
            for key, channel, target, payload, attempts, due in rows:
                won = self._execute(
                    "UPDATE hub_alert_outbox SET next_ms = ? WHERE akey = ? AND status = 'queued'"
                    " AND next_ms = ? RETURNING akey",
                    (now_ms + lease_ms, key, due),
                )
                if won:
                    claimed.append(
                        AlertRow(
                            _s(key, "alert key"),
                            _s(channel, "alert channel"),
                            _s(target, "alert target"),
                            _s(payload, "alert payload"),
                            _i(attempts, "alert attempts"),
                            now_ms + lease_ms,
                        )
                    )
        return claimed

    def settle_alert(
        self, key: str, lease: int, *, delivered_ms: int | None, error: str | None, retry_ms: int | None
    ) -> bool:
        """Record an attempt by the holder of ``lease``: delivered, or failed and retried at
        ``retry_ms`` (None: given up). False if the lease lapsed and another took the row."""
        with self.transaction():
            if delivered_ms is not None:
                got = self._execute(
                    "UPDATE hub_alert_outbox SET status = 'delivered', delivered_ms = ?,"
                    " attempts = attempts + 1, last_error = NULL"
                    " WHERE akey = ? AND next_ms = ? AND status = 'queued' RETURNING akey",
                    (delivered_ms, key, lease),
                )
            else:
                got = self._execute(
                    "UPDATE hub_alert_outbox SET status = ?, next_ms = COALESCE(?, next_ms),"
                    " attempts = attempts + 1, last_error = ?"
                    " WHERE akey = ? AND next_ms = ? AND status = 'queued' RETURNING akey",
                    ("queued" if retry_ms is not None else "failed", retry_ms, error, key, lease),
                )
        return bool(got)

    def prune_alerts(self, before_ms: int) -> None:
        """Forget delivered and abandoned alerts derived before ``before_ms``."""
        with self.transaction():
            self._execute(
                "DELETE FROM hub_alert_outbox WHERE status <> 'queued' AND created_ms < ?", (before_ms,)
            )

    def alert_log(self, party: str, limit: int) -> list[dict[str, Any]]:
        """``party``'s latest alerts and how their delivery went, newest first."""
        rows = self._execute(
            "SELECT akey, channel, target, payload, created_ms, attempts, status, last_error,"
            " delivered_ms FROM hub_alert_outbox WHERE party = ? ORDER BY created_ms DESC LIMIT ?",
            (party, limit),
        )
        names = ("key", "channel", "target", "payload", "created_ms", "attempts", "status", "last_error")
        return [{**dict(zip(names, r[:8], strict=True)), "delivered_ms": r[8]} for r in rows]

    # ---- the hub state's snapshot (operational: the log rebuilds it) ---------------------

    def put_snapshot(self, size: int, blob: bytes) -> None:
        """Keep ``blob`` (the hub state at log size ``size``) as the only snapshot: the last
        written wins, so a bad one is replaced by the next, whatever size it claims."""
        with self.transaction():
            self._execute("DELETE FROM hub_snapshots")
            self._execute("INSERT INTO hub_snapshots (size, blob) VALUES (?, ?)", (size, blob))

    def latest_snapshot(self) -> tuple[int, bytes] | None:
        """(log size, blob) of the snapshot kept, or None."""
        rows = self._execute("SELECT size, blob FROM hub_snapshots ORDER BY size DESC LIMIT 1")
        if not rows:
            return None
        size = _i(rows[0][0], "hub snapshot size")
        return size, _b(rows[0][1], f"hub snapshot at {size}")
