"""`ci-guard demo`: rehearse the whole loop locally."""

from __future__ import annotations

import click


@click.command()
@click.option("--dir", "workdir", metavar="DIR", type=click.Path(file_okay=False),
              help="Where to keep the ledger, summaries, comment, FOCUS export and dashboard "
                   "(default: a new temporary directory).")
@click.option("--quiet-calls", is_flag=True, help="Hide the proxy's line per model call.")
@click.option("--pilot", is_flag=True,
              help="Instead: write a generated pilot month into --ledger (teams, repos, outcomes, caps, storms).")
@click.option("--ledger", "ledger_url", metavar="URL", envvar="CI_GUARD_LEDGER",
              help="With --pilot: the ledger to fill (default: DIR/pilot.db).")
@click.option("--month", metavar="YYYY-MM", default="2026-03", show_default=True, help="With --pilot: the month.")
@click.option("--calls", type=click.IntRange(min=1, max=10_000_000), default=20_000, show_default=True,
              help="With --pilot: about how many model calls to generate.")
@click.option("--seed", type=int, default=15, show_default=True, help="With --pilot: the random seed.")
def demo(workdir: str | None, quiet_calls: bool, pilot: bool, ledger_url: str | None, month: str,
         calls: int, seed: int) -> int:
    """Rehearse ci-guard end to end on the built-in provider simulator.

    Decides four runs with a bundled policy, runs a scripted agent three times through the
    metering proxy (a normal review, a runaway loop stopped by max_turns, a retry storm), records
    everything in an SQLite ledger, shows the budgets, renders the PR comment, and exports the
    month as FinOps FOCUS rows and a static HTML dashboard. Nothing leaves this machine and no
    API key is needed. Exit 0 when every step behaved as expected.

    \b
    Example:
      ci-guard demo --dir /tmp/ci-guard-demo
    """
    import tempfile
    from pathlib import Path

    from ci_guard.demo.rehearsal import Rehearsal

    path = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="ci-guard-demo-"))
    path.mkdir(parents=True, exist_ok=True)
    if pilot:
        return _pilot(ledger_url or f"sqlite:///{path / 'pilot.db'}", month, calls, seed)
    return 0 if Rehearsal(path, quiet_calls=quiet_calls).run() else 1


def _pilot(url: str, month: str, calls: int, seed: int) -> int:
    """Fill a ledger with a generated pilot month and say what to run next."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from ci_guard.demo.pilot import write_pilot
    from ci_guard.ledger import open_ledger
    from ci_guard.ledger.periods import period_bounds
    from ci_guard.money import format_usd

    try:
        anchor = datetime.strptime(month + "-15", "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM, got {month!r}", param_hint="--month") from None
    start, end = period_bounds("month", "UTC", anchor)
    store = open_ledger(url)
    try:
        done = write_pilot(store, start, days=(end - start).days, calls=calls, seed=seed)
        shown = store.url
    finally:
        store.close()
    click.echo(f"pilot month {month}: {done.runs:,} runs, {done.calls:,} calls, {done.prs:,} PR outcomes, "
               f"{format_usd(Decimal(done.cost_micros) / 1_000_000)} written to {shown}")
    click.echo(f"next:\n  ci-guard report --ledger {shown} --month {month} --by team\n"
               f"  ci-guard report --ledger {shown} --month {month} --by workflow")
    return 0
