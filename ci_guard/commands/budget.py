"""`ci-guard budget status`: every budget of the policy, for each scope key seen this period."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click

from ci_guard.commands._ledger_common import (
    LEDGER_EXIT_STATUS,
    format_option,
    ledger_option,
    load_policy,
    parse_moment,
    table,
    usd,
)

EPILOG = """\b
Examples:
  ci-guard budget status --policy policy.yml
  ci-guard budget status --policy policy.yml --ledger postgresql://ci@db/ci?schema=ci_guard --format json

\b
Burn rate is spend per day since the period started; the projection assumes that rate holds to
the end of the period.
"""
MICRO = Decimal("0.000001")


@click.group()
def budget() -> None:
    """Budget status from the ledger."""


@budget.command(epilog=EPILOG + "\n" + LEDGER_EXIT_STATUS)
@click.option("--policy", "policy_path", required=True, metavar="FILE", envvar="CI_GUARD_POLICY",
              help="Policy file whose budgets to report (default: $CI_GUARD_POLICY).")
@ledger_option
@click.option("--now", callback=parse_moment, metavar="TIME", help="Report as if it were this ISO 8601 time.")
@format_option
def status(policy_path: str, ledger_url: str | None, now: datetime | None, fmt: str) -> int:
    """Limit, spent, reserved, remaining, burn rate and projection of every budget."""
    from ci_guard.ledger import open_ledger

    policy = load_policy(policy_path)
    now = now or datetime.now(UTC)
    store = open_ledger(ledger_url, create=False)  # read-only: never creates one
    try:
        rows = [row for b in policy.budgets for row in budget_rows(store, b, now)]
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps({"now": now.isoformat(), "ledger": store.url, "budgets": [_json(r) for r in rows]},
                              indent=2))
        return 0
    if not rows:
        click.echo("the policy defines no budgets")
        return 0
    click.echo(table(
        ["budget", "scope", "key", "period", "limit", "spent", "reserved", "remaining", "burn/day", "projected",
         "alert"],
        [[r["name"], r["scope"], r["scope_key"] or "(none yet)", f"{r['period']} from {r['local_start']}",
          usd(r["limit_usd"]), usd(r["spent_usd"]), usd(r["reserved_usd"]), usd(r["remaining_usd"]),
          usd(r["burn_per_day_usd"]), usd(r["projected_usd"]) + (" !" if r["projected_usd"] > r["limit_usd"] else ""),
          _alert(r)]
         for r in rows], right=range(4, 10)))
    return 0


def budget_rows(store: Any, budget: Any, now: datetime) -> list[dict[str, Any]]:
    """One row per scope key with spend or reservations this period (one empty row when none)."""
    from ci_guard.ledger.budgets import budget_spec
    from ci_guard.ledger.periods import period_bounds, zone

    spec = budget_spec(budget)
    start, end = period_bounds(spec.period, spec.timezone, now)
    buckets = store.bucket_rows(spec.name, start, now) or [
        {"scope_key": None, "spent_usd": Decimal(0), "reserved_usd": Decimal(0), "calls": 0, "runs": 0}]
    elapsed_days = Decimal(max((now - start).total_seconds(), 3600)) / 86400  # at least an hour of history
    period_days = Decimal((end - start).total_seconds()) / 86400
    rows = []
    for b in buckets:
        burn = b["spent_usd"] / elapsed_days
        rows.append({
            "name": spec.name, "scope": spec.scope, "scope_key": b["scope_key"], "period": spec.period,
            "period_start": start, "period_end": end, "limit_usd": spec.limit_usd, "spent_usd": b["spent_usd"],
            "reserved_usd": b["reserved_usd"],
            "remaining_usd": max(Decimal(0), spec.limit_usd - b["spent_usd"] - b["reserved_usd"]),
            "burn_per_day_usd": burn.quantize(MICRO),
            "projected_usd": (burn * period_days).quantize(MICRO) if now < end else b["spent_usd"],
            "calls": b["calls"], "runs": b["runs"],
            "local_start": start.astimezone(zone(spec.timezone)).strftime("%Y-%m-%d"),
            "alert_crossed_usd": _crossed(budget, b["spent_usd"]),
        })
    return rows


def _crossed(budget: Any, spent: Decimal) -> Decimal | None:
    """The highest `alert_at` threshold (USD) the spend has reached, if any."""
    thresholds = budget.alert_thresholds_usd() if hasattr(budget, "alert_thresholds_usd") else []
    crossed = [t for t in thresholds if spent >= t]
    return crossed[-1] if crossed else None


def _alert(row: dict[str, Any]) -> str:
    crossed = row["alert_crossed_usd"]
    if crossed is None or not row["limit_usd"]:
        return ""
    return f"past {(crossed * 100 / row['limit_usd']).quantize(Decimal(1))}%"


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, Decimal) else v)
            for k, v in row.items()}
