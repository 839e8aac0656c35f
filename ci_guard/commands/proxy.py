"""`ci-guard proxy`: the detached metering proxy process launched by `ci-guard start` (internal)."""

from __future__ import annotations

import click


@click.command(hidden=True)
@click.option("--state", "state_path", required=True, metavar="FILE", help="State file written by `start`.")
@click.option("--quiet", is_flag=True, help="No live line per call.")
def proxy(state_path: str, quiet: bool) -> int:
    """Serve the metering proxy described by a state file until SIGTERM (used by `start`)."""
    from ci_guard.meter import detached

    return detached.serve(state_path, quiet=quiet)
