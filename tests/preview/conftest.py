"""The ledger fixtures of tests/ledger (SQLite and PostgreSQL) for the what-if tests."""

from tests.ledger.conftest import ledger_url, pg_schema, store  # noqa: F401
