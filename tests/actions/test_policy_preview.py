"""actions/examples/policy-preview.yml end to end, as the GitHub runner runs its job.

A ledger of real runs (the scripted agent through `ci-guard run` on the simulator), a git repository
whose pull request changes `.github/ci-guard.yml` in several pushes, and a local GitHub: each push
runs the workflow's steps (tests/actions/github_runner.py: `if:`, `env:`, step outputs, bash) and
the pull request ends with exactly one comment, showing the last push's preview.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from ci_guard.context.model import RunContext
from ci_guard.demo.rehearsal import DEMO_KEY
from ci_guard.ledger import open_ledger
from ci_guard.meter.runner import RunRequest, run_agent
from ci_guard.meter.upstreams import Upstreams
from ci_guard.simulator.server import run_simulator
from tests.actions.github_runner import ActionResult, ActionRunner, base_env
from tests.actions.layout import EXAMPLES, ROOT
from tests.actions.scenario import GITHUB_TOKEN, POLICY, PR, REPO, Workspace, _git, pull_request_event, write_event
from tests.forges.fake_github import FakeGitHub

WORKFLOW = EXAMPLES / "policy-preview.yml"
TAG = "[//]: <> (ci-guard-policy-preview"


def _history(ledger: str, policy: Path) -> None:
    """Three reviews of other PRs through `ci-guard run`: one short, two long ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "CI_GUARD_", "GITHUB_"))}
    for pr, turns in ((3, 2), (4, 6), (5, 7)):
        ctx = RunContext(platform="github", repo=REPO, org="acme", pr=pr, trigger="pull_request", draft=False,
                         fork=False, base_branch="main", actor="alice", agent="pr-review", workflow="review.yml")
        with run_simulator({"turns": turns}, api_key=DEMO_KEY) as sim:
            run_agent(RunRequest(
                policy_path=str(policy), context=ctx, command=[sys.executable, "-m", "ci_guard.demo.agent"],
                ledger_url=ledger, preset="none", quiet=True, environ=env,
                upstreams=Upstreams(anthropic=sim.url, anthropic_api_key=DEMO_KEY), grace_s=1.0, kill_after_s=3.0))


def _job_action(tmp: Path, ledger: str) -> Path:
    """The workflow's job as a composite action the runner emulator runs (secrets filled in)."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    shell = workflow["defaults"]["run"]["shell"]
    steps: list[dict[str, Any]] = []
    for step in workflow["jobs"]["preview"]["steps"]:
        step = dict(step)
        if "run" in step:
            step.setdefault("shell", shell)
        if step.get("name") == "Install ci-guard":
            # The example pins a release from the public repository (no network here); the ci-guard
            # under test is already installed, as in test_examples.py.
            assert "git+https://github.com/ci-guard/ci-guard@v" in step["run"]
            step["run"] = "ci-guard --version"
        if step.get("env"):
            step["env"] = {k: str(v).replace("${{ secrets.CI_GUARD_LEDGER_URL }}", ledger)
                           for k, v in step["env"].items()}
        steps.append(step)
    folder = tmp / "job"
    folder.mkdir(exist_ok=True)
    (folder / "action.yml").write_text(yaml.safe_dump({"name": "policy preview job", "runs": {
        "using": "composite", "steps": steps}}))
    return folder


class PolicyPR:
    def __init__(self, tmp: Path, github: FakeGitHub) -> None:
        self.tmp = tmp
        self.ws = tmp / "workspace"
        self.ws.mkdir()
        _git(self.ws, "init", "-q", "-b", "main")
        (self.ws / ".github").mkdir()
        (self.ws / ".github" / "ci-guard.yml").write_text(POLICY)
        _git(self.ws, "add", "-A")
        _git(self.ws, "commit", "-q", "-m", "base policy")
        self.base = _git(self.ws, "rev-parse", "HEAD")
        _git(self.ws, "checkout", "-q", "-b", "policy-change")
        self.ledger = f"sqlite:///{tmp}/ledger.db"
        self.github = github
        self.temp = tmp / "runner-temp"
        self.temp.mkdir()
        (tmp / "home").mkdir()

    def push(self, policy_text: str) -> ActionResult:
        (self.ws / ".github" / "ci-guard.yml").write_text(policy_text)
        _git(self.ws, "commit", "-q", "-am", "change the policy")
        head = _git(self.ws, "rev-parse", "HEAD")
        event = pull_request_event(Workspace(self.ws, self.base, head))
        event["action"] = "synchronize"
        path = write_event(self.tmp / "event.json", event)
        env = base_env(home=self.tmp / "home", temp=self.temp, workspace=self.ws, event_path=path,
                       event_name="pull_request", repo=REPO,
                       extra={"GITHUB_API_URL": self.github.url, "GITHUB_SHA": head})
        runner = ActionRunner(_job_action(self.tmp, self.ledger), env,
                              {"token": GITHUB_TOKEN, "repository": REPO, "event_name": "pull_request",
                               "event": event, "workspace": str(self.ws)}, self.ws, self.temp)
        return runner.run({})


def test_policy_preview_workflow_keeps_one_comment_over_several_pushes(tmp_path: Path, github: FakeGitHub) -> None:
    pr = PolicyPR(tmp_path, github)
    _history(pr.ledger, pr.ws / ".github" / "ci-guard.yml")
    store = open_ledger(pr.ledger)
    try:
        runs = sorted(store.list_runs(repo=REPO), key=lambda r: r.started_at)
    finally:
        store.close()
    assert len(runs) == 3 and all(r.status == "completed" for r in runs)
    long_runs = sum(1 for r in runs if r.turns > 4)
    assert long_runs == 2

    # push 1: a lower max_turns stops the two long reviews
    first = pr.push(POLICY.replace("max_turns: 8", "max_turns: 4"))
    assert not first.failed, first.log
    comments = github.visible(PR)
    assert len(comments) == 1 and comments[0].body.startswith(TAG)
    assert f"This change would have stopped {long_runs} runs earlier and cut the spend by" in comments[0].body
    assert "| review.yml |" in comments[0].body and "<details>" in comments[0].body
    assert "### ci-guard policy preview" in first.summary

    # push 2: a policy that does not validate: its errors become the comment, the job fails
    second = pr.push(POLICY.replace("decision: deny", "decison: deny"))
    assert second.failed and second.step("preview").outputs["status"] == "2"
    comments = github.visible(PR)
    assert len(comments) == 1 and "is not valid" in comments[0].body
    assert ".github/ci-guard.yml:" in comments[0].body and "decison" in comments[0].body

    # push 3: a deny rule for the reviewer: every review is refused
    third = pr.push(POLICY.replace("    decision: allow", "    decision: deny"))
    assert not third.failed, third.log
    comments = github.visible(PR)
    assert len(comments) == 1
    body = comments[0].body
    assert body.startswith(TAG) and "This change would have denied 3 of 3 runs" in body
    assert "is not valid" not in body and "−100.0 %" in body


def _gitlab_job(inputs: dict[str, str]) -> dict[str, Any]:
    from tests.actions.test_e2e_gitlab import _interpolate

    spec_text, body = (ROOT / "templates" / "policy-preview" / "template.yml").read_text().split("\n---\n", 1)
    spec = yaml.safe_load(spec_text)["spec"]["inputs"]
    assert set(inputs) <= set(spec)
    values = {name: inputs.get(name, item.get("default")) for name, item in spec.items()}
    assert all(v is not None for v in values.values())
    ((name, job),) = _interpolate(yaml.safe_load(body), values).items()
    assert name == "ci-guard-policy-preview"
    return job


def test_gitlab_policy_preview_component_keeps_one_note(tmp_path: Path, github: FakeGitHub) -> None:
    from tests.actions.scenario import GITLAB_TOKEN, MR
    from tests.actions.test_e2e_gitlab import gitlab_env, run_job
    from tests.forges.fake_gitlab import FakeGitLab

    pr = PolicyPR(tmp_path, github)
    _history(pr.ledger, pr.ws / ".github" / "ci-guard.yml")
    job = _gitlab_job({"policy": ".github/ci-guard.yml", "pip-spec": ""})
    assert job["rules"][0]["changes"]["paths"] == [".github/ci-guard.yml"]
    with FakeGitLab(path=REPO, tokens={GITLAB_TOKEN: "ci-bot"}, iids=(MR,)) as gitlab:
        for text, expected in ((POLICY.replace("max_turns: 8", "max_turns: 4"), "stopped 2 runs earlier"),
                               (POLICY.replace("    decision: allow", "    decision: deny"), "denied 3 of 3 runs")):
            (pr.ws / ".github" / "ci-guard.yml").write_text(text)
            _git(pr.ws, "commit", "-q", "-am", "change")
            ws = Workspace(pr.ws, pr.base, _git(pr.ws, "rev-parse", "HEAD"))
            (tmp_path / "home").mkdir(exist_ok=True)
            env = {**gitlab_env(ws, gitlab, tmp_path / "home", "http://127.0.0.1:9"), "CI_GUARD_LEDGER": pr.ledger,
                   "GITLAB_TOKEN": GITLAB_TOKEN}
            proc = run_job(job, env, pr.ws)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            notes = gitlab.visible(MR)
            assert len(notes) == 1 and notes[0].body.startswith(TAG) and expected in notes[0].body
