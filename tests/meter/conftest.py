"""Meter fixtures: ``any_ledger`` is a ledger URL on SQLite and on the test PostgreSQL server."""

from __future__ import annotations

import pytest

from tests.ledger.conftest import _empty, pg_schema, pg_url  # noqa: F401  (pg_schema: a fixture)


@pytest.fixture(params=["sqlite", "postgres"])
def any_ledger(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    schema = request.getfixturevalue("pg_schema")
    _empty(schema)
    return pg_url(schema)
