"""Warm launcher fixtures: a real `ci-guard warm start` server per test (or per module), always
stopped (or killed) at teardown, and the helpers every warm test uses to run the real CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import pid_alive
from tests.ledger.conftest import pg_schema  # noqa: F401  (a fixture, used by any_ledger)
from tests.meter.conftest import any_ledger  # noqa: F401  (a fixture: SQLite and PostgreSQL)

KEY = "sk-ant-api03-warm-launcher-real-key-0123456789abcdef"
CLI = [sys.executable, "-m", "ci_guard"]
CONSOLE = str(Path(sys.executable).parent / "ci-guard")
POLICY = textwrap.dedent("""
    version: 1
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: claude-sonnet-4-5
      limits: {max_turns: 5, max_cost_usd: 2.00, max_runtime: 10m}
    rules:
      - {name: allow, decision: allow}
""")
RUN = ["run", "--policy", "policy.yml", "--repo", "acme/web", "--preset", "none"]
TIMEOUT = 60


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment without any warm launcher named, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "CI_GUARD_WARM"}
    env.update(extra)
    return env


@dataclass
class Warm:
    socket: str
    pid: int

    @property
    def log(self) -> Path:
        return Path(self.socket + ".log")

    def env(self, **extra: str) -> dict[str, str]:
        """A client's environment: the launcher named, a real-looking provider key."""
        return base_env(ANTHROPIC_API_KEY=KEY, CI_GUARD_WARM=self.socket, **extra)

    def alive(self) -> bool:
        return pid_alive(self.pid)


def server_pid(socket_path: str) -> int:
    """The pid the launcher logged when it started serving (the last start on that socket)."""
    lines = re.findall(r"serving at .* \(pid (\d+)\)", Path(socket_path + ".log").read_text())
    assert lines, Path(socket_path + ".log").read_text()
    return int(lines[-1])


def start_warm(socket_path: str | Path, *args: str, env: dict[str, str] | None = None) -> Warm:
    started = subprocess.run([*CLI, "warm", "start", "--socket", str(socket_path), "--idle-timeout", "60", *args],
                             env=env or base_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == str(socket_path)
    return Warm(str(socket_path), server_pid(str(socket_path)))


def stop_warm(warm: Warm) -> None:
    """`warm stop`, then make sure the process is gone (killed if it is not within 10 s)."""
    if warm.alive():
        subprocess.run([*CLI, "warm", "stop", "--socket", warm.socket], env=base_env(), capture_output=True,
                       timeout=TIMEOUT)
        if not wait_for(lambda: not warm.alive(), 10):
            os.kill(warm.pid, signal.SIGKILL)
            wait_for(lambda: not warm.alive(), 10)
    assert not warm.alive()


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[Warm]:
    """One launcher for this test, its socket in tmp_path; the test's cwd holds policy.yml."""
    (tmp_path / "policy.yml").write_text(POLICY)
    server = start_warm(tmp_path / "sock")
    try:
        yield server
    finally:
        stop_warm(server)


@pytest.fixture(scope="module")
def module_warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warm]:
    """One launcher shared by a module's tests (they must leave it serving)."""
    server = start_warm(tmp_path_factory.mktemp("warm") / "sock")
    try:
        yield server
    finally:
        stop_warm(server)


def ledger_runs(url: str) -> dict[str, str]:
    """run_id -> status of every run of acme/web."""
    from ci_guard.ledger import open_ledger

    store = open_ledger(url)
    try:
        return {r.run_id: r.status for r in store.list_runs(repo="acme/web")}
    finally:
        store.close()


def reserved(url: str) -> object:
    """What the repo-daily budget holds in reservations now."""
    from ci_guard.context.model import RunContext
    from ci_guard.ledger import open_ledger
    from ci_guard.policy.models import Budget

    store = open_ledger(url)
    try:
        (status,) = store.budget_status([Budget(name="repo-daily", scope="repo", period="day", limit_usd=40)],
                                        RunContext(repo="acme/web"), datetime.now(UTC))
        return status.reserved_usd
    finally:
        store.close()
