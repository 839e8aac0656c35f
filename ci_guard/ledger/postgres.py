"""The PostgreSQL ledger: one shared database for every runner of an organisation.

Tables live in their own schema (``?schema=``, default ``ci_guard``), selected per connection
with ``search_path``, so the ledger can share a database with other applications. Reservations
lock the rollup rows of all their keys in one fixed order (see :mod:`ci_guard.ledger.sqlstore`);
deadlocks and serialization failures are retried. A process opens one connection and reopens it
after a fork or a lost connection.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ci_guard.errors import CiGuardError, LedgerError, LedgerUnavailableError
from ci_guard.ledger import migrations
from ci_guard.ledger.sqlstore import SqlStore, Tx
from ci_guard.ledger.urls import LedgerURL
from ci_guard.secrets import redact

CONNECT_TIMEOUT_S = 10


class PostgresStore(SqlStore):
    backend = "postgres"
    placeholder = "%s"
    true_sql, false_sql = "TRUE", "FALSE"
    lock_suffix = " FOR UPDATE"
    retries = 8

    def __init__(self, url: LedgerURL, auto_migrate: bool = True) -> None:
        super().__init__(url.redacted)
        self.schema = url.schema
        self._conninfo = url.conninfo or ""
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        self._connection()
        if auto_migrate and not migrations.versions(self.backend) <= self._applied():
            self.migrate()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and self._pid == os.getpid():
            return self._conn
        extra: dict[str, Any] = {"options": f"-c search_path={self.schema}"}
        if "connect_timeout=" not in self._conninfo:
            extra["connect_timeout"] = CONNECT_TIMEOUT_S
        try:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise LedgerUnavailableError(
                f"cannot reach the PostgreSQL ledger {self.url}: {_first_line(exc)}"
            ) from None
        self._pid = os.getpid()
        return self._conn

    def _applied(self) -> set[int]:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                # one round trip on every open (a launch of `ci-guard run` opens the ledger once)
                cur.execute("SELECT version FROM schema_version")
                return {int(r[0]) for r in cur.fetchall()}
        except pg_errors.UndefinedTable:  # a new schema (autocommit: nothing to roll back)
            return set()
        except psycopg.Error as exc:
            raise self._translate_error(exc) from None  # type: ignore[misc]

    def migrate(self) -> int:
        def apply(tx: Tx) -> int:
            # one migrator at a time per schema, even when 64 jobs open the ledger at once
            tx.run("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(f"ci-guard:{self.schema}".encode()),))
            # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists,
            # which a schema owner set up by an admin (docs/ledger.md) does not have
            if tx.one("SELECT 1 FROM pg_namespace WHERE nspname = ?", (self.schema,)) is None:
                tx.run(f"CREATE SCHEMA {self.schema}")
            return self._apply_migrations(tx)

        return self._op(apply)

    def _schema_version_ddl(self) -> str:
        return ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Tx]:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cursor:
            yield Tx(cursor, self._q)

    @contextmanager
    def _snapshot(self) -> Iterator[Tx]:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield Tx(cursor, self._q)

    def _stream(self, tx: Tx, sql: str, params: Sequence[Any], page: int) -> Iterator[list[tuple[Any, ...]]]:
        # COPY streams the rows as they are produced (a plain query would be read whole into memory)
        with tx.cursor.copy(f"COPY ({self._q(sql)}) TO STDOUT", tuple(params)) as copy:
            rows: list[tuple[Any, ...]] = []
            for row in copy.rows():
                rows.append(row)
                if len(rows) >= page:
                    yield rows
                    rows = []
            if rows:
                yield rows

    def _encoding(self, tx: Tx) -> str:
        return tx.cursor.connection.info.encoding

    def _stream_lines(self, tx: Tx, sql: str, params: Sequence[Any], page: int) -> Iterator[tuple[int, bytes]]:
        # COPY's binary format: each value as the server holds it (the text format escapes
        # backslashes, tabs and newlines: scanning a month's ~0.7 GB of lines for them cost the
        # server ~0.5 s). A one-column row is a field count (2 bytes) and the value's length (4)
        # before the value; the first comes after the header (signature, flags, extension length,
        # extension) and the last message is the trailer (a field count of -1). The values are
        # appended to the page as they come: no Python object kept per row.
        with tx.cursor.copy(f"COPY ({self._q(sql)}) TO STDOUT (FORMAT binary)", tuple(params)) as copy:
            messages = iter(copy)
            head = memoryview(bytes(next(messages)))
            data, rows = bytearray(), 0
            for row in itertools.chain([head[19 + int.from_bytes(head[15:19], "big"):]], messages):
                if len(row) == 2:  # the trailer (read on to the end: COPY is over when psycopg reads that)
                    continue
                data += row[6:]
                rows += 1
                if rows >= page:
                    yield rows, bytes(data)
                    data, rows = bytearray(), 0
            if rows:
                yield rows, bytes(data)

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
            return True
        if isinstance(exc, psycopg.OperationalError) and self._conn is not None and self._conn.closed:
            self._conn = None  # connection lost: reconnect on the next attempt
            return True
        return False

    def _translate_error(self, exc: BaseException) -> CiGuardError | None:
        if isinstance(exc, psycopg.OperationalError):
            return LedgerUnavailableError(f"lost the PostgreSQL ledger {self.url}: {_first_line(exc)}")
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return LedgerError(f"PostgreSQL ledger {self.url}: {_first_line(exc)}; this role lacks a privilege "
                               "(schema changes need the owner: `ci-guard ledger migrate`; roles: docs/ledger.md)")
        if isinstance(exc, psycopg.Error):
            return LedgerError(f"PostgreSQL ledger {self.url}: {_first_line(exc)}")
        return None

    def _bulk(self, tx: Tx, table: str, cols: Sequence[str], rows: list[Sequence[Any]]) -> None:
        # COPY: a month of history in seconds instead of one round trip per row
        if rows:
            with tx.cursor.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)
