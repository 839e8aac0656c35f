"""Issue 12 #5: the agent rewrites the state file `ci-guard start` exported to it. `stop` signals
only the run's real proxy (never the pid the file names), and reports the ledger's figures rather
than a forged summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ci_guard.simulator import run_simulator
from tests.meter.test_detached import KEY, POLICY, _alive, call, cli, exported


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
            if not _alive(real_pid):
                break
            time.sleep(0.05)
        assert not _alive(real_pid)  # the real proxy was stopped, not left running
        assert summary["run_id"] == state["run_id"] and float(summary["cost_usd"]) > 0
        assert len(summary["calls"]) == 1
    finally:
        decoy.kill()
        decoy.wait()
