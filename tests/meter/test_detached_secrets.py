"""Issue 12 #3: the state file `ci-guard start` exports to the agent (CI_GUARD_STATE) holds no secret."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ci_guard.ledger import open_ledger
from ci_guard.simulator import run_simulator
from tests.meter.test_detached import KEY, POLICY, call, cli, exported

PASSWORD = "Ledger-Pa55word-xyz"


def with_password(url: str) -> str:
    # The test server trusts every local user, so any password works: what matters is where it goes.
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@", 1)


def test_the_state_file_the_agent_can_read_holds_no_ledger_password(tmp_path: Path, any_ledger: str):
    url = with_password(any_ledger)
    if url.startswith("sqlite"):
        url = any_ledger + f"?password={PASSWORD}"  # SQLite ignores it; it must still stay out of the file
    (tmp_path / "policy.yml").write_text(POLICY)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "RUNNER_TEMP": str(tmp_path), "CI_GUARD_LEDGER": url}
        started = cli(tmp_path, "start", "--policy", "policy.yml", "--repo", "acme/web", "--no-draft",
                      "--format", "shell", env=env)
        assert started.returncode == 0, started.stderr
        agent_env = exported(started.stdout)
        state_path = Path(agent_env["CI_GUARD_STATE"])
        assert PASSWORD not in state_path.read_text() and PASSWORD not in started.stdout + started.stderr
        assert "CI_GUARD_LEDGER" not in agent_env
        assert call(agent_env, "hello").status_code == 200  # the proxy still writes to the ledger
        stopped = cli(tmp_path, "stop", "--format", "json", env=env)
        assert stopped.returncode == 0, stopped.stderr
    summary = json.loads(stopped.stdout)
    for path in tmp_path.iterdir():  # nothing ci-guard left next to the state file names the password
        if path.is_file() and path.suffix in (".json", ".log", ".jsonl"):
            assert PASSWORD not in path.read_text(errors="replace"), path
    store = open_ledger(url)
    try:
        run = store.get_run(summary["run_id"])
        assert run.status == "completed" and len(store.list_calls(summary["run_id"])) == 1
    finally:
        store.close()


def test_stop_without_the_password_says_what_it_needs(tmp_path: Path):
    from ci_guard.errors import InvalidInputError
    from ci_guard.meter.detached import ledger_for_state

    data = {"run_id": "r", "ledger_url": "postgresql://postgres:***@db/ci"}
    with pytest.raises(InvalidInputError, match="needs its password"):
        ledger_for_state(data, None)
    assert ledger_for_state(data, "postgresql://postgres:pw@db/ci") == "postgresql://postgres:pw@db/ci"
    assert ledger_for_state({"ledger_url": "sqlite:///x.db"}, None) == "sqlite:///x.db"
