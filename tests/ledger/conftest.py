"""Ledger fixtures: every store test runs against SQLite and a real PostgreSQL server.

PostgreSQL tests use one schema per test session (``cig_test_<pid>_<random>``), emptied before
each test and dropped at the end. Locally they skip when the server is down; in CI they fail
(`tests.helpers.require`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.helpers import require

PG_SERVER = os.environ.get("CI_GUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = ("calls", "runs", "run_budget_keys", "budget_rollups", "reservations", "pr_outcomes", "alerts_sent")


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_SERVER, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    require(pg_available(), f"PostgreSQL is not reachable at {PG_SERVER}")
    import psycopg

    name = f"cig_test_{os.getpid()}_{secrets.token_hex(3)}"
    yield name
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def pg_url(schema: str) -> str:
    return f"{PG_SERVER}?schema={schema}"


def _empty(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.runs",)).fetchone()[0]
        if exists:
            conn.execute(f"TRUNCATE {', '.join(f'{schema}.{t}' for t in TABLES)}")


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    schema = request.getfixturevalue("pg_schema")
    _empty(schema)
    return pg_url(schema)


@pytest.fixture
def store(ledger_url: str):
    from ci_guard.ledger import open_ledger

    opened = open_ledger(ledger_url)
    yield opened
    opened.close()
