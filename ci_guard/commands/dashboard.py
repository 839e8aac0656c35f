"""`ci-guard dashboard` (also `ci-guard ledger dashboard`): a period of the ledger as a static HTML page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from ci_guard.commands._ledger_common import LEDGER_EXIT_STATUS, ledger_option
from ci_guard.commands.report import period_options, resolve_period


@click.command(epilog=LEDGER_EXIT_STATUS)
@ledger_option
@period_options
@click.option("--stack-by", type=click.Choice(["team", "repo", "workflow", "agent", "user"]), default="team",
              show_default=True, help="What the spend-per-day bars are stacked by.")
@click.option("--output", "-o", metavar="FILE", default="ci-guard-dashboard.html", show_default=True,
              help="The HTML file to write (whole or not at all); - for standard output.")
def dashboard(ledger_url: str | None, month: str | None, period: str | None, since: datetime | None,
              until: datetime | None, policy_path: str | None, tz_name: str | None, stack_by: str,
              output: str) -> int:
    """A static HTML dashboard of a period (default: this month).

    \b
    Spend per day stacked by team or repo, cost per active developer day and per merged PR,
    model mix, cache hit share, top runs linked to their PR and CI job, retry storms, stop
    reasons, the change against the previous period, and with --policy every budget's burn
    against its limit with the projected end of the period. One self-contained file (no
    scripts, nothing loaded from elsewhere) that reads well printed.
    Examples:
      ci-guard dashboard --month 2026-03 -o spend-2026-03.html
      ci-guard dashboard --period month --policy ci-guard.yml --stack-by repo -o burn.html
    """
    import sys

    from ci_guard.files import atomic_text_file
    from ci_guard.ledger import open_ledger
    from ci_guard.report.dashboard import build_dashboard, render_dashboard

    chosen = resolve_period(month, period, since, until, policy_path, tz_name)
    policy = _policy(policy_path)
    previous = chosen.previous()
    store = open_ledger(ledger_url, create=False)  # read-only: never creates one
    try:
        board = build_dashboard(store.period_runs(chosen.start, chosen.end),
                                store.period_runs(previous.start, previous.end, with_calls=False),
                                chosen, previous, stack_by=stack_by, policy=policy)
    finally:
        store.close()
    html = render_dashboard(board)
    if output == "-":
        sys.stdout.write(html)
        return 0
    with atomic_text_file(output) as out:
        out.write(html)
    from ci_guard.money import format_usd

    click.echo(f"{chosen.label}: {board.calls:,} calls, {board.run_count:,} runs, {format_usd(board.total_usd)}; "
               f"dashboard written to {output}", err=True)
    return 0


def _policy(path: str | None) -> Any:
    if not path:
        return None
    from ci_guard.commands._ledger_common import load_policy

    return load_policy(path)
