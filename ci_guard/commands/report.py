"""`ci-guard report` (also `ci-guard ledger report`): FinOps figures of any period by any dimensions."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click

from ci_guard.commands._ledger_common import LEDGER_EXIT_STATUS, ledger_option, parse_moment, table, usd

EPILOG = """\b
Examples:
  ci-guard report --month 2026-03 --by team
  ci-guard report --since 30d --by team,repo --format csv -o spend.csv
  ci-guard report --period week --by workflow --policy ci-guard.yml   # weeks in the policy's timezone
  ci-guard report --since 2026-03-01 --until 2026-03-15 --by user --format json
"""
DIMENSION_HELP = "org, team, repo, user, workflow, agent, model, environment, cohort, trigger, status"


def period_options(func: Any) -> Any:
    """The period flags shared by report, dashboard and baseline."""
    for option in reversed([
        click.option("--month", metavar="YYYY-MM", help="A calendar month."),
        click.option("--period", type=click.Choice(["day", "week", "month"]),
                     help="The current calendar day, week (from Monday) or month."),
        click.option("--since", callback=parse_moment, metavar="TIME",
                     help="Start: ISO 8601 time, or 30d / 24h / 2w back from now."),
        click.option("--until", callback=parse_moment, metavar="TIME", help="End (exclusive; default: now)."),
        click.option("--policy", "policy_path", metavar="FILE", type=click.Path(dir_okay=False),
                     help="Take the timezone of periods and days from this policy (as budgets do)."),
        click.option("--timezone", "tz_name", metavar="IANA", help="Timezone of periods and days (default UTC)."),
    ]):
        func = option(func)
    return func


def resolve_period(month: str | None, period: str | None, since: datetime | None, until: datetime | None,
                   policy_path: str | None, tz_name: str | None, now: datetime | None = None) -> Any:
    """The period the flags select (default: the current month), in the policy's or given timezone."""
    from ci_guard.ledger.periods import period_bounds, zone
    from ci_guard.report.finops import Period

    if policy_path and not tz_name:
        from ci_guard.commands._ledger_common import load_policy

        tz_name = load_policy(policy_path).timezone or "UTC"
    tz_name = tz_name or "UTC"
    zone(tz_name)  # an unknown zone is a clear error (exit 2)
    now = now or datetime.now(UTC)
    chosen = [name for name, value in (("--month", month), ("--period", period), ("--since", since))
              if value is not None]
    if len(chosen) > 1:
        raise click.UsageError(f"choose one of --month, --period, --since (got {', '.join(chosen)})")
    if month:
        try:
            anchor = datetime.strptime(month + "-15", "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise click.BadParameter(f"expected YYYY-MM, got {month!r}", param_hint="--month") from None
        start, end = period_bounds("month", tz_name, anchor)
        return Period(start, end, tz_name, f"{month}")
    if since is not None:
        end = until or now
        if end <= since:
            raise click.BadParameter("--until must be after --since", param_hint="--until")
        return Period(since, end, tz_name, f"{since:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
    if until is not None:
        raise click.UsageError("--until needs --since")
    start, end = period_bounds(period or "month", tz_name, now)
    return Period(start, end, tz_name, f"{period or 'month'} from {start:%Y-%m-%d %H:%M} UTC")


def load_report(store: Any, period: Any, dims: list[str]) -> Any:
    from ci_guard.report.finops import build_report

    previous = period.previous()
    return build_report(store.period_runs(period.start, period.end),
                        store.period_runs(previous.start, previous.end, with_calls=False), period, dims, previous)


@click.command(epilog=EPILOG + "\n" + LEDGER_EXIT_STATUS)
@ledger_option
@period_options
@click.option("--by", "by", metavar="DIMS", default=None,
              help=f"Group by one or more of {DIMENSION_HELP}, comma-separated (default: repo).")
@click.option("--group-by", "group_by", hidden=True, help="Old name of --by (one dimension).")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True)
@click.option("--output", "-o", metavar="FILE", default="-", show_default=True,
              help="Where to write; a file is written whole or not at all.")
def report(ledger_url: str | None, month: str | None, period: str | None, since: datetime | None,
           until: datetime | None, policy_path: str | None, tz_name: str | None, by: str | None,
           group_by: str | None, fmt: str, output: str) -> int:
    """Spend and outcomes of a period, grouped by any dimensions.

    Cost, runs, calls, tokens by class, cache hit share, model mix, turns per run, cost per run
    p50/p90, runs stopped by each cap, retry storms, cost per active developer day, per merged PR
    and per fixed test, abandoned runs, context growth and the change against the previous period.
    Aggregated by the database; definitions in docs/finops.md.
    """
    from ci_guard.ledger import open_ledger
    from ci_guard.report.finops import check_dimensions

    dims = check_dimensions((by or group_by or "repo").split(","))
    chosen = resolve_period(month, period, since, until, policy_path, tz_name)
    store = open_ledger(ledger_url, create=False)  # read-only: never creates one
    try:
        result = load_report(store, chosen, dims)
    finally:
        store.close()
    text = {"json": render_json, "csv": render_csv, "text": render_text}[fmt](result)
    _write(text, output)
    return 0


def _write(text: str, output: str) -> None:
    if output == "-":
        click.echo(text, nl=not text.endswith("\n"))
        return
    from ci_guard.files import atomic_text_file

    with atomic_text_file(output) as out:
        out.write(text)


def _decimal(value: Any) -> str:
    if isinstance(value, Decimal):  # money and shares as exact decimal strings
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def render_json(result: Any) -> str:
    return json.dumps(result.as_json(), indent=2, default=_decimal) + "\n"


CSV_FIELDS = ("cost_usd", "runs", "metered_runs", "calls", "turns", "cache_hit_share", "turns_per_run", "turns_p90",
              "cost_per_run_p50_usd", "cost_per_run_p90_usd", "retry_storms", "retry_storm_cost_usd",
              "active_developer_days", "cost_per_active_developer_day_usd", "merged_prs", "cost_per_merged_pr_usd",
              "tests_fixed", "cost_per_fixed_test_usd", "abandoned_runs", "abandoned_cost_usd", "imported_runs",
              "context_first", "context_median", "context_last", "previous_cost_usd", "change")


def render_csv(result: Any) -> str:
    from ci_guard.ledger.analytics import TOKEN_CLASSES

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*result.dims, *CSV_FIELDS, *TOKEN_CLASSES, "stopped", "model_mix"])
    for row in [*(r.as_json(result.dims) for r in result.rows)]:
        writer.writerow([*(_csv_safe(row[d]) for d in result.dims), *(_cell(row[f]) for f in CSV_FIELDS),
                         *(row["tokens"][t] for t in TOKEN_CLASSES),
                         ";".join(f"{k}={v}" for k, v in row["stopped"].items()),
                         _csv_safe(";".join(f"{k}={v}" for k, v in row["model_mix"].items()))])
    return buf.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _csv_safe(value: Any) -> str:
    """Names come from untrusted CI metadata: keep a spreadsheet from reading one as a formula."""
    text = _cell(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _pct(value: Any) -> str:
    return "-" if value is None else f"{Decimal(value) * 100:.0f}%"


def _change(value: Any) -> str:
    return "new" if value is None else f"{Decimal(value) * 100:+.0f}%"


def render_text(result: Any) -> str:
    period = result.period
    total = result.total.as_json([])
    lines = [f"{period.label or period.start.isoformat()} ({period.start:%Y-%m-%d %H:%M} to "
             f"{period.end:%Y-%m-%d %H:%M} UTC, days in {period.tz}): by {', '.join(result.dims)}", ""]
    headers = [*result.dims, "cost", "runs", "calls", "cache hit", "turns/run", "run p50", "run p90", "stopped",
               "storms", "$/dev-day", "$/merged PR", "abandoned", "top model", "vs prev"]
    rows = []
    for row in [*(r.as_json(result.dims) for r in result.rows), {**total, **{d: "TOTAL" for d in result.dims}}]:
        top = next(iter(row["model_mix"].items()), None)
        rows.append([*(row[d] for d in result.dims), usd(row["cost_usd"]), row["runs"], f"{row['calls']:,}",
                     _pct(row["cache_hit_share"]), row["turns_per_run"],
                     _money(row["cost_per_run_p50_usd"]), _money(row["cost_per_run_p90_usd"]),
                     sum(row["stopped"].values()),
                     f"{row['retry_storms']} ({usd(row['retry_storm_cost_usd'])})",
                     _money(row["cost_per_active_developer_day_usd"]), _money(row["cost_per_merged_pr_usd"]),
                     row["abandoned_runs"], f"{top[0]} {_pct(top[1])}" if top else "-", _change(row["change"])])
    n = len(result.dims)
    lines.append(table(headers, rows, right=range(n, n + 12)))
    stopped = ", ".join(f"{k} {v}" for k, v in total["stopped"].items()) or "none"
    mix = ", ".join(f"{k} {_pct(v)}" for k, v in total["model_mix"].items()) or "-"
    lines += ["", f"stopped by cap: {stopped}", f"model mix: {mix}",
              f"context per call (median over runs): first {total['context_first'] or 0:,}, middle "
              f"{total['context_median'] or 0:,}, last {total['context_last'] or 0:,} tokens",
              f"tests fixed: {total['tests_fixed']} ({_money(total['cost_per_fixed_test_usd'])} each); "
              f"imported runs: {total['imported_runs']}; previous period "
              f"{usd(total['previous_cost_usd'] or 0)} ({_change(total['change'])})"]
    return "\n".join(lines) + "\n"


def _money(value: Any) -> str:
    return "-" if value is None else usd(value)
