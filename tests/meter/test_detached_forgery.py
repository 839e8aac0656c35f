"""Issue 12 #5: the agent rewrites the state file `ci-guard start` exported to it. `stop` signals
only the run's real proxy (never the pid the file names), and reports the ledger's figures rather
than a forged summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from ci_guard.ledger import open_ledger
from ci_guard.simulator import run_simulator
from tests.helpers import pid_alive
from tests.meter.test_detached import KEY, POLICY, call, cli, exported, stop_key


def test_a_forged_state_file_cannot_make_stop_signal_another_process_or_lie(tmp_path: Path, any_ledger: str):
    (tmp_path / "policy.yml").write_text(POLICY)
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # "an arbitrary PID"
    try:
        with run_simulator("tool-loop", api_key=KEY) as sim:
            env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
                   "RUNNER_TEMP": str(tmp_path), "CI_GUARD_LEDGER": any_ledger}
            started = cli(tmp_path, "start", "--policy", "policy.yml", "--repo", "acme/web", "--no-draft",
                          "--format", "shell", env=env)
            assert started.returncode == 0, started.stderr
            agent_env = exported(started.stdout)
            assert call(agent_env, "spend something").status_code == 200
            # the agent rewrites the state: another pid, and a summary of its own saying it spent nothing
            state_path = Path(agent_env["CI_GUARD_STATE"])
            state = json.loads(state_path.read_text())
            real_pid = state["pid"]
            forged = tmp_path / "forged.json"
            forged.write_text(json.dumps({"run_id": state["run_id"], "decision": {}, "status": "completed",
                                          "cost_usd": "0", "started_at": "2026-01-01T00:00:00+00:00"}))
            state.update(pid=decoy.pid, summary_path=str(forged))
            state_path.write_text(json.dumps(state))
            stopped = cli(tmp_path, "stop", "--format", "json", env=env)
            assert stopped.returncode == 0, stopped.stderr
        summary = json.loads(stopped.stdout)
        assert decoy.poll() is None  # the decoy was not signalled
        for _ in range(100):
            if not pid_alive(real_pid):
                break
            time.sleep(0.05)
        assert not pid_alive(real_pid)  # the real proxy was stopped, not left running
        assert summary["run_id"] == state["run_id"] and float(summary["cost_usd"]) > 0
        assert len(summary["calls"]) == 1
    finally:
        decoy.kill()
        decoy.wait()


# --- with the stop key (issue 12 #5: the state and summary are authenticated) ---------------------

def _start_keyed(tmp_path: Path, sim_url: str, ledger: str) -> tuple[dict[str, str], dict[str, str], str]:
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim_url,
           "RUNNER_TEMP": str(tmp_path), "CI_GUARD_LEDGER": ledger}
    started = cli(tmp_path, "start", "--policy", "policy.yml", "--repo", "acme/web", "--no-draft",
                  "--format", "shell", env=env)
    assert started.returncode == 0, started.stderr
    return env, exported(started.stdout), stop_key(started.stdout)


def test_with_the_stop_key_a_rewritten_state_file_is_refused_and_the_real_proxy_stopped(tmp_path: Path,
                                                                                       any_ledger: str):
    (tmp_path / "policy.yml").write_text(POLICY)
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with run_simulator("tool-loop", api_key=KEY) as sim:
            env, agent_env, key = _start_keyed(tmp_path, sim.url, any_ledger)
            assert key not in json.dumps(agent_env) and "CI_GUARD_STOP_KEY" not in agent_env
            assert call(agent_env, "spend something").status_code == 200
            # the hostile agent: another pid, another run, a MAC of its own making
            state_path = Path(agent_env["CI_GUARD_STATE"])
            state = json.loads(state_path.read_text())
            real_pid, run_id = state["pid"], state["run_id"]
            assert state["mac"] and key not in state_path.read_text()
            state.update(pid=decoy.pid, run_id="run_forged", mac="0" * 64)
            state_path.write_text(json.dumps(state))
            stopped = cli(tmp_path, "stop", "--format", "json", env={**env, "CI_GUARD_STOP_KEY": key})
        assert stopped.returncode == 2, stopped.stderr  # refused, loudly...
        assert "state file was changed" in stopped.stderr and "MAC" in stopped.stderr
        summary = json.loads(stopped.stdout)  # ...yet the run was stopped and settled all the same
        assert decoy.poll() is None and not pid_alive(real_pid)
        assert summary["run_id"] == run_id and float(summary["cost_usd"]) > 0 and len(summary["calls"]) == 1
        store = open_ledger(any_ledger)
        try:
            assert store.get_run(run_id).status == "completed"
        finally:
            store.close()
    finally:
        decoy.kill()
        decoy.wait()


def test_with_the_stop_key_a_forged_summary_is_refused_for_the_ledgers_account(tmp_path: Path, any_ledger: str):
    """The agent kills the proxy (same user) and leaves a summary of its own: $0, no calls."""
    (tmp_path / "policy.yml").write_text(POLICY)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env, agent_env, key = _start_keyed(tmp_path, sim.url, any_ledger)
        assert call(agent_env, "spend something").status_code == 200
        state_path = Path(agent_env["CI_GUARD_STATE"])
        state = json.loads(state_path.read_text())
        assert _wait_recorded(any_ledger, state["run_id"])  # committed just after its last byte went out
        os.kill(state["pid"], signal.SIGKILL)
        assert _wait_gone(state["pid"])
        forged = {"run_id": state["run_id"], "decision": {}, "status": "completed", "cost_usd": "0",
                  "started_at": "2026-01-01T00:00:00+00:00"}
        state_path.with_suffix(".summary.json").write_text(json.dumps(forged))
        state_path.with_suffix(".summary.mac").write_text("f" * 64)
        stopped = cli(tmp_path, "stop", "--format", "json", env={**env, "CI_GUARD_STOP_KEY": key})
    assert stopped.returncode == 2 and "run summary was changed" in stopped.stderr
    summary = json.loads(stopped.stdout)
    assert float(summary["cost_usd"]) > 0 and len(summary["calls"]) == 1  # what the ledger holds
    store = open_ledger(any_ledger)
    try:
        run = store.get_run(state["run_id"])
        assert run.status == "error" and run.cost_usd == Decimal(summary["cost_usd"])  # closed, not left running
    finally:
        store.close()


def test_with_the_stop_key_an_outcome_the_agent_planted_is_ignored(tmp_path: Path):
    (tmp_path / "policy.yml").write_text(POLICY)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env, agent_env, key = _start_keyed(tmp_path, sim.url, f"sqlite:///{tmp_path / 'l.db'}")
        assert call(agent_env, "work").status_code == 200
        state_path = Path(agent_env["CI_GUARD_STATE"])
        state_path.with_suffix(".outcome.json").write_text(json.dumps({"exit_code": None, "outcome": "cancelled"}))
        stopped = cli(tmp_path, "stop", "--format", "json", env={**env, "CI_GUARD_STOP_KEY": key})
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["status"] == "completed"  # not "cancelled", as the agent wrote


def test_a_recycled_pid_is_never_signalled():
    """The key names the proxy by pid and start time: a process that got the pid later is left alone."""
    from ci_guard.meter.detached import _keyed_proxy
    from ci_guard.meter.procs import start_time as process_start_time
    from ci_guard.meter.stopkey import StopKey

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        key = StopKey.new("run_x")
        started = process_start_time(other.pid)
        assert started is not None
        assert _keyed_proxy(key.for_process(other.pid, str(int(started) - 100))) == []  # "the proxy" was older
        assert _keyed_proxy(key.for_process(other.pid, started)) == [other.pid]
        assert StopKey.decode(key.for_process(other.pid, started).encode()) == key.for_process(other.pid, started)
    finally:
        other.kill()
        other.wait()


def test_a_stop_key_that_is_not_one_is_invalid_input(tmp_path: Path):
    (tmp_path / "ci-guard-state.json").write_text("{}")
    stopped = cli(tmp_path, "stop", "--state", "ci-guard-state.json",
                  env={**os.environ, "CI_GUARD_STOP_KEY": "cig_stop_bm90LWpzb24"})
    assert stopped.returncode == 2 and "stop key is not one" in stopped.stderr


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _wait_recorded(ledger: str, run_id: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = open_ledger(ledger)
        try:
            if store.list_calls(run_id):
                return True
        finally:
            store.close()
        time.sleep(0.05)
    return False


def test_the_default_state_file_is_never_in_the_checkout(tmp_path: Path):
    from ci_guard.meter.detached import default_state_path

    assert default_state_path({"RUNNER_TEMP": str(tmp_path)}) == str(tmp_path / "ci-guard-state.json")
    local = Path(default_state_path({"HOME": str(tmp_path / "home")}))
    assert local == (tmp_path / "home" / ".local" / "state" / "ci-guard" / "ci-guard-state.json").resolve()
    assert Path(default_state_path({"XDG_STATE_HOME": str(tmp_path / "xdg")})).parent == (tmp_path / "xdg" /
                                                                                         "ci-guard").resolve()


def test_with_the_stop_key_a_copied_state_file_still_finds_the_real_summary(tmp_path: Path):
    """The agent copies the (signed) state elsewhere and points CI_GUARD_STATE at it (a step can
    extend $GITHUB_ENV): stop reads the run's real files, not ones planted next to the copy."""
    (tmp_path / "policy.yml").write_text(POLICY)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env, agent_env, key = _start_keyed(tmp_path, sim.url, f"sqlite:///{tmp_path / 'l.db'}")
        assert call(agent_env, "work").status_code == 200
        elsewhere = tmp_path / "agent-dir"
        elsewhere.mkdir()
        copy = elsewhere / "ci-guard-state.json"
        copy.write_text(Path(agent_env["CI_GUARD_STATE"]).read_text())
        forged = {"run_id": json.loads(copy.read_text())["run_id"], "decision": {}, "status": "completed",
                  "cost_usd": "0", "started_at": "2026-01-01T00:00:00+00:00"}
        (elsewhere / "ci-guard-state.summary.json").write_text(json.dumps(forged))
        stopped = cli(tmp_path, "stop", "--format", "json", "--state", str(copy),
                      env={**env, "CI_GUARD_STOP_KEY": key})
    assert stopped.returncode == 0, stopped.stderr
    summary = json.loads(stopped.stdout)
    assert float(summary["cost_usd"]) > 0 and len(summary["calls"]) == 1


def test_with_the_stop_key_a_deleted_state_and_a_killed_proxy_are_recovered_from_the_default_ledger(
        tmp_path: Path):
    """No ledger configured (the default one under RUNNER_TEMP): the agent kills the proxy and
    deletes the state file; stop still finds the run in the ledger start used and closes it."""
    (tmp_path / "policy.yml").write_text(POLICY)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {k: v for k, v in os.environ.items() if k != "CI_GUARD_LEDGER"}
        env.update(ANTHROPIC_API_KEY=KEY, CI_GUARD_ANTHROPIC_UPSTREAM=sim.url, RUNNER_TEMP=str(tmp_path))
        started = cli(tmp_path, "start", "--policy", "policy.yml", "--repo", "acme/web", "--no-draft",
                      "--format", "shell", env=env)
        assert started.returncode == 0, started.stderr
        agent_env, key = exported(started.stdout), stop_key(started.stdout)
        assert call(agent_env, "spend").status_code == 200
        state_path = Path(agent_env["CI_GUARD_STATE"])
        state = json.loads(state_path.read_text())
        default = f"sqlite:///{tmp_path / 'ci-guard' / 'ledger.db'}"
        assert _wait_recorded(default, state["run_id"])
        os.kill(state["pid"], signal.SIGKILL)
        assert _wait_gone(state["pid"])
        state_path.unlink()
        stopped = cli(tmp_path, "stop", "--format", "json", env={**env, "CI_GUARD_STOP_KEY": key})
    assert stopped.returncode == 2, stopped.stderr
    summary = json.loads(stopped.stdout)
    assert summary["run_id"] == state["run_id"] and summary["status"] == "error" and len(summary["calls"]) == 1
