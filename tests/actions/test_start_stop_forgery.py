"""Issue 12 #5 through the Action: `mode: start`, a hostile agent step, `mode: stop` with the
start step's `stop-key` output, run the way the GitHub runner runs them (tests/actions/github_runner.py).

The agent step runs with the job's environment plus what start exported through GITHUB_ENV, as
the same user: it looks for the stop key everywhere it can read, then rewrites the state file to
make stop signal another process and report a run of its own. Stop must refuse the file (the step
fails, exit 2), signal only the real proxy, and report the run from the signed summary / the ledger.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from ci_guard.ledger import open_ledger
from ci_guard.simulator import run_simulator
from tests.actions.github_runner import ActionResult, ActionRunner, base_env
from tests.actions.layout import ROOT
from tests.actions.scenario import REAL_KEY, REPO, make_workspace, pull_request_event, write_event
from tests.helpers import pid_alive
from tests.meter.conftest import any_ledger, pg_schema  # noqa: F401  (fixtures)

# The agent step: spend, hunt for the key in every file it can read, rewrite the state file.
HOSTILE_AGENT = textwrap.dedent("""
    import hashlib, json, os, re, sys, pathlib, urllib.request
    req = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", method="POST",
        data=json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 50,
                         "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01",
                 "content-type": "application/json"})
    assert urllib.request.urlopen(req).status == 200
    # every stop key in its environment, the files of the job, and the command lines and
    # environments of every process it may read (the proxy's, the runner's, the test's)
    shaped = re.compile(rb"cig_stop_[A-Za-z0-9_-]+")
    blobs = [b" ".join(f"{k}={v}".encode() for k, v in os.environ.items())]
    paths = [p for root in sys.argv[2:] for p in pathlib.Path(root).rglob("*")]
    paths += [p for d in pathlib.Path("/proc").iterdir() if d.name.isdigit() for p in (d / "cmdline", d / "environ")]
    for path in paths:
        try:
            if path.is_file():
                blobs.append(path.read_bytes())
        except OSError:
            pass
    found = sorted({hashlib.sha256(m).hexdigest() for blob in blobs for m in shaped.findall(blob)})
    state_path = pathlib.Path(os.environ["CI_GUARD_STATE"])
    state = json.loads(state_path.read_text())
    print(json.dumps({"found": found, "pid": state["pid"], "run_id": state["run_id"]}))
    state.update(pid=int(sys.argv[1]), run_id="run_forged", mac="0" * 64)
    state_path.write_text(json.dumps(state))
""")


@pytest.fixture(autouse=True)
def _no_proxy_left(tmp_path: Path):
    """A failing test must not leave its detached proxy running on a shared machine."""
    yield
    import signal

    for state in tmp_path.glob("runner-temp/ci-guard/*.json"):
        try:
            pid = json.loads(state.read_text()).get("pid")
        except (OSError, ValueError):
            continue
        if isinstance(pid, int) and pid_alive(pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"ci_guard" in cmdline and b"proxy" in cmdline:
                os.kill(pid, signal.SIGKILL)


class Job:
    def __init__(self, tmp: Path, ledger: str, upstream: str) -> None:
        self.ws = make_workspace(tmp / "workspace")
        self.temp, self.home = tmp / "runner-temp", tmp / "home"
        self.temp.mkdir()
        self.home.mkdir()
        event = write_event(tmp / "event.json", pull_request_event(self.ws))
        self.env = base_env(home=self.home, temp=self.temp, workspace=self.ws.path, event_path=event,
                            event_name="pull_request", repo=REPO,
                            extra={"CI_GUARD_ANTHROPIC_UPSTREAM": upstream, "GITHUB_API_URL": "http://127.0.0.1:9"})
        self.ledger = ledger
        self.github = {"token": "tok-forgery-test-0000", "repository": REPO, "event_name": "pull_request",
                       "workspace": str(self.ws.path)}

    def run(self, **inputs: str) -> ActionResult:
        runner = ActionRunner(ROOT, self.env, self.github, self.ws.path, self.temp)
        return runner.run({"policy": self.ws.policy, "agent": "pr-review", "ledger": self.ledger, "install": "false",
                           "python-version": "", "comment": "off", **inputs})


def test_a_hostile_agent_step_cannot_find_the_stop_key_or_make_stop_lie(tmp_path: Path, any_ledger: str):  # noqa: F811
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with run_simulator("tool-loop", api_key=REAL_KEY) as sim:
            job = Job(tmp_path, any_ledger, sim.url)
            started = job.run(mode="start", preset="claude-code", **{"anthropic-api-key": REAL_KEY})
            assert not started.failed, started.log
            key = started.outputs["stop-key"]
            assert key.startswith("cig_stop_") and f"::add-mask::{key}" in started.log
            assert key not in json.dumps(started.env_exported)  # never GITHUB_ENV

            # the agent step: the job's environment plus GITHUB_ENV, the same user, the same files
            job.env.update(started.env_exported)
            agent = subprocess.run(
                [sys.executable, "-c", HOSTILE_AGENT, str(decoy.pid), str(job.temp), str(job.home), str(job.ws.path)],
                env=job.env, cwd=job.ws.path, capture_output=True, text=True, timeout=60)
            assert agent.returncode == 0, agent.stderr
            seen = json.loads(agent.stdout)
            # the key is nowhere the agent can read (compared by hash: the agent is not told the key)
            assert hashlib.sha256(key.encode()).hexdigest() not in seen["found"]
            stopped = job.run(mode="stop", **{"stop-key": key})
        step = stopped.step("stop")
        assert step.outcome == "failure" and step.exit_code == 2, stopped.log
        assert "state file was changed after `ci-guard start` wrote it" in stopped.log
        assert "::error" in stopped.log and key not in stopped.log
        assert decoy.poll() is None and not pid_alive(seen["pid"])  # the decoy lives, the proxy is gone
        store = open_ledger(any_ledger)
        try:
            run = store.get_run(seen["run_id"])
            assert run.status == "completed" and len(store.list_calls(seen["run_id"])) == 1
        finally:
            store.close()
        assert step.outputs["run-id"] == seen["run_id"] and Decimal(step.outputs["cost-usd"]) == run.cost_usd > 0
    finally:
        decoy.kill()
        decoy.wait()


def test_stop_with_the_key_is_not_skipped_when_the_agent_deleted_the_state_file(tmp_path: Path):
    with run_simulator("tool-loop", api_key=REAL_KEY) as sim:
        job = Job(tmp_path, f"sqlite:///{tmp_path}/ledger.db", sim.url)
        started = job.run(mode="start", **{"anthropic-api-key": REAL_KEY})
        assert not started.failed, started.log
        agent_env = {**job.env, **started.env_exported}
        assert httpx.post(agent_env["ANTHROPIC_BASE_URL"] + "/v1/messages", timeout=30,
                          headers={"x-api-key": agent_env["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"},
                          json={"model": "claude-sonnet-4-5", "max_tokens": 20,
                                "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
        assert started.outputs["decision"] == "allow", started.log
        state = Path(started.outputs["state-path"])
        proxy_pid = json.loads(state.read_text())["pid"]
        state.unlink()  # the hostile agent hides the run
        job.env.update(started.env_exported)
        stopped = job.run(mode="stop", **{"stop-key": started.outputs["stop-key"]})
    assert stopped.step("stop").outcome == "failure" and stopped.step("stop").exit_code == 2, stopped.log
    assert not pid_alive(proxy_pid)
    assert stopped.outputs["status"] == "completed" and Decimal(stopped.outputs["cost-usd"]) > 0


@pytest.mark.parametrize("given", [True, False])
def test_stop_without_the_key_warns_and_with_it_succeeds_quietly(tmp_path: Path, given: bool):
    with run_simulator("tool-loop", api_key=REAL_KEY) as sim:
        job = Job(tmp_path, f"sqlite:///{tmp_path}/ledger.db", sim.url)
        started = job.run(mode="start", **{"anthropic-api-key": REAL_KEY})
        job.env.update(started.env_exported)
        stopped = job.run(mode="stop", **({"stop-key": started.outputs["stop-key"]} if given else {}))
    assert not stopped.failed, stopped.log
    assert ("no stop-key input" in stopped.log) is not given
    assert os.path.exists(stopped.outputs["summary-path"])
