"""`ci-guard proxy`: the detached metering proxy process launched by `ci-guard start` (internal)."""

from __future__ import annotations

import click


@click.command(hidden=True)
@click.option("--state", "state_path", required=True, metavar="FILE", help="State file written by `start`.")
@click.option("--quiet", is_flag=True, help="No live line per call.")
@click.option("--stop-key-stdin", is_flag=True,
              help="Read the run's stop key from the first line of stdin (never argv or env: /proc shows those).")
def proxy(state_path: str, quiet: bool, stop_key_stdin: bool) -> int:
    """Serve the metering proxy described by a state file until SIGTERM (used by `start`)."""
    import sys

    from ci_guard.meter import detached
    from ci_guard.meter.stopkey import StopKey

    key = StopKey.decode(sys.stdin.readline()) if stop_key_stdin else None
    return detached.serve(state_path, quiet=quiet, key=key)
