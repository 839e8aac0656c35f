"""`ci-guard baseline`: suggested limits and budgets from a pilot's ledger, as a policy fragment."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import click

from ci_guard.commands._ledger_common import LEDGER_EXIT_STATUS, ledger_option
from ci_guard.commands.report import period_options, resolve_period

EPILOG = """\b
Examples:
  ci-guard baseline --since 30d
  ci-guard baseline --month 2026-03 --headroom 50 --policy ci-guard.yml -o suggested.yml
"""


@click.command(epilog=EPILOG + "\n" + LEDGER_EXIT_STATUS)
@ledger_option
@period_options
@click.option("--headroom", type=click.FloatRange(min=0, max=500), default=25, show_default=True,
              help="Percent added to the observed figures.")
@click.option("--output", "-o", metavar="FILE", default="-", show_default=True,
              help="Where to write the YAML; a file is written whole or not at all.")
def baseline(ledger_url: str | None, month: str | None, period: str | None, since: datetime | None,
             until: datetime | None, policy_path: str | None, tz_name: str | None, headroom: float,
             output: str) -> int:
    """Suggest limits and budgets from a pilot period (default: the last 30 days).

    Per agent kind: max_cost_usd and max_turns at the p90 of its runs plus headroom; daily
    budgets per repo and team, monthly per team and org, from the busiest key plus headroom.
    Printed as a policy YAML (rules + budgets, with the figures each came from as comments),
    validated by the same loader as any policy.
    """
    from ci_guard.commands._ledger_common import parse_moment
    from ci_guard.ledger import open_ledger
    from ci_guard.report.baseline import render_baseline, suggest

    if not (month or period or since):
        since = parse_moment(None, None, "30d")
    chosen = resolve_period(month, period, since, until, policy_path, tz_name)
    store = open_ledger(ledger_url, create=False)  # read-only: never creates one
    try:
        facts = store.period_runs(chosen.start, chosen.end)
    finally:
        store.close()
    text = render_baseline(suggest(facts, chosen, Decimal(str(headroom)) / 100))
    if output == "-":
        click.echo(text, nl=False)
        return 0
    from ci_guard.files import atomic_text_file

    with atomic_text_file(output) as out:
        out.write(text)
    click.echo(f"suggested limits and budgets written to {output}", err=True)
    return 0
