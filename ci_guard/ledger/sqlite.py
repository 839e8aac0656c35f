"""The SQLite ledger: one file, WAL mode, enough for one runner or one repository.

``BEGIN IMMEDIATE`` takes the write lock at the start of every write transaction, which makes a
reservation (read spent + outstanding, then insert) a single serial step across processes;
``busy_timeout`` makes concurrent writers queue instead of failing. ``synchronous=FULL`` makes a
committed call durable even across a power cut, not only a killed process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ci_guard.errors import CiGuardError, LedgerError, LedgerUnavailableError
from ci_guard.ledger import migrations
from ci_guard.ledger.periods import as_utc
from ci_guard.ledger.sqlstore import SqlStore, Tx
from ci_guard.ledger.urls import LedgerURL
from ci_guard.secrets import redact

BUSY_TIMEOUT_S = 60.0
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so text order is time order


class SqliteStore(SqlStore):
    backend = "sqlite"

    def __init__(self, url: LedgerURL, auto_migrate: bool = True) -> None:
        super().__init__(url.redacted)
        self.path = Path(url.path or "")
        self._conn = self._connect()
        if auto_migrate and not migrations.versions(self.backend) <= self._applied():
            self.migrate()

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA synchronous=FULL")
            return conn
        except (OSError, sqlite3.Error) as exc:
            raise LedgerUnavailableError(
                f"cannot open the SQLite ledger {self.url}: {redact(str(exc))}"
            ) from None

    def _applied(self) -> set[int]:
        try:
            return {int(r[0]) for r in self._conn.execute("SELECT version FROM schema_version")}
        except sqlite3.OperationalError:  # no schema_version table yet
            return set()

    def migrate(self) -> int:
        return self._op(self._apply_migrations)

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Tx]:
        cursor = self._conn.cursor()
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield Tx(cursor, self._q)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def _translate_error(self, exc: BaseException) -> CiGuardError | None:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return LedgerUnavailableError(f"the SQLite ledger {self.url} stayed locked for "
                                          f"{BUSY_TIMEOUT_S:.0f}s: {exc}")
        if isinstance(exc, sqlite3.Error):
            return LedgerError(f"SQLite ledger {self.url}: {redact(str(exc))}")
        return None

    def _prepare_scan(self, tx: Tx) -> None:
        # reports read a month of calls by index: mapped pages instead of a read() per page
        tx.run("PRAGMA mmap_size=1073741824")
        tx.run("PRAGMA cache_size=-65536")

    def _ts(self, moment: datetime | None) -> Any:
        return None if moment is None else as_utc(moment).strftime(_TS_FORMAT)

    def _dt(self, value: Any) -> datetime | None:
        if value is None:
            return None
        # fromisoformat reads the fixed format ("...T12:00:00.000000Z") ten times faster than strptime
        return datetime.fromisoformat(value)

    def _bool(self, value: bool) -> int:
        return 1 if value else 0

    def close(self) -> None:
        self._conn.close()
