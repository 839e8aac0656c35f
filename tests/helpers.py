"""Shared test helpers.

Tests that need an external service or tool (PostgreSQL, the npm agent CLIs) use :func:`require`:
locally they skip with a clear reason; in CI (``CI=true``) a missing dependency fails the test,
because `.ci/run` is responsible for providing it.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, reason: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"required in CI but missing: {reason}", pytrace=False)
    pytest.skip(reason)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the ``ci-guard`` entry point in-process: (exit code, stdout, stderr)."""
    from ci_guard.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` still runs: our own exited child is reaped, and a zombie that is not our
    child (waiting for its reaper) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done != pid
    except ChildProcessError:
        try:
            with open(f"/proc/{pid}/stat") as fh:  # the state follows the parenthesised name, which may hold spaces
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False
