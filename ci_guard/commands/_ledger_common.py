"""Helpers shared by the `prices`, `cost`, `budget` and `ledger` commands."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

# Re-exported for the commands: the text table lives in report/ so the library (preview/) uses it too.
from ci_guard.report.table import table as table

F = TypeVar("F", bound=Callable[..., Any])
# The exit status of the commands that read (or annotate) an existing ledger, for their --help.
LEDGER_EXIT_STATUS = """\b
Exit status: 0 done; 2 invalid input (a bad flag or value, or no ledger at the given path:
these commands never create one); 3 the ledger is unreachable.
"""
_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def load_policy(path: str) -> Any:
    from ci_guard.policy.loader import load_policy_file

    return load_policy_file(path)


def catalog_for(policy_path: str | None) -> Any:
    """The price catalog, with the policy's ``pricing:`` section applied when a policy is given."""
    from ci_guard.pricing.catalog import load_catalog

    if not policy_path:
        return load_catalog()
    policy = load_policy(policy_path)
    return load_catalog(policy.pricing, base_dir=Path(policy_path).resolve().parent)


def ledger_option(func: F) -> F:
    return click.option("--ledger", "ledger_url", metavar="URL", envvar="CI_GUARD_LEDGER",
                        help="sqlite:///path.db or postgresql://user@host/db?schema=name "
                             "or an absolute path (default: $CI_GUARD_LEDGER, else $RUNNER_TEMP/ci-guard/ledger.db, "
                             "else ~/.local/state/ci-guard/ledger.db).")(func)


def format_option(func: F) -> F:
    return click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Output format.")(func)


def parse_moment(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> datetime | None:
    """An ISO 8601 date/time (UTC when no offset) or a duration back from now: 30m, 24h, 7d, 2w."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"expected an ISO 8601 time (2026-03-01, 2026-03-01T12:00Z) or 7d / 24h, "
                                 f"got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def usd(value: Any, precise: bool = False) -> str:
    from ci_guard.money import format_usd

    return format_usd(value, precise=precise)
