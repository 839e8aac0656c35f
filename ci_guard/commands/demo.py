"""`ci-guard demo`: rehearse the whole loop locally."""

from __future__ import annotations

import click


@click.command()
@click.option("--dir", "workdir", metavar="DIR", type=click.Path(file_okay=False),
              help="Where to keep the ledger, summaries, comment, FOCUS export and dashboard "
                   "(default: a new temporary directory).")
@click.option("--quiet-calls", is_flag=True, help="Hide the proxy's line per model call.")
def demo(workdir: str | None, quiet_calls: bool) -> int:
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
    return 0 if Rehearsal(path, quiet_calls=quiet_calls).run() else 1
