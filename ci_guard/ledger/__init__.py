"""The ledger: runs, calls, budget rollups and reservations (SQLite or PostgreSQL).

``open_ledger(url)`` picks the backend from the URL and applies pending migrations::

    store = open_ledger()                                         # CI_GUARD_LEDGER or the default file
    store = open_ledger("postgresql://ci@db:5432/ci?schema=ci_guard")
    store = open_ledger(url, create=False)                        # read-only commands: never create one

The default SQLite ledger lives outside the checkout the agent works in (see :func:`default_ledger_path`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ci_guard.ledger.store import BudgetKey, Reservation, Store

ENV_VAR = "CI_GUARD_LEDGER"


def default_ledger_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the ledger lives when none is configured: never in the agent's working directory.

    * GitHub Actions: ``$RUNNER_TEMP/ci-guard/ledger.db`` -- the same for every step of a job (so
      `start`, `stop` and `comment` find it), emptied after the job, outside ``$GITHUB_WORKSPACE``.
    * Elsewhere (GitLab, a laptop): ``$XDG_STATE_HOME/ci-guard/ledger.db``, by default
      ``~/.local/state/ci-guard/ledger.db``.
    """
    env = os.environ if environ is None else environ
    if env.get("RUNNER_TEMP"):
        return Path(env["RUNNER_TEMP"]).resolve() / "ci-guard" / "ledger.db"
    state = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(state).resolve() / "ci-guard" / "ledger.db"


def default_url(environ: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{default_ledger_path(environ)}"  # an absolute path: sqlite:////...


def ledger_url(url: str | None = None) -> str:
    """The ledger URL in force: the argument, else ``$CI_GUARD_LEDGER``, else the default file."""
    return url or os.environ.get(ENV_VAR) or default_url()


def open_ledger(url: str | None = None, *, auto_migrate: bool = True, create: bool = True) -> Store:
    """Open the ledger at ``url``; raise LedgerUnavailableError (secret-free) when it cannot be reached.

    ``create=False`` (read-only commands): a SQLite ledger that does not exist is an error
    (LedgerNotFoundError, exit 2), never an empty file reported as $0. A relative SQLite path
    (``sqlite:///dir/l.db``) is relative to the working directory -- the checkout -- and its
    directory must exist; ci-guard creates directories only for absolute paths and the default.
    """
    from ci_guard.ledger.urls import parse_ledger_url

    given = url or os.environ.get(ENV_VAR)
    parsed = parse_ledger_url(given or default_url())
    if parsed.backend == "sqlite":
        from ci_guard.ledger.sqlite import SqliteStore

        _check_sqlite_path(Path(parsed.path or ""), parsed.redacted, configured=bool(given), create=create)
        return SqliteStore(parsed, auto_migrate=auto_migrate)
    from ci_guard.ledger.postgres import PostgresStore  # psycopg is imported only when needed

    return PostgresStore(parsed, auto_migrate=auto_migrate)


def _check_sqlite_path(path: Path, shown: str, *, configured: bool, create: bool) -> None:
    from ci_guard.errors import InvalidInputError, LedgerNotFoundError, Problem

    if not create and not path.exists():
        if configured:
            raise LedgerNotFoundError(f"no ledger at {path}: the file does not exist (from --ledger or {ENV_VAR}); "
                                      f"read-only commands never create one")
        raise LedgerNotFoundError(f"no ledger configured (--ledger or {ENV_VAR}) and none at the default "
                                  f"{path}; read-only commands never create one")
    if create and not path.is_absolute() and not path.parent.is_dir():
        raise InvalidInputError("invalid ledger URL", [Problem(
            f"{path} is relative to the working directory ({Path.cwd()}) and its directory {path.parent} does not "
            f"exist; ci-guard does not create directories inside the checkout: create it, or give an absolute "
            f"path (sqlite:////{path} or /{path} for /{path})", file=shown, field="ledger")])


__all__ = ["ENV_VAR", "BudgetKey", "Reservation", "Store", "default_ledger_path", "default_url", "ledger_url",
           "open_ledger"]
