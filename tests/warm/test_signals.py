"""Signals and deaths around a warm run: the client's signals reach the run, a killed client
cancels it, a killed launcher ends it; no run is left `running` and no agent is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import pid_alive
from tests.warm.conftest import CLI, KEY, RUN, TIMEOUT, Warm, base_env, ledger_runs, reserved, wait_for

# The agent says who it is, then waits (a long tool call); `exec` keeps that pid the agent's.
SLEEPER = "echo $$ > agent.pid; exec sleep 60"


def start_run(env: dict[str, str], cwd: Path, exe: list[str] = CLI) -> subprocess.Popen[str]:
    return subprocess.Popen([*exe, *RUN, "--quiet", "--", "sh", "-c", SLEEPER], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _status(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as fh:
        return next(line.split()[1] for line in fh if line.startswith(field + ":"))


def wait_for_agent(cwd: Path, proc: subprocess.Popen[str]) -> int:
    """The agent's pid, once the run that supervises it (its parent) handles SIGTERM and SIGINT: the
    run installs its handlers just after it started the agent."""
    pid_file = cwd / "agent.pid"
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 20), proc.stderr
    agent = int(pid_file.read_text())
    run = int(_status(agent, "PPid"))
    assert wait_for(lambda: int(_status(run, "SigCgt"), 16) >> (signal.SIGTERM - 1) & 1, 10)
    return agent


def signalled(env: dict[str, str], cwd: Path, sig: int, exe: list[str] = CLI) -> tuple[int, str, int]:
    """Start a run, send its client ``sig`` once the agent runs: (exit status, stderr, agent pid)."""
    (cwd / "agent.pid").unlink(missing_ok=True)
    proc = start_run(env, cwd, exe)
    try:
        agent = wait_for_agent(cwd, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_for(lambda: not pid_alive(agent), 10)
    return proc.returncode, err, agent


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_client_cancels_the_run_as_it_would_cold(warm: Warm, tmp_path: Path, sig: int):
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    cold_code, cold_err, _ = signalled(base_env(ANTHROPIC_API_KEY=KEY, CI_GUARD_LEDGER=ledger), tmp_path, sig)
    (cold_run,) = ledger_runs(ledger)
    warm_code, warm_err, _ = signalled(warm.env(CI_GUARD_LEDGER=ledger), tmp_path, sig)
    assert warm_code == cold_code, (warm_err, cold_err)
    assert cold_code != 0
    assert "starting cold" not in warm_err and "went away" not in warm_err
    runs = ledger_runs(ledger)
    (warm_run,) = set(runs) - {cold_run}
    assert runs == {cold_run: "cancelled", warm_run: "cancelled"}
    assert reserved(ledger) == 0
    assert warm.alive()  # the launcher serves on


def test_sighup_to_the_client_ends_the_run_as_it_would_cold(warm: Warm, tmp_path: Path):
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    cold_code, _, _ = signalled(base_env(ANTHROPIC_API_KEY=KEY, CI_GUARD_LEDGER=ledger), tmp_path, signal.SIGHUP)
    warm_code, warm_err, _ = signalled(warm.env(CI_GUARD_LEDGER=ledger), tmp_path, signal.SIGHUP)
    assert warm_code == cold_code == -signal.SIGHUP, warm_err  # both die of it (the agent with them)
    assert warm.alive()


def test_a_killed_client_cancels_its_run_and_releases_the_hold(warm: Warm, tmp_path: Path, any_ledger: str):
    proc = start_run(warm.env(CI_GUARD_LEDGER=any_ledger), tmp_path)
    try:
        agent = wait_for_agent(tmp_path, proc)
        (run_id,) = ledger_runs(any_ledger)
        assert ledger_runs(any_ledger)[run_id] == "running" and reserved(any_ledger) > 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_for(lambda: ledger_runs(any_ledger)[run_id] != "running", 10)
    assert ledger_runs(any_ledger)[run_id] == "cancelled"
    assert reserved(any_ledger) == 0
    assert wait_for(lambda: not pid_alive(agent), 10)
    assert warm.alive()


def test_a_killed_launcher_ends_its_runs_and_their_clients_exit_82(warm: Warm, tmp_path: Path):
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    proc = start_run(warm.env(CI_GUARD_LEDGER=ledger), tmp_path)
    try:
        agent = wait_for_agent(tmp_path, proc)
        (run_id,) = ledger_runs(ledger)
        os.kill(warm.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 82, err
    assert "went away" in err
    assert wait_for(lambda: ledger_runs(ledger)[run_id] != "running", 10)
    assert ledger_runs(ledger)[run_id] == "cancelled"
    assert reserved(ledger) == 0
    assert wait_for(lambda: not pid_alive(agent), 10)
    assert not warm.alive()

    # the socket left behind answers nobody: the next run starts cold, and a new launcher takes the path
    cold = subprocess.run([*CLI, *RUN, "--quiet", "--", "sh", "-c", "echo cold"], env=warm.env(CI_GUARD_LEDGER=ledger),
                          cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    assert cold.returncode == 0 and cold.stdout == "cold\n" and "starting cold" in cold.stderr
