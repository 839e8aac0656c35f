"""Issue 12 #15: ci-guard killed with SIGKILL mid-run. The agent dies with it, and the next
ci-guard run on that ledger closes the dead run and releases its hold (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.ledger import open_ledger
from ci_guard.policy.models import Budget
from ci_guard.simulator.server import run_simulator

KEY = "sk-ant-api03-supervisor-death-real-key-0123456789"
POLICY = textwrap.dedent("""
    version: 1
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: claude-haiku-4-5
      limits: {max_turns: 5, max_cost_usd: 2.00, max_runtime: 10m}
    rules:
      - {name: allow, decision: allow}
""")
# An agent that says who it is, then waits for a long time (as one busy with a long tool call).
SLEEPER = "import os, pathlib, time; pathlib.Path('agent.pid').write_text(str(os.getpid())); time.sleep(120)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for its reaper counts as gone
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _reserved(url: str) -> tuple[object, object]:
    store = open_ledger(url)
    try:
        (status,) = store.budget_status([Budget(name="repo-daily", scope="repo", period="day", limit_usd=40)],
                                        RunContext(repo="acme/web"), datetime.now(UTC))
        runs = store.list_runs(repo="acme/web")
        return status.reserved_usd, {r.run_id: r.status for r in runs}
    finally:
        store.close()


@pytest.mark.parametrize("next_command", ["run", "check"])
def test_the_agent_dies_with_ci_guard_and_the_next_run_closes_the_dead_one(tmp_path: Path, any_ledger: str,
                                                                           next_command: str):
    (tmp_path / "policy.yml").write_text(POLICY)
    ci_guard = str(Path(sys.executable).parent / "ci-guard")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CI_GUARD_LEDGER": any_ledger}
        args = [ci_guard, "run", "--policy", "policy.yml", "--repo", "acme/web", "--quiet", "--preset", "none", "--"]
        proc = subprocess.Popen([*args, sys.executable, "-c", SLEEPER], cwd=tmp_path, env=env)
        try:
            assert _wait(lambda: (tmp_path / "agent.pid").exists() and (tmp_path / "agent.pid").read_text())
            agent = int((tmp_path / "agent.pid").read_text())
            reserved, runs = _reserved(any_ledger)
            assert reserved == 2 and list(runs.values()) == ["running"]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert _wait(lambda: not _alive(agent), 10)  # not left running, orphaned
        finally:
            if proc.poll() is None:
                proc.kill()
        (dead,) = runs
        assert _reserved(any_ledger) == (2, {dead: "running"})  # what the kill left behind
        # the next ci-guard command on that ledger: another run, or only a policy check
        command = [*args, sys.executable, "-c", "pass"] if next_command == "run" else \
            [ci_guard, "check", "--policy", "policy.yml", "--repo", "acme/web"]
        quick = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert quick.returncode == 0, quick.stderr
    reserved, runs = _reserved(any_ledger)
    assert runs[dead] == "error" and reserved == 0  # closed, and its hold released at once
    assert not (tmp_path / ".ci-guard").exists()  # nothing in the workspace: the owner is in the ledger


# An agent whose own child outlives it: a shell that starts a long `sleep` in the background and
# waits for it (as an agent's tool call that runs a test server). PDEATHSIG covers only the shell.
SPAWNER = ("import os, pathlib, subprocess; pathlib.Path('agent.pid').write_text(str(os.getpid())); "
           "subprocess.run(['sh', '-c', 'sleep 300 & echo $! > grandchild.pid; wait'])")


def test_the_agents_grandchildren_die_with_ci_guard(tmp_path: Path):
    (tmp_path / "policy.yml").write_text(POLICY)
    ci_guard = str(Path(sys.executable).parent / "ci-guard")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CI_GUARD_LEDGER": f"sqlite:///{tmp_path / 'ledger.db'}"}
        args = [ci_guard, "run", "--policy", "policy.yml", "--repo", "acme/web", "--quiet", "--preset", "none", "--"]
        # its own session: the test kills ci-guard alone, as the OOM killer would, not its group
        proc = subprocess.Popen([*args, sys.executable, "-c", SPAWNER], cwd=tmp_path, env=env,
                                start_new_session=True)
        grandchild = None
        try:
            pid_file = tmp_path / "grandchild.pid"
            assert _wait(lambda: pid_file.exists() and pid_file.read_text().strip())
            grandchild = int(pid_file.read_text())
            agent = int((tmp_path / "agent.pid").read_text())
            assert _alive(grandchild) and _alive(agent)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert _wait(lambda: not _alive(agent), 5)
            assert _wait(lambda: not _alive(grandchild), 5)  # not re-parented and left running
        finally:
            if proc.poll() is None:
                proc.kill()
            if grandchild and _alive(grandchild):
                os.kill(grandchild, signal.SIGKILL)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_forged_owner_never_closes_a_live_run(tmp_path: Path, any_ledger: str):
    """Issue 12: the owner of a run lived in `.ci-guard/<run_id>.owner`, which the agent can write: a
    file naming a dead pid made the next run close a live one. Owners are in the ledger now, and a
    run owned on another host (or in another pid namespace) is never judged from here."""
    (tmp_path / "policy.yml").write_text(POLICY)
    ci_guard = str(Path(sys.executable).parent / "ci-guard")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CI_GUARD_LEDGER": any_ledger, "RUNNER_TEMP": str(tmp_path / "temp")}
        (tmp_path / "temp").mkdir()
        args = [ci_guard, "run", "--policy", "policy.yml", "--repo", "acme/web", "--quiet", "--preset", "none", "--"]
        live = subprocess.Popen([*args, sys.executable, "-c", SLEEPER], cwd=tmp_path, env=env)
        try:
            assert _wait(lambda: (tmp_path / "agent.pid").exists() and (tmp_path / "agent.pid").read_text())
            _, runs = _reserved(any_ledger)
            (run_id,) = runs
            # the hostile agent: owner files naming a dead pid, where ci-guard used to read them
            for directory in (tmp_path / ".ci-guard", tmp_path / "temp" / "ci-guard", tmp_path / "temp"):
                directory.mkdir(exist_ok=True)
                (directory / f"{run_id}.owner").write_text(f'{{"run_id": "{run_id}", "pid": {_dead_pid()}}}')
            quick = subprocess.run([*args, sys.executable, "-c", "pass"], cwd=tmp_path, env=env, capture_output=True,
                                   text=True, timeout=60)
            assert quick.returncode == 0, quick.stderr
            reserved, runs = _reserved(any_ledger)
            assert runs[run_id] == "running" and reserved == 2  # the live run and its hold are untouched

            # a run whose recorded owner is on another host: its pid means nothing here
            from ci_guard.meter.owners import host_id

            store = open_ledger(any_ledger)
            try:
                store.set_run_owner(run_id, _dead_pid(), None, "elsewhere/" + host_id())
            finally:
                store.close()
            quick = subprocess.run([*args, sys.executable, "-c", "pass"], cwd=tmp_path, env=env, capture_output=True,
                                   text=True, timeout=60)
            assert quick.returncode == 0, quick.stderr
            assert _reserved(any_ledger)[1][run_id] == "running"
        finally:
            live.send_signal(signal.SIGTERM)
            live.wait(30)
        reserved, runs = _reserved(any_ledger)
        assert runs[run_id] != "running" and reserved == 0  # it ended by itself, and settled
