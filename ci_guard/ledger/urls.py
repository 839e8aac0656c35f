"""Ledger URLs: which backend, where, and a printable form with no password in it.

* ``sqlite:///relative/path.db`` (relative to the working directory, whose directory must exist),
  ``sqlite:////abs/path.db`` or just ``/abs/path.db`` (directories are created)
* ``postgresql://user:password@host:5432/db?schema=ci_guard`` (``postgres://`` too); ``schema``
  is ci-guard's own parameter and names the PostgreSQL schema of the tables (default ``ci_guard``);
  every other parameter goes to libpq unchanged (``sslmode``, ``connect_timeout``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from ci_guard import secrets
from ci_guard.errors import InvalidInputError, Problem

DEFAULT_SCHEMA = "ci_guard"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SECRET_PARAMS = ("password", "sslpassword")


@dataclass(frozen=True)
class LedgerURL:
    backend: str  # "sqlite" | "postgres"
    redacted: str  # safe to print
    path: str | None = None  # sqlite: the database file
    conninfo: str | None = None  # postgres: the libpq URL without ci-guard's own parameters
    schema: str = DEFAULT_SCHEMA


def parse_ledger_url(url: str) -> LedgerURL:
    url = url.strip()
    if url.startswith("/"):  # a plain absolute path: a SQLite file
        return LedgerURL(backend="sqlite", redacted=url, path=url)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in ("postgresql", "postgres"):
        return _postgres(url)
    raise _bad(url, "expected an absolute path, sqlite:///path.db or postgresql://user@host:port/db[?schema=name]")


def redact_url(url: str) -> str:
    """``url`` with the password (in the authority or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return secrets.redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = urlencode([(k, "***" if k in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query)])
    return secrets.redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def _sqlite(url: str) -> LedgerURL:
    if not url.lower().startswith("sqlite:///"):
        raise _bad(url, "expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
    path = unquote(url[len("sqlite:///"):].split("?", 1)[0])
    if not path:
        raise _bad(url, "the database path is empty")
    return LedgerURL(backend="sqlite", redacted=url, path=path)


def _postgres(url: str) -> LedgerURL:
    parts = urlsplit(url)
    if parts.password:
        secrets.register(unquote(parts.password))
    params = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in params:
        if key in _SECRET_PARAMS:
            secrets.register(value)
    schema = DEFAULT_SCHEMA
    rest = []
    for key, value in params:
        if key == "schema":
            schema = value.strip().lower()
        else:
            rest.append((key, value))
    redacted = redact_url(url)
    if not _IDENT.match(schema):
        raise _bad(redacted, f"schema {schema!r} is not a plain identifier (letters, digits, underscore)")
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest, quote_via=quote), ""))
    return LedgerURL(backend="postgres", redacted=redacted, conninfo=conninfo, schema=schema)


def _bad(url: str, message: str) -> InvalidInputError:
    return InvalidInputError("invalid ledger URL", [Problem(message, file=redact_url(url), field="ledger")])
