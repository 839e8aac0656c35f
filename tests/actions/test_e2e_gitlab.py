"""The GitLab CI/CD component, end to end, as a GitLab runner would run its job.

The component's ``spec:inputs`` are interpolated (``$[[ inputs.x ]]``) into the job, the job's
``variables`` and GitLab's predefined merge request variables form the environment, and the
job's script runs with ``sh`` (POSIX, as in images without bash) in a git checkout of the MR, with
the real Claude Code CLI against the simulator and a local GitLab API for the note.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_guard.ledger import open_ledger
from ci_guard.simulator import server as sim_server
from tests.actions.layout import GITLAB_COMPONENT, GITLAB_INCLUDE
from tests.actions.scenario import CLAUDE_ENV, GITLAB_TOKEN, MR, REAL_KEY, REPO, make_workspace
from tests.agents import CLAUDE, require_claude
from tests.forges.fake_gitlab import PROJECT_ID, FakeGitLab

pytestmark = [pytest.mark.node, pytest.mark.slow]

_INPUT = re.compile(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]")


def interpolate_component(inputs: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """GitLab's include-time step: validate inputs against spec, interpolate, return (name, job)."""
    spec_text, body = GITLAB_COMPONENT.read_text().split("\n---\n", 1)
    spec = yaml.safe_load(spec_text)["spec"]["inputs"]
    unknown = set(inputs) - set(spec)
    assert not unknown, f"inputs not in spec: {unknown}"
    values = {}
    for name, item in spec.items():
        if name not in inputs:
            assert "default" in item, f"mandatory input {name} missing"
        value = inputs.get(name, item.get("default"))
        if "options" in item:
            assert value in item["options"], (name, value)
        kind = item.get("type", "string")
        assert isinstance(value, {"string": str, "boolean": bool, "array": list, "number": int | float}[kind]), \
            (name, kind, value)
        values[name] = value
    # GitLab interpolates into the parsed document (a string input stays a string, whatever it holds)
    jobs = _interpolate(yaml.safe_load(body), values)
    ((name, job),) = jobs.items()
    return name, job


def _interpolate(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {_interpolate(k, values): _interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, values) for v in node]
    if isinstance(node, str):
        whole = _INPUT.fullmatch(node.strip())
        if whole:  # a whole value takes the input's own type (boolean, array), as GitLab does
            return values[whole.group(1)]
        return _INPUT.sub(lambda m: str(values[m.group(1)]), node)
    return node


def gitlab_env(ws, fake: FakeGitLab, home: Path, upstream: str, *, fork: bool = False) -> dict[str, str]:
    """The predefined variables of a merge request pipeline, pointed at local services."""
    path = os.pathsep.join([str(CLAUDE.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {
        "PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "CI": "true", "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_SERVER_URL": fake.url,
        "CI_API_V4_URL": f"{fake.url}/api/v4", "CI_PROJECT_ID": str(PROJECT_ID), "CI_PROJECT_PATH": REPO,
        "CI_PROJECT_DIR": str(ws.path), "CI_COMMIT_SHA": ws.head_sha, "CI_COMMIT_REF_NAME": "feature/sub",
        "CI_MERGE_REQUEST_IID": str(MR), "CI_MERGE_REQUEST_PROJECT_ID": str(PROJECT_ID),
        "CI_MERGE_REQUEST_PROJECT_PATH": REPO,
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "99" if fork else str(PROJECT_ID),
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/sub", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": ws.base_sha, "CI_MERGE_REQUEST_TITLE": "Add sub()",
        "CI_MERGE_REQUEST_DRAFT": "false", "CI_MERGE_REQUEST_LABELS": "ai:review",
        "CI_PIPELINE_ID": "1001", "CI_JOB_ID": "2002", "CI_JOB_NAME": "ci-guard-pr-review",
        "GITLAB_USER_LOGIN": "alice", "CI_JOB_TOKEN": "job-token-read-only-000",
        "CI_GUARD_ANTHROPIC_UPSTREAM": upstream, **CLAUDE_ENV,
    }


_VAR_REF = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def job_variables(job: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """The job's variables as GitLab hands them to the runner: ``$VAR`` / ``${VAR}`` references to
    predefined (and earlier) variables are expanded, except in ``{value: ..., expand: false}``."""
    known = dict(env)
    out = {}
    for name, spec in (job.get("variables") or {}).items():
        if isinstance(spec, dict):
            value, expand = str(spec.get("value", "")), spec.get("expand", True)
        else:
            value, expand = str(spec), True
        if expand:
            value = _VAR_REF.sub(lambda m: known.get(m.group(1) or m.group(2), m.group(0)), value)
        out[name] = known[name] = value
    return out


def run_job(job: dict[str, Any], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    variables = job_variables(job, env)
    script = "\n".join(job.get("before_script", []) + job["script"])
    return subprocess.run(["sh", "-c", script], cwd=cwd, env={**env, **variables}, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def sim() -> Iterator[sim_server.Simulator]:
    with sim_server.run_simulator("tool-loop", api_key=REAL_KEY) as simulator:
        yield simulator


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab(path=REPO, tokens={GITLAB_TOKEN: "ci-bot"}, iids=(MR,)) as fake:
        yield fake


def _inputs(**extra: str) -> dict[str, str]:
    return {"policy": ".github/ci-guard.yml", "agent": "pr-review", "preset": "claude-code", "pip-spec": "",
            "command": 'claude -p "Review merge request !$CI_MERGE_REQUEST_IID" --output-format json '
                       "--allowedTools Bash", **extra}


def test_component_job_runs_claude_code_and_posts_the_note(tmp_path: Path, sim, gitlab) -> None:
    require_claude()
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    name, job = interpolate_component(_inputs())
    assert name == "ci-guard-pr-review" and job["stage"] == "test"
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url), "ANTHROPIC_API_KEY": REAL_KEY,
           "GITLAB_TOKEN": GITLAB_TOKEN, "CI_GUARD_LEDGER": ledger}
    proc = run_job(job, env, ws.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    summary = json.loads((ws.path / "ci-guard-summary.json").read_text())  # the job's artifact
    assert summary["status"] == "completed" and summary["decision"]["decision"] == "allow"
    assert summary["decision"]["context"]["platform"] == "gitlab" and summary["decision"]["context"]["pr"] == MR
    store = open_ledger(ledger)
    try:
        (run,) = store.list_runs(repo=REPO, pr=MR)
        assert run.run_id == summary["run_id"] and run.platform == "gitlab"
        assert len(store.list_calls(run.run_id)) == len(sim.served) >= 2
    finally:
        store.close()

    (note,) = gitlab.visible(MR)
    assert note.author == "ci-bot" and "claude-sonnet-4-5" in note.body
    assert REAL_KEY not in note.body and REAL_KEY not in proc.stdout + proc.stderr


def test_plain_include_runs_the_same_job(tmp_path: Path, sim, gitlab) -> None:
    """The include for older GitLab: extend `.ci-guard-agent` and set its variables."""
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    template = yaml.safe_load(GITLAB_INCLUDE.read_text())[".ci-guard-agent"]
    job = {**template, "variables": {**template["variables"],
                                     "CI_GUARD_POLICY": {"value": ".github/ci-guard.yml", "expand": False},
                                     "CI_GUARD_AGENT": {"value": "pr-review", "expand": False},
                                     "CI_GUARD_PIP_SPEC": {"value": "", "expand": False}}}
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url), "ANTHROPIC_API_KEY": REAL_KEY,
           "CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/ledger.db"}
    proc = run_job(job, env, ws.path)  # no command: check only
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "allow (rule: review)" in proc.stdout
    assert gitlab.writes() == [] and sim.served == []


def test_fork_merge_request_without_keys_is_skipped(tmp_path: Path, sim, gitlab) -> None:
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    _, job = interpolate_component(_inputs())
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url, fork=True),
           "CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/ledger.db"}
    proc = run_job(job, env, ws.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from a fork without provider keys" in proc.stdout
    assert sim.served == [] and gitlab.writes() == []


def test_denied_run_fails_the_job_only_with_fail_on_deny(tmp_path: Path, sim, gitlab) -> None:
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url), "ANTHROPIC_API_KEY": REAL_KEY,
           "GITLAB_TOKEN": GITLAB_TOKEN, "CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/ledger.db",
           "CI_MERGE_REQUEST_DRAFT": "true"}
    _, job = interpolate_component(_inputs())
    proc = run_job(job, env, ws.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "did not allow" in proc.stdout and sim.served == []
    assert gitlab.visible(MR) == []  # comment-on: spend (the default) stays quiet on a skipped run
    _, strict = interpolate_component(_inputs(**{"fail-on-deny": "true", "comment-on": "always"}))
    assert run_job(strict, env, ws.path).returncode == 1
    (note,) = gitlab.visible(MR)
    assert "skip-drafts" in note.body


# A merge request author controls the title and the branch names; GitLab would expand a reference
# to them inside a job variable before the script runs, and `sh -c` would then run the $(...).
HOSTILE_TITLE = "x$(touch pwned)`touch pwned2`"
LEAK_COMMAND = ('printf %s "$CI_MERGE_REQUEST_TITLE" > title.txt; '
                'printf %s "$CI_MERGE_REQUEST_SOURCE_BRANCH_NAME" > branch.txt')


def test_merge_request_text_in_the_command_is_data_not_code(tmp_path: Path, sim, gitlab) -> None:
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    _, job = interpolate_component(_inputs(command=LEAK_COMMAND, preset="none"))
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url), "ANTHROPIC_API_KEY": REAL_KEY,
           "GITLAB_TOKEN": GITLAB_TOKEN, "CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/ledger.db",
           "CI_MERGE_REQUEST_TITLE": HOSTILE_TITLE,
           "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "x$(touch${IFS}pwned3)"}
    proc = run_job(job, env, ws.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(ws.path.glob("pwned*"))  # nothing the author wrote ran
    assert (ws.path / "title.txt").read_text() == HOSTILE_TITLE  # it reached the command as text
    assert (ws.path / "branch.txt").read_text() == "x$(touch${IFS}pwned3)"
    assert job_variables(job, env)["CI_GUARD_COMMAND"] == LEAK_COMMAND


def test_the_plain_include_keeps_merge_request_text_out_of_the_code(tmp_path: Path, sim, gitlab) -> None:
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    template = yaml.safe_load(GITLAB_INCLUDE.read_text())[".ci-guard-agent"]
    # what the include's header tells users to write when they extend `.ci-guard-agent`
    job = {**template, "variables": {**template["variables"],
                                     "CI_GUARD_POLICY": {"value": ".github/ci-guard.yml", "expand": False},
                                     "CI_GUARD_AGENT": {"value": "pr-review", "expand": False},
                                     "CI_GUARD_COMMAND": {"value": LEAK_COMMAND, "expand": False},
                                     "CI_GUARD_PIP_SPEC": {"value": "", "expand": False}}}
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url), "ANTHROPIC_API_KEY": REAL_KEY,
           "GITLAB_TOKEN": GITLAB_TOKEN, "CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/ledger.db",
           "CI_MERGE_REQUEST_TITLE": HOSTILE_TITLE}
    proc = run_job(job, env, ws.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(ws.path.glob("pwned*"))
    assert (ws.path / "title.txt").read_text() == HOSTILE_TITLE


def test_the_job_model_expands_like_gitlab() -> None:
    """A canary for job_variables: without expand: false the title would become shell code."""
    job = {"variables": {"A": "t=$CI_MERGE_REQUEST_TITLE", "B": {"value": "$A ${A}", "expand": False},
                         "C": "${A}!", "D": "$UNKNOWN"}}
    out = job_variables(job, {"CI_MERGE_REQUEST_TITLE": "$(id)"})
    assert out == {"A": "t=$(id)", "B": "$A ${A}", "C": "t=$(id)!", "D": "$UNKNOWN"}


def test_component_footer_on_puts_the_cost_on_the_agents_note(tmp_path: Path, sim, gitlab) -> None:
    """`footer-on`: the agent's own note (posted with the same project bot token) gets the one-line cost
    footer instead of a second note; a retried job updates that footer in place."""
    require_claude()
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    agent_note = gitlab.add_note("ci-bot", "**Review:** looks good, one nit.", iid=MR)
    _, job = interpolate_component(_inputs(**{"footer-on": "ci-bot"}))
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url), "ANTHROPIC_API_KEY": REAL_KEY,
           "GITLAB_TOKEN": GITLAB_TOKEN, "CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/ledger.db"}
    for _ in range(2):
        proc = run_job(job, env, ws.path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert gitlab.visible(MR) == [agent_note]
    assert agent_note.body.startswith("**Review:** looks good, one nit.")
    assert agent_note.body.count("<!-- ci-guard-footer:ci-guard-comment valid-at=") == 1
    assert "💸 ci-guard on this merge request: **2 agent runs**" in agent_note.body


def test_test_repair_example_records_the_tests_it_fixed(tmp_path: Path, sim, gitlab) -> None:
    """actions/examples/gitlab-ci.test-repair.example.yml: the component job with the example's inputs,
    its before_script's test run, the metered agent (Claude Code on the simulator, then the edit it would
    make), and its after_script: the repaired tests pass, so the run records tests_fixed = 2."""
    require_claude()
    from tests.actions.layout import EXAMPLES

    example = yaml.safe_load((EXAMPLES / "gitlab-ci.test-repair.example.yml").read_text())
    (include,) = example["include"]
    inputs = {k: v for k, v in include["inputs"].items() if k != "image"}
    fix = "sed -i 's/1 + 1 == 3/1 + 1 == 2/; s/2 - 1 == 0/2 - 1 == 1/' test_calc.py"
    inputs.update({"pip-spec": "", "command": f"{inputs['command']} && {fix}",
                   "policy": ".github/repair.yml"})
    name, job = interpolate_component(inputs)
    assert name == "ci-guard-test-repair" and job["rules"][0]["when"] == "on_failure"
    extra = example[name]
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    (ws.path / "test_calc.py").write_text("def test_add():\n    assert 1 + 1 == 3\n\n\ndef test_sub():\n"
                                          "    assert 2 - 1 == 0\n\n\ndef test_ok():\n    assert True\n")
    (ws.path / ".github" / "repair.yml").write_text(
        "version: 1\ndefaults:\n  model: claude-sonnet-4-5\n  limits: {max_turns: 8, max_cost_usd: 2}\n"
        "rules:\n  - name: repair\n    when: {agent: test-repair}\n    decision: allow\n")
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url), "ANTHROPIC_API_KEY": REAL_KEY,
           "GITLAB_TOKEN": GITLAB_TOKEN, "CI_GUARD_LEDGER": ledger}
    # the image setup lines (apt, venv, npm, pip) are the runner's business; the test run is the example's
    before = [line for line in extra["before_script"] if "junitxml" in line]
    proc = run_job({**job, "before_script": before}, env, ws.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failing before the repair" in proc.stdout
    after = subprocess.run(["sh", "-c", "\n".join(extra["after_script"])], cwd=ws.path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert after.returncode == 0, after.stdout + after.stderr
    summary = json.loads((ws.path / "ci-guard-summary.json").read_text())
    assert f"run {summary['run_id']}: 2 tests fixed" in after.stdout
    report = subprocess.run(["ci-guard", "report", "--ledger", ledger, "--since", "1d", "--by", "agent",
                             "--format", "json"], check=True, capture_output=True, text=True, env=env)
    (row,) = json.loads(report.stdout)["rows"]
    assert row["tests_fixed"] == 2 and row["runs"] == 1


def test_component_hands_off_a_capped_run_even_with_comment_off(tmp_path: Path, sim, gitlab) -> None:
    """A turn cap stops Claude Code; the rule's handoff labels the merge request and asks alice for a
    review through the job's GITLAB_TOKEN, although `comment: off` posts no note."""
    require_claude()
    ws = make_workspace(tmp_path / "project")
    (tmp_path / "home").mkdir()
    (ws.path / ".github" / "capped.yml").write_text(
        "version: 1\ndefaults:\n  model: claude-sonnet-4-5\n  limits: {max_turns: 1, max_cost_usd: 2}\n"
        "rules:\n  - name: review\n    decision: allow\n    handoff: {label: needs-human, request_review: alice}\n")
    _, job = interpolate_component(_inputs(policy=".github/capped.yml", comment="off"))
    env = {**gitlab_env(ws, gitlab, tmp_path / "home", sim.url), "ANTHROPIC_API_KEY": REAL_KEY,
           "GITLAB_TOKEN": GITLAB_TOKEN, "CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/ledger.db"}
    proc = run_job(job, env, ws.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((ws.path / "ci-guard-summary.json").read_text())
    assert summary["status"] == "stopped" and summary["stop_reason"] == "max_turns"
    assert gitlab.labels == ["needs-human"] and gitlab.reviewers == [gitlab.users["alice"]]
    assert gitlab.visible(MR) == []
