"""`ci-guard ledger`: migrate the schema, list runs and calls, record outcomes, monthly reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from ci_guard.commands._ledger_common import LEDGER_EXIT_STATUS, format_option, ledger_option, parse_moment, table, usd

EPILOG = """\b
Examples:
  ci-guard ledger migrate --ledger postgresql://ci_owner@db/ci?schema=ci_guard
  ci-guard ledger runs --repo acme/api --since 7d
  ci-guard ledger calls --run 01J9Z... --format json
  ci-guard ledger outcome 01J9Z... merged
  ci-guard ledger report --month 2026-03 --by repo   # = ci-guard report
  ci-guard ledger export --month 2026-03 -o focus-2026-03.csv
  ci-guard ledger dashboard --month 2026-03 -o spend.html
"""


@click.group(epilog=EPILOG + "\n" + LEDGER_EXIT_STATUS)
def ledger() -> None:
    """Ledger operations: migrate, runs, calls, outcome, report, export, dashboard."""


def _open(url: str | None) -> Any:
    """Open an existing ledger: these commands read (or annotate) it and never create one."""
    from ci_guard.ledger import open_ledger

    return open_ledger(url, create=False)


@ledger.command()
@ledger_option
def migrate(ledger_url: str | None) -> int:
    """Create or upgrade the ledger schema (also done automatically on first use).

    \b
    Examples:
      ci-guard ledger migrate --ledger sqlite:///$HOME/.ci-guard/ledger.db
      ci-guard ledger migrate --ledger postgresql://ci_owner@db/ci?schema=ci_guard
    """
    from ci_guard.ledger import open_ledger

    store = open_ledger(ledger_url, auto_migrate=False)
    try:
        version = store.migrate()
    finally:
        store.close()
    click.echo(f"ledger {store.url}: schema version {version}")
    return 0


def _filters(func: Any) -> Any:
    for option in reversed([
        click.option("--repo", help="Only this repository."),
        click.option("--pr", type=int, help="Only this pull/merge request number."),
        click.option("--since", callback=parse_moment, metavar="TIME", help="ISO 8601 time, or 7d / 24h / 30m."),
        click.option("--status", help="Only runs/calls with this status."),
        click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True),
    ]):
        func = option(func)
    return func


@ledger.command()
@ledger_option
@_filters
@format_option
def runs(ledger_url: str | None, repo: str | None, pr: int | None, since: datetime | None, status: str | None,
         limit: int, fmt: str) -> int:
    """Most recent runs first.

    \b
    Examples:
      ci-guard ledger runs --repo acme/api --since 7d
      ci-guard ledger runs --pr 42 --status stopped --format json
    """
    store = _open(ledger_url)
    try:
        found = store.list_runs(repo=repo, pr=pr, since=since, status=status, limit=limit)
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([_run_json(r) for r in found], indent=2))
        return 0
    click.echo(table(["run", "started (UTC)", "repo", "pr", "agent", "model", "status", "turns", "cost", "outcome"],
                     [[r.run_id, f"{r.started_at:%Y-%m-%d %H:%M}", r.repo, r.pr, r.agent, r.model,
                       r.status + (f" ({r.stop_reason})" if r.stop_reason else ""), r.turns, usd(r.cost_usd, True),
                       r.outcome] for r in found], right=(7, 8)))
    return 0


@ledger.command()
@ledger_option
@click.option("--run", "run_id", help="Only the calls of this run, in order.")
@_filters
@format_option
def calls(ledger_url: str | None, run_id: str | None, repo: str | None, pr: int | None, since: datetime | None,
          status: str | None, limit: int, fmt: str) -> int:
    """Most recent calls first (or one run's calls in order).

    \b
    Examples:
      ci-guard ledger calls --run 01J9Z... --format json
      ci-guard ledger calls --repo acme/api --since 24h --status refused
    """
    store = _open(ledger_url)
    try:
        found = store.list_calls(run_id, limit=limit, repo=repo, pr=pr, since=since, status=status)
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([_call_json(c) for c in found], indent=2))
        return 0
    click.echo(table(["run", "seq", "ended (UTC)", "model", "status", "input", "cache r/w", "output", "tools", "cost"],
                     [[c.run_id, c.seq, f"{c.ended_at:%Y-%m-%d %H:%M:%S}", c.model_served or c.model_requested,
                       c.status, f"{c.usage.input_tokens:,}",
                       f"{c.usage.cache_read_tokens:,}/{c.usage.cache_write_tokens:,}", f"{c.usage.output_tokens:,}",
                       c.tool_calls, usd(c.cost_usd, True)] for c in found], right=(1, 5, 6, 7, 8, 9)))
    return 0


def _add_aliases() -> None:
    # `ledger report|outcome|dashboard` are `ci-guard report|outcome|dashboard` (kept for existing scripts)
    from ci_guard.commands.dashboard import dashboard
    from ci_guard.commands.outcome import outcome
    from ci_guard.commands.report import report

    ledger.add_command(report, "report")
    ledger.add_command(outcome, "outcome")
    ledger.add_command(dashboard, "dashboard")


_add_aliases()


@ledger.command()
@ledger_option
@click.option("--month", metavar="YYYY-MM", help="Calendar month in UTC (default: the current one).")
@click.option("--format", "fmt", type=click.Choice(["focus-csv", "focus-jsonl"]), default="focus-csv",
              show_default=True, help="FinOps FOCUS cost-and-usage rows, as CSV or JSON lines.")
@click.option("--output", "-o", metavar="FILE", default="-", show_default=True,
              help="Where to write; a file is written whole or not at all.")
def export(ledger_url: str | None, month: str | None, fmt: str, output: str) -> int:
    """Every call of one month as FinOps FOCUS charge rows (for FinOps tools and warehouses).

    \b
    Examples:
      ci-guard ledger export --month 2026-03 -o ci-agents-2026-03.csv
      ci-guard ledger export --format focus-jsonl | jq -r .BilledCost
    """
    import sys

    from ci_guard.files import atomic_text_file
    from ci_guard.report import focus_sql
    from ci_guard.report.focus import write_focus_jsonl_pages

    start, end = _month_bounds(month)
    store = _open(ledger_url)

    def write(out: Any) -> int:
        if fmt == "focus-csv":  # each CSV line's call columns formatted by the database
            return focus_sql.write_focus_csv_month(store, start, end, out)
        return write_focus_jsonl_pages(store.export_rows(start, end), out)  # plain tuples, formatted in bulk

    try:
        if output == "-":
            count = write(sys.stdout)
        else:
            with atomic_text_file(output) as out:
                count = write(out)
    finally:
        store.close()
    if output != "-":
        click.echo(f"{start:%Y-%m}: {count} calls written to {output}", err=True)
    return 0


def _month_bounds(month: str | None) -> tuple[datetime, datetime]:
    from ci_guard.ledger.periods import period_bounds

    anchor = datetime.now(UTC)
    if month:
        try:
            anchor = datetime.strptime(month + "-01", "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise click.BadParameter(f"expected YYYY-MM, got {month!r}", param_hint="--month") from None
    return period_bounds("month", "UTC", anchor)


def _run_json(r: Any) -> dict[str, Any]:
    from ci_guard.money import usd_json

    return {"run_id": r.run_id, "started_at": r.started_at.isoformat(),
            "ended_at": r.ended_at.isoformat() if r.ended_at else None, "decision": r.decision, "status": r.status,
            "stop_reason": r.stop_reason, "outcome": r.outcome, "org": r.org, "team": r.team, "repo": r.repo,
            "user": r.user, "workflow": r.workflow, "agent": r.agent, "environment": r.environment,
            "trigger": r.trigger, "pr": r.pr, "branch": r.branch, "cohort": r.cohort, "platform": r.platform,
            "rule": r.rule, "model": r.model, "limits": r.limits, "enforced": r.enforced, "turns": r.turns,
            "tool_calls": r.tool_calls, "tokens": r.usage.as_json(), "web_searches": r.web_searches,
            "cost_usd": usd_json(r.cost_usd), "context_saved_usd": usd_json(r.context_saved_usd),
            "agent_exit_code": r.agent_exit_code, "session_id": r.session_id}


def _call_json(c: Any) -> dict[str, Any]:
    from ci_guard.money import usd_json

    return {"run_id": c.run_id, "seq": c.seq, "started_at": c.started_at.isoformat(),
            "ended_at": c.ended_at.isoformat(), "provider": c.provider, "endpoint": c.endpoint,
            "model_requested": c.model_requested, "model_served": c.model_served, "status": c.status,
            "http_status": c.http_status, "stream": c.stream, "tokens": c.usage.as_json(),
            "tool_calls": c.tool_calls, "web_searches": c.web_searches, "service_tier": c.service_tier,
            "inference_geo": c.inference_geo,
            "estimated": c.estimated,
            "context_tokens": c.context_tokens, "latency_ms": c.latency_ms,
            "cost_usd": usd_json(c.cost_usd), "fingerprint": c.fingerprint, "error": c.error,
            "context": c.context, "context_saved_usd": usd_json(c.context_saved_usd)}
