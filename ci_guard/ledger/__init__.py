"""The ledger: runs, calls, budget rollups and reservations (SQLite or PostgreSQL).

``open_ledger(url)`` picks the backend from the URL and applies pending migrations::

    store = open_ledger()                                         # CI_GUARD_LEDGER or .ci-guard/ledger.db
    store = open_ledger("postgresql://ci@db:5432/ci?schema=ci_guard")
"""

from __future__ import annotations

import os

from ci_guard.ledger.store import BudgetKey, Reservation, Store

DEFAULT_URL = "sqlite:///.ci-guard/ledger.db"
ENV_VAR = "CI_GUARD_LEDGER"


def ledger_url(url: str | None = None) -> str:
    """The ledger URL in force: the argument, else ``$CI_GUARD_LEDGER``, else the local SQLite file."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def open_ledger(url: str | None = None, *, auto_migrate: bool = True) -> Store:
    """Open the ledger at ``url``; raise LedgerUnavailableError (secret-free) when it cannot be reached."""
    from ci_guard.ledger.urls import parse_ledger_url

    parsed = parse_ledger_url(ledger_url(url))
    if parsed.backend == "sqlite":
        from ci_guard.ledger.sqlite import SqliteStore

        return SqliteStore(parsed, auto_migrate=auto_migrate)
    from ci_guard.ledger.postgres import PostgresStore  # psycopg is imported only when needed

    return PostgresStore(parsed, auto_migrate=auto_migrate)


__all__ = ["DEFAULT_URL", "ENV_VAR", "BudgetKey", "Reservation", "Store", "ledger_url", "open_ledger"]
