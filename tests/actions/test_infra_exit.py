"""The Action and the GitLab component turn an infrastructure failure into a failed step, always.

`ci-guard run` exits 82 and `ci-guard check` exits 3 when the ledger (or a provider key, or the
upstream) fails: not a policy decision. The wrappers used to treat every non-zero check as a deny
and every run code they did not know as the agent's: a wrong ledger secret turned into a notice
and a green step. Here a stand-in `ci-guard` that fails the way the real one does on an unreachable
ledger is first on PATH, so the wrappers' handling is tested whatever the CLI does; the real CLI
against an unreachable ledger is tested in test_e2e_agents.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.actions.github_runner import ActionRunner, base_env
from tests.actions.layout import ROOT
from tests.actions.scenario import REPO, make_workspace, pull_request_event, write_event
from tests.actions.test_e2e_gitlab import interpolate_component, run_job

FAKE_CI_GUARD = """#!/bin/sh
# A stand-in for ci-guard whose ledger cannot be reached.
case "$1" in
  --version) echo "ci-guard, version 0.0.0-test" ;;
  check) echo "ci-guard: error: cannot reach the ledger" >&2; exit 3 ;;
  run|start|stop) echo "ci-guard: error: cannot reach the ledger" >&2; exit 82 ;;
  comment) exit 0 ;;
  *) exit 0 ;;
esac
"""


@pytest.fixture
def shim_path(tmp_path: Path) -> str:
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "ci-guard").write_text(FAKE_CI_GUARD)
    (shims / "ci-guard").chmod(0o755)
    return os.pathsep.join([str(shims), os.environ.get("PATH", "/usr/bin:/bin")])


def _action(tmp_path: Path, shim_path: str, **inputs: str):
    ws = make_workspace(tmp_path / "ws")
    (tmp_path / "temp").mkdir()
    (tmp_path / "home").mkdir()
    event = write_event(tmp_path / "event.json", pull_request_event(ws))
    env = base_env(home=tmp_path / "home", temp=tmp_path / "temp", workspace=ws.path, event_path=event,
                   event_name="pull_request", repo=REPO, extra={"ANTHROPIC_API_KEY": "k"})
    env["PATH"] = shim_path
    runner = ActionRunner(ROOT, env, {"token": "t", "repository": REPO, "event_name": "pull_request",
                                      "workspace": str(ws.path)}, ws.path, tmp_path / "temp")
    return runner.run({"policy": ws.policy, "install": "false", "python-version": "", "comment": "off",
                       "fail-on-deny": "false", **inputs})


@pytest.mark.parametrize("mode", ["run", "check", "start"])
def test_action_fails_on_an_infrastructure_exit_whatever_fail_on_deny_says(tmp_path, shim_path, mode):
    inputs = {"run": {"command": "claude -p hi"}, "check": {}, "start": {"mode": "start"}}[mode]
    result = _action(tmp_path, shim_path, **inputs)
    assert result.failed, result.log
    assert "::error title=ci-guard::" in result.log and "infrastructure failure" in result.log
    assert "this is not a policy decision" in result.log
    assert "::notice" not in result.log
    code = "3" if mode == "check" else "82"
    step = {"run": "run", "check": "check", "start": "start"}[mode]
    assert result.step(step).outputs["exit-code"] == code
    if mode == "run":  # the run step annotates; the Outcome step turns the job red
        assert result.step("run").outcome == "success" and result.steps[-1].outcome == "failure"


@pytest.mark.parametrize("command", ["claude -p hi", ""])
def test_gitlab_component_fails_on_an_infrastructure_exit(tmp_path, shim_path, command):
    ws = make_workspace(tmp_path / "ws")
    _, job = interpolate_component({"policy": ws.policy, "pip-spec": "", "command": command, "comment": "off"})
    env = {"PATH": shim_path, "HOME": str(tmp_path), "CI_PIPELINE_SOURCE": "merge_request_event",
           "CI_MERGE_REQUEST_PROJECT_ID": "1", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "1", "ANTHROPIC_API_KEY": "k"}
    proc = run_job(job, env, ws.path)
    assert proc.returncode == (82 if command else 3), proc.stdout + proc.stderr
    assert "ci-guard: ERROR:" in proc.stdout and "not a policy decision" in proc.stdout
