"""The composite action, end to end, as GitHub would run it.

The steps of ``action.yml`` run in order with their ``if:`` conditions, inputs and step outputs
substituted (tests/actions/github_runner.py), a real ``pull_request`` event payload, real
``GITHUB_OUTPUT`` / ``GITHUB_ENV`` / ``GITHUB_STEP_SUMMARY`` files, the real Claude Code CLI as the
agent, the simulator as Anthropic (it accepts only the real key, so every call provably went
through the proxy) and a local GitHub API for the comment. ``uses:`` steps (setup-python, cache)
are skipped: the test's own Python is on PATH, and ``install: false`` checks it is there.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.ledger import open_ledger
from ci_guard.simulator import server as sim_server
from tests.actions.github_runner import ActionResult, ActionRunner, base_env
from tests.actions.layout import ROOT
from tests.actions.scenario import (
    CLAUDE_ENV,
    GITHUB_TOKEN,
    PR,
    REAL_KEY,
    REPO,
    Workspace,
    make_workspace,
    pull_request_event,
    write_event,
)
from tests.agents import CLAUDE, require_claude
from tests.forges.fake_github import FakeGitHub

pytestmark = [pytest.mark.node, pytest.mark.slow]

CLAUDE_COMMAND = 'claude -p "Review this pull request" --output-format json --allowedTools Bash'


@pytest.fixture
def sim() -> Iterator[sim_server.Simulator]:
    with sim_server.run_simulator("tool-loop", api_key=REAL_KEY) as simulator:
        yield simulator


class Job:
    """One GitHub job on this machine: workspace, event, runner env; runs the action."""

    def __init__(self, tmp: Path, github: FakeGitHub, upstream: str, *, fork: bool = False,
                 draft: bool = False, event_name: str = "pull_request") -> None:
        self.ws: Workspace = make_workspace(tmp / "workspace")
        self.temp = tmp / "runner-temp"
        self.temp.mkdir()
        home = tmp / "home"
        home.mkdir()
        self.ledger = f"sqlite:///{tmp}/ledger.db"
        payload = pull_request_event(self.ws, fork=fork, draft=draft)
        if event_name == "issue_comment":
            payload = issue_comment_event(payload)
        event = write_event(tmp / "event.json", payload)
        extra = {"GITHUB_API_URL": github.url, "GITHUB_SHA": self.ws.head_sha, "GITHUB_ACTOR": "alice",
                 "GITHUB_REF": f"refs/pull/{PR}/merge", "CI_GUARD_ANTHROPIC_UPSTREAM": upstream, **CLAUDE_ENV}
        self.env = base_env(home=home, temp=self.temp, workspace=self.ws.path, event_path=event,
                            event_name=event_name, repo=REPO, extra=extra)
        self.env["PATH"] = os.pathsep.join([str(CLAUDE.parent), self.env["PATH"]])
        self.github_ctx = {"token": GITHUB_TOKEN, "repository": REPO, "event_name": event_name,
                           "workspace": str(self.ws.path)}

    def run(self, action_dir: Path = ROOT, **inputs: str) -> ActionResult:
        runner = ActionRunner(action_dir, self.env, self.github_ctx, self.ws.path, self.temp)
        defaults = {"policy": self.ws.policy, "agent": "pr-review", "ledger": self.ledger,
                    "install": "false", "python-version": ""}
        return runner.run({**defaults, **inputs})

    def runs(self) -> list:
        store = open_ledger(self.ledger)
        try:
            return store.list_runs(repo=REPO, pr=PR)
        finally:
            store.close()

    def calls(self, run_id: str) -> list:
        store = open_ledger(self.ledger)
        try:
            return store.list_calls(run_id)
        finally:
            store.close()


def issue_comment_event(pull_event: dict) -> dict:
    """The `issue_comment` payload for a comment on the PR: no draft, fork, branches or diff."""
    pull = pull_event["pull_request"]
    return {
        "action": "created",
        "issue": {"number": PR, "title": pull["title"], "labels": pull["labels"], "user": pull["user"],
                  "state": "open", "pull_request": {"url": f"https://api.github.com/repos/{REPO}/pulls/{PR}"}},
        "comment": {"id": 1, "body": "@claude please review", "user": {"login": "alice"},
                    "author_association": "MEMBER"},
        "repository": pull_event["repository"], "sender": {"login": "alice"},
    }


def _served_tokens(sim: sim_server.Simulator) -> dict[str, int]:
    """What the simulator served, normalised the way a correct meter records it."""
    total = {"input": 0, "cache_write": 0, "cache_read": 0, "output": 0}
    for record in sim.served:
        for key in total:
            total[key] += int(record["tokens"][f"{key}_tokens"])
    return total


def test_action_runs_claude_code_through_the_proxy_and_comments(tmp_path: Path, sim, github) -> None:
    require_claude()
    job = Job(tmp_path, github, sim.url)
    result = job.run(command=CLAUDE_COMMAND, preset="claude-code", comment="update",
                     **{"anthropic-api-key": REAL_KEY})
    assert not result.failed, result.log
    # uses: steps are not run here, and the check-only step is skipped when a command is given
    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["Set up Python"] == "skipped" and outcomes["Policy check"] == "skipped"
    assert outcomes["Metered agent run"] == "success" and outcomes["Cost comment"] == "success"

    out = result.outputs
    assert out["decision"] == "allow" and out["rule"] == "review"
    assert out["model"] == "claude-sonnet-4-5" and out["max-turns"] == "8" and out["max-cost-usd"] == "2.000000"
    assert out["status"] == "completed" and out["stop-reason"] == "" and out["exit-code"] == "0"

    (run,) = job.runs()
    assert out["run-id"] == run.run_id and Decimal(out["cost-usd"]) == run.cost_usd > 0
    assert run.status == "completed" and run.enforced and run.agent == "pr-review"
    calls = job.calls(run.run_id)
    assert len(calls) == len(sim.served) == run.turns >= 2  # a multi-turn tool loop, every call recorded
    ledger_tokens = {"input": sum(c.usage.input_tokens for c in calls),
                     "cache_write": sum(c.usage.cache_write_tokens for c in calls),
                     "cache_read": sum(c.usage.cache_read_tokens for c in calls),
                     "output": sum(c.usage.output_tokens for c in calls)}
    assert ledger_tokens == _served_tokens(sim)  # exactly what the provider served

    summary = json.loads(Path(out["summary-path"]).read_text())
    assert summary["run_id"] == run.run_id and summary["status"] == "completed"
    assert "claude-sonnet-4-5" in result.summary  # the step summary table

    (comment,) = github.visible(PR)
    assert comment.author == "ci-bot" and "(ci-guard-comment, valid-at=" in comment.body
    assert "claude-sonnet-4-5" in comment.body and "pr-review" in comment.body
    assert REAL_KEY not in comment.body and REAL_KEY not in result.log and REAL_KEY not in json.dumps(summary)


def test_rerun_updates_the_comment_in_place(tmp_path: Path, sim, github) -> None:
    require_claude()
    job = Job(tmp_path, github, sim.url)
    for _ in range(2):
        result = job.run(command=CLAUDE_COMMAND, preset="claude-code", **{"anthropic-api-key": REAL_KEY})
        assert not result.failed, result.log
    assert len(job.runs()) == 2
    assert len(github.visible(PR)) == 1  # one comment, edited, never a duplicate
    assert any(line.startswith("PATCH") for line in github.writes())


def test_fork_pull_request_without_secrets_is_skipped_with_a_notice(tmp_path: Path, sim, github) -> None:
    job = Job(tmp_path, github, sim.url, fork=True)
    result = job.run(command=CLAUDE_COMMAND, preset="claude-code")  # no anthropic-api-key: no secrets
    assert not result.failed, result.log
    assert result.outputs["decision"] == "skip"
    assert result.outputs["status"] == "skipped" and result.outputs["exit-code"] == "80"  # as a policy skip reports it
    assert "::notice title=ci-guard::pull request #12 comes from a fork" in result.log
    assert result.step("run").outcome == "skipped"
    assert job.runs() == [] and sim.served == [] and github.writes() == []


def test_denied_run_comments_and_passes_unless_fail_on_deny(tmp_path: Path, sim, github) -> None:
    job = Job(tmp_path, github, sim.url, draft=True)
    result = job.run(command=CLAUDE_COMMAND, preset="claude-code", **{"anthropic-api-key": REAL_KEY})
    assert not result.failed, result.log
    assert result.outputs["decision"] == "skip" and result.outputs["rule"] == "skip-drafts"
    assert result.outputs["exit-code"] == "80" and sim.served == []
    assert github.visible(PR) == []  # comment-on: spend (the default) stays quiet on a skipped run

    strict = job.run(command=CLAUDE_COMMAND, preset="claude-code", **{"anthropic-api-key": REAL_KEY,
                                                                      "fail-on-deny": "true", "comment-on": "always"})
    (comment,) = github.visible(PR)
    assert "skip-drafts" in comment.body
    assert strict.failed
    assert "fail-on-deny is true" in strict.log


def test_check_only_mode_gives_the_decision(tmp_path: Path, sim, github) -> None:
    job = Job(tmp_path, github, sim.url)
    result = job.run()  # no command: policy check only
    assert not result.failed, result.log
    assert result.step("check").outcome == "success" and result.step("run").outcome == "skipped"
    assert result.outputs["decision"] == "allow" and result.outputs["max-turns"] == "8"
    assert github.writes() == []  # no run, no comment


def test_start_and_stop_meter_claude_code_started_as_a_separate_process(tmp_path: Path, sim, github) -> None:
    """mode: start exports the proxy through GITHUB_ENV; the agent (here the real Claude Code CLI,
    as claude-code-action would run it) is another process; mode: stop settles and comments."""
    require_claude()
    job = Job(tmp_path, github, sim.url)
    started = job.run(mode="start", preset="claude-code", **{"anthropic-api-key": REAL_KEY})
    assert not started.failed, started.log
    assert started.outputs["decision"] == "allow"
    exported = started.env_exported
    assert exported["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert exported["ANTHROPIC_API_KEY"] != REAL_KEY and "CI_GUARD_STATE" in exported
    assert f"::add-mask::{exported['ANTHROPIC_API_KEY']}" in started.log
    assert started.outputs["rule"] == "review"
    assert started.outputs["proxy-url"].startswith("http://127.0.0.1:")
    assert exported["ANTHROPIC_BASE_URL"].startswith(started.outputs["proxy-url"])
    assert started.outputs["state-path"] == exported["CI_GUARD_STATE"]

    # The agent step: a separate process with the job environment plus what start exported.
    agent_env = {**job.env, **exported}
    agent_env.pop("CI_GUARD_ANTHROPIC_UPSTREAM")
    proc = subprocess.run(
        [str(CLAUDE), "-p", "Review this pull request", "--output-format", "json", "--allowedTools", "Bash",
         "--model", started.outputs["model"], "--max-turns", started.outputs["max-turns"]],
        cwd=job.ws.path, env=agent_env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reported = json.loads(proc.stdout)

    job.env.update(exported)  # later steps of the job see GITHUB_ENV
    stopped = job.run(mode="stop", comment="update", **{"stop-key": started.outputs["stop-key"]})
    assert not stopped.failed, stopped.log
    assert stopped.outputs["status"] == "completed" and stopped.outputs["run-id"] == started.outputs["run-id"]

    (run,) = job.runs()
    assert run.run_id == started.outputs["run-id"] and run.status == "completed"
    assert len(job.calls(run.run_id)) == len(sim.served) >= 2
    assert Decimal(stopped.outputs["cost-usd"]) == run.cost_usd
    # ci-guard's price for the tokens served equals Claude Code's own total_cost_usd (each call is
    # rounded to the micro-dollar, so the sum may differ by at most half a micro-dollar per call)
    drift = abs(run.cost_usd - Decimal(str(reported["total_cost_usd"])))
    assert drift <= Decimal("0.0000005") * len(sim.served), (run.cost_usd, reported["total_cost_usd"])
    summary = json.loads(Path(stopped.outputs["summary-path"]).read_text())
    assert summary["run_id"] == run.run_id and summary["turns"] == len(sim.served)
    assert len(github.visible(PR)) == 1


def test_sub_actions_run_check_then_run_then_comment(tmp_path: Path, sim, github) -> None:
    """The pieces in actions/ compose like the main action, with steps in between."""
    require_claude()
    job = Job(tmp_path, github, sim.url)
    checked = job.run(ROOT / "actions" / "check")
    assert checked.outputs["decision"] == "allow" and checked.outputs["model"] == "claude-sonnet-4-5"
    ran = job.run(ROOT / "actions" / "run", command=CLAUDE_COMMAND, preset="claude-code",
                  **{"anthropic-api-key": REAL_KEY})
    assert not ran.failed, ran.log
    assert ran.outputs["status"] == "completed" and Path(ran.outputs["summary-path"]).is_file()
    commented = ActionRunner(ROOT / "actions" / "comment", job.env, job.github_ctx, job.ws.path, job.temp).run(
        {"summary-path": ran.outputs["summary-path"], "policy": job.ws.policy, "ledger": job.ledger,
         "install": "false", "python-version": ""})
    assert not commented.failed, commented.log
    assert len(github.visible(PR)) == 1


def test_issue_comment_context_is_read_with_the_action_token(tmp_path: Path, sim, github) -> None:
    """An issue_comment event knows nothing of the PR's draft state, fork or branches: the check
    step reads them from the API with the action's github-token (the policy's skip-drafts rule
    can only match then), and the token never shows in the log."""
    job = Job(tmp_path, github, sim.url, event_name="issue_comment")
    github.pulls[PR] = pull_request_event(job.ws, draft=True)["pull_request"]
    github.pull_files[PR] = [{"filename": "src/app.py", "status": "modified", "additions": 5, "deletions": 0,
                              "changes": 5, "sha": "0" * 40}]
    result = job.run()  # no command: the policy check only
    assert not result.failed, result.log
    reads = [r for r in github.requests if r.line == f"GET /api/v3/repos/{REPO}/pulls/{PR}"]
    assert reads and reads[0].headers["authorization"].split()[-1] == GITHUB_TOKEN
    assert result.outputs["decision"] == "skip" and result.outputs["rule"] == "skip-drafts"
    assert GITHUB_TOKEN not in result.log


def test_comment_action_posts_where_repo_and_pr_say_not_where_the_artifact_says(tmp_path: Path, sim,
                                                                               github) -> None:
    """The second stage of the fork pattern: the summary came from PR code and names another PR;
    the `repo`/`pr` inputs (from trusted event data) decide where the comment goes."""
    from tests.report import builders as b

    job = Job(tmp_path, github, sim.url)
    forged = b.run(dec=b.decision(context=b.context(repo=REPO, pr=99, title="forged target")))
    summary = tmp_path / "artifact" / "summary.json"
    summary.parent.mkdir()
    summary.write_text(json.dumps(forged.model_dump(mode="json")))

    def comment(**inputs: str) -> ActionResult:
        runner = ActionRunner(ROOT / "actions" / "comment", job.env, job.github_ctx, job.ws.path, job.temp)
        return runner.run({"summary-path": str(summary), "install": "false", "python-version": "", **inputs})

    untrusted = comment()
    assert not untrusted.failed and github.visible(99) == [] and github.visible(PR) == []
    trusted = comment(repo=REPO, pr=str(PR))
    assert not trusted.failed, trusted.log
    (posted,) = github.visible(PR)
    assert posted.author == "ci-bot" and "pr-review" in posted.body


def test_comment_action_puts_a_footer_on_the_agents_comment_and_hands_off(tmp_path: Path, sim, github) -> None:
    """`footer-on`: the cost goes into the agent's own comment (no second bot comment), and a run a cap
    stopped gets the policy's handoff (label, review request, mention) through the same token."""
    from tests.report import builders as b

    job = Job(tmp_path, github, sim.url)
    github.add_pull(PR, author="dev-dana")
    agent = github.add_comment("ci-bot", "**Review done.** Two nits inline.")
    capped = b.run("run-capped", run_status="stopped", stop_reason="max_cost", total="5.01",
                   dec=b.decision(rule="review", context=b.context(repo=REPO, pr=PR)))
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(capped.model_dump(mode="json")))
    policy = tmp_path / "handoff.yml"
    policy.write_text("version: 1\nrules:\n  - name: review\n    decision: allow\n    handoff:\n"
                      "      label: needs-human\n      request_review: acme/platform\n      mention: author\n")

    def comment() -> ActionResult:
        runner = ActionRunner(ROOT / "actions" / "comment", job.env, job.github_ctx, job.ws.path, job.temp)
        return runner.run({"summary-path": str(summary), "policy": str(policy), "footer-on": "ci-bot",
                           "install": "false", "python-version": ""})

    for _ in range(2):  # a re-run changes nothing twice
        result = comment()
        assert not result.failed, result.log
    assert len(github.visible(PR)) == 1 and agent.body.startswith("**Review done.** Two nits inline.")
    assert agent.body.count("<!-- ci-guard-footer:") == 1 and "**$5.01** in total" in agent.body
    assert "@dev-dana, the agent was stopped by its cost cap" in agent.body
    assert github.labels(PR) == ["needs-human"]
    assert [t["slug"] for t in github.pulls[PR]["requested_teams"]] == ["platform"]
    assert len([w for w in github.handoff_writes if w[1].endswith("/labels")]) == 1
    assert GITHUB_TOKEN not in result.log


def _example_step(example: str, name: str) -> dict:
    import yaml

    workflow = yaml.safe_load((ROOT / "actions" / "examples" / example).read_text())
    return next(s for job in workflow["jobs"].values() for s in job["steps"] if s.get("name") == name)


def test_test_repair_records_the_tests_it_fixed_when_the_repaired_tests_pass(tmp_path: Path, sim, github) -> None:
    """The example test-repair workflow's own steps around the action: tests before (two fail), the
    metered agent (Claude Code on the simulator, then the fix it would make), tests after; the run
    then carries tests_fixed = 2 in the ledger and in `ci-guard report`."""
    require_claude()
    job = Job(tmp_path, github, sim.url)
    ws = job.ws.path
    (ws / "test_calc.py").write_text("def test_add():\n    assert 1 + 1 == 3\n\n\ndef test_sub():\n"
                                     "    assert 2 - 1 == 0\n\n\ndef test_ok():\n    assert True\n")
    policy = ws / ".github" / "repair.yml"
    policy.write_text("version: 1\ndefaults:\n  model: claude-sonnet-4-5\n  limits: {max_turns: 8, max_cost_usd: 2}\n"
                      "rules:\n  - name: repair\n    when: {agent: test-repair}\n    decision: allow\n")
    temp = job.temp
    step_env = {**job.env, "GITHUB_OUTPUT": str(tmp_path / "verify-output")}

    def bash(step: dict, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=ws,
                              env={**step_env, **env}, capture_output=True, text=True, timeout=300)

    before = bash(_example_step("codex-test-repair.yml", "Tests before the repair"),
                  JUNIT=str(temp / "tests-before.xml"))
    assert before.returncode == 0 and "2 failed" in before.stdout, before.stdout + before.stderr

    # the agent: a metered Claude Code run, then the edit it would make (the simulator writes no code)
    fix = "sed -i 's/1 + 1 == 3/1 + 1 == 2/; s/2 - 1 == 0/2 - 1 == 1/' test_calc.py"
    ran = job.run(policy=".github/repair.yml", agent="test-repair", preset="claude-code", comment="off",
                  command=f"{CLAUDE_COMMAND} && {fix}", **{"anthropic-api-key": REAL_KEY})
    assert not ran.failed, ran.log
    assert ran.outputs["exit-code"] == "0" and ran.outputs["status"] == "completed"

    verify = bash(_example_step("codex-test-repair.yml", "Re-run the tests and record the fixed ones"),
                  CI_GUARD_LEDGER=job.ledger, RUN_ID=ran.outputs["run-id"], BEFORE=str(temp / "tests-before.xml"),
                  AFTER=str(temp / "tests-after.xml"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"run {ran.outputs['run-id']}: 2 tests fixed" in verify.stdout
    assert (tmp_path / "verify-output").read_text().strip() == "passed=true"
    report = subprocess.run(["ci-guard", "report", "--ledger", job.ledger, "--since", "1d", "--by", "workflow",
                             "--format", "json"], check=True, capture_output=True, text=True, env=job.env)
    (row,) = json.loads(report.stdout)["rows"]
    assert row["tests_fixed"] == 2
    assert Decimal(row["cost_per_fixed_test_usd"]) == (Decimal(ran.outputs["cost-usd"]) / 2).quantize(
        Decimal(row["cost_per_fixed_test_usd"]))


def test_test_repair_records_nothing_when_the_tests_still_fail(tmp_path: Path) -> None:
    ws = tmp_path
    (ws / "test_calc.py").write_text("def test_add():\n    assert 1 + 1 == 3\n")
    for name, out in (("Tests before the repair", "before"),):
        subprocess.run(["bash", "-c", _example_step("codex-test-repair.yml", name)["run"]], cwd=ws, check=True,
                       env={**os.environ, "JUNIT": str(ws / f"{out}.xml")}, capture_output=True)
    step = _example_step("codex-test-repair.yml", "Re-run the tests and record the fixed ones")
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=ws, capture_output=True, text=True,
                          env={**os.environ, "CI_GUARD_LEDGER": f"sqlite:///{ws}/none.db", "RUN_ID": "r1",
                               "BEFORE": str(ws / "before.xml"), "AFTER": str(ws / "after.xml"),
                               "GITHUB_OUTPUT": str(ws / "out")})
    assert proc.returncode == 0 and "still fail" in proc.stdout
    assert (ws / "out").read_text().strip() == "passed=false" and not (ws / "none.db").exists()


def test_action_outputs_what_the_context_policy_saved(tmp_path: Path, sim, github) -> None:
    """context-saved-usd: the run summary's context_savings, as the Action's output (run mode)."""
    from tests.actions.scenario import POLICY

    require_claude()
    job = Job(tmp_path, github, sim.url)
    policy = tmp_path / "context-policy.yml"
    # every call of the tool loop routed to the small tier (Claude Code manages its own caching and
    # context editing, which the policy leaves alone)
    policy.write_text(POLICY.replace(
        "    when: {trigger: pull_request, agent: pr-review}\n    decision: allow\n",
        "    when: {trigger: pull_request, agent: pr-review}\n    decision: allow\n"
        "    context:\n      route: [{when: {tools: present}, model: claude-haiku-4-5, name: loop}]\n"))
    result = job.run(command=CLAUDE_COMMAND, preset="claude-code", policy=str(policy),
                     **{"anthropic-api-key": REAL_KEY})
    assert not result.failed, result.log
    out = result.outputs
    (run,) = job.runs()
    summary = json.loads(Path(out["summary-path"]).read_text())
    saved = Decimal(out["context-saved-usd"])
    assert saved == Decimal(summary["context_savings"]["saved_usd"]) == run.context_saved_usd > 0
    assert {r["model"] for r in sim.served} == {"claude-haiku-4-5"}
    assert summary["context_savings"]["calls_routed"] == len(sim.served) >= 2
    assert len(out["context-saved-usd"].split(".")[1]) == 6  # the one money format of step outputs


def test_action_context_saved_is_zero_without_a_context_policy(tmp_path: Path, sim, github) -> None:
    require_claude()
    job = Job(tmp_path, github, sim.url)
    result = job.run(command=CLAUDE_COMMAND, preset="claude-code", **{"anthropic-api-key": REAL_KEY})
    assert not result.failed, result.log
    assert result.outputs["context-saved-usd"] == "0.000000"


def test_comment_off_still_hands_off_a_capped_run(tmp_path: Path, sim, github) -> None:
    """`comment: off` posts no comment, but the comment step still applies the rule's handoff."""
    from tests.report import builders as b

    job = Job(tmp_path, github, sim.url)
    github.add_pull(PR, author="dev-dana")
    capped = b.run("run-capped", run_status="stopped", stop_reason="max_turns",
                   dec=b.decision(rule="review", context=b.context(repo=REPO, pr=PR)))
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(capped.model_dump(mode="json")))
    policy = tmp_path / "handoff.yml"
    policy.write_text("version: 1\nrules:\n  - name: review\n    decision: allow\n    handoff:\n"
                      "      label: needs-human\n      mention: author\n")
    runner = ActionRunner(ROOT / "actions" / "comment", job.env, job.github_ctx, job.ws.path, job.temp)
    result = runner.run({"summary-path": str(summary), "policy": str(policy), "comment": "off",
                         "install": "false", "python-version": ""})
    assert not result.failed, result.log
    assert github.labels(PR) == ["needs-human"] and github.visible(PR) == []
    assert "the handoff's mention was not posted" in result.log
