"""Flags shared by `check` and `explain` besides the context flags: policy, budgets, clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _parse_now(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected an ISO 8601 time such as 2025-06-30T12:00:00Z, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def decide_options(func: F) -> F:
    options = [
        click.option("--policy", "policy_path", required=True, envvar="CI_GUARD_POLICY", metavar="FILE",
                     help="Policy file (default: $CI_GUARD_POLICY)."),
        click.option("--budget-snapshot", metavar="FILE",
                     help='Budget statuses from JSON, e.g. {"org-monthly": {"spent_usd": "1700"}} (dry runs).'),
        click.option("--ledger", "ledger_url", metavar="URL", envvar="CI_GUARD_LEDGER",
                     help="Read budgets from this ledger (sqlite:///path.db or postgresql://...); default: "
                          "the default ledger file when it exists."),
        click.option("--now", callback=_parse_now, metavar="TIME",
                     help="Decide as if it were this ISO 8601 time (budget periods)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_decision(policy_path: str, budget_snapshot: str | None, ledger_url: str | None, now: datetime | None,
                 context: dict[str, Any]) -> tuple[Any, Any]:
    """(policy, decision) for the given flags."""
    from ci_guard.commands.options import build_context
    from ci_guard.policy.decide import close_source, evaluate, load_policy, open_budget_source

    policy = load_policy(policy_path)
    ctx = build_context(**context)
    source = open_budget_source(budget_snapshot, ledger_url)
    if hasattr(source, "running_runs_owned_on"):
        # Runs on this host whose ci-guard died (SIGKILL, OOM) no longer hold budget: close them
        # before the budgets are read, as `run` and `start` do.
        from ci_guard.meter.lifecycle import close_dead_runs

        close_dead_runs(source, datetime.now(UTC))
    try:
        return policy, evaluate(policy, ctx, budget_source=source, now=now)
    finally:
        close_source(source)
