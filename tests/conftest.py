"""Shared fixtures: both store backends, real servers only.

PostgreSQL tests use ``CBMNET_TEST_POSTGRES_URL`` (``.ci/run`` sets it). Each test gets a
schema of its own, dropped afterwards. Without a reachable server they skip locally, with
the reason, and fail in CI (``CI=true``), where skipping would hide a broken backend.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from cbmnet.ledger.note import generate_key
from cbmnet.log.service import TransparencyLog
from cbmnet.store import open_store
from cbmnet.store.sql import Store

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
pytest_plugins = ["tests.browserkit", "tests.gokit"]  # `browser` (Debian chromium), `tlogtiles` (Go)
# The CLI writes in the language of the environment; the tests read its English unless
# they ask for another (before cbmnet.cli is imported by any test module).
os.environ["CBMNET_LANG"] = "en"


def pg_base_url() -> str:
    """The server URL, or skip (locally) / fail (CI) with the reason."""
    url = os.environ.get("CBMNET_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        msg = f"PostgreSQL not reachable at {url}: {e}".strip()
        if os.environ.get("CI"):
            pytest.fail(msg + " (in CI the PostgreSQL tests must run)")
        pytest.skip(msg)
    return url


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    base = pg_base_url()
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, create=True)
    yield s
    s.close()


@pytest.fixture
def log_key() -> tuple[str, str]:
    return generate_key("log.cbmnet.test/tlog")


@pytest.fixture
def author_key() -> tuple[str, str]:
    return generate_key("party.test/PK")


@pytest.fixture
def tlog(store: Store, log_key: tuple[str, str]) -> TransparencyLog:
    return TransparencyLog.create(store, log_key[0])


@pytest.fixture
def asset() -> Callable[[str], Path]:
    """A file of tests/assets/ (peer test data, copied in with its source: assets/README.md)."""

    def get(name: str) -> Path:
        p = ASSETS / name
        if not p.exists():
            pytest.fail(f"test asset {p} is missing")
        return p

    return get
