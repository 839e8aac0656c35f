"""`ci-guard check`: exit codes, formats, GitHub outputs, and GitHub/GitLab environments end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import POLICIES, Run

DEFAULT = str(POLICIES / "default.yml")
PR_FLAGS = ["--repo", "acme/web", "--trigger", "pull_request", "--agent", "pr-review", "--base-branch", "main",
            "--no-draft", "--diff-lines", "120", "--changed-file", "src/app.py"]


def test_allow_json(run: Run) -> None:
    code, out, _ = run("check", "--policy", DEFAULT, *PR_FLAGS, "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert (data["decision"], data["rule"], data["model"], data["model_tier"]) == (
        "allow", "protected-review", "claude-sonnet-4-6", "large")
    assert data["limits"]["max_cost_usd"] == "5.000000" and data["limits"]["max_runtime_s"] == 1200
    assert {b["name"] for b in data["budgets"]} == {"org-monthly", "repo-daily"}
    assert data["budgets"][0]["remaining_pct"] == "100.00"
    assert data["context"]["repo"] == "acme/web"


def test_deny_and_skip_exit_1(run: Run) -> None:
    code, out, _ = run("check", "--policy", DEFAULT, *PR_FLAGS, "--diff-lines", "9000")
    assert code == 1 and "deny (rule: oversized-diff)" in out
    code, out, _ = run("check", "--policy", DEFAULT, *PR_FLAGS, "--draft")
    assert code == 1 and "skip (rule: skip-drafts)" in out


def test_budget_snapshot_and_now(run: Run, tmp_path: Path) -> None:
    snap = tmp_path / "budgets.json"
    snap.write_text('{"org-monthly": {"spent_usd": "1700"}}')
    code, out, _ = run("check", "--policy", DEFAULT, *PR_FLAGS, "--budget-snapshot", str(snap),
                       "--now", "2025-02-10T08:00:00Z", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["rule"] == "budget-nearly-spent" and data["limits"]["max_turns"] == 8
    assert data["budgets"][0]["period_start"] == "2025-02-01T00:00:00+00:00"


def test_github_format_writes_outputs_and_summary(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, summary = tmp_path / "out", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, _ = run("check", "--policy", DEFAULT, *PR_FLAGS, "--format", "github")
    assert code == 0
    text = outputs.read_text()
    values = _parse_outputs(text)
    assert values["decision"] == "allow" and values["model"] == "claude-sonnet-4-6"
    assert values["model-tier"] == "large" and values["max-turns"] == "30"
    assert values["max-cost-usd"] == "5.000000" and values["max-runtime-s"] == "1200"
    assert json.loads(values["json"])["rule"] == "protected-review"
    md = summary.read_text()
    assert "| Decision | ✅ **allow** |" in md and "| org-monthly | org acme | $2000 |" in md


def _parse_outputs(text: str) -> dict[str, str]:
    values, lines = {}, iter(text.splitlines())
    for line in lines:
        name, delim = line.split("<<", 1)
        body = []
        for inner in lines:
            if inner == delim:
                break
            body.append(inner)
        values[name] = "\n".join(body)
    return values


def test_invalid_policy_exit_2_lists_every_problem(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nrules:\n  - name: a\n    decision: alow\n    whne: {}\n")
    code, out, err = run("check", "--policy", str(bad), *PR_FLAGS)
    assert code == 2 and out == ""
    assert f"{bad}:4:15: rules[0].decision: Input should be 'allow', 'deny' or 'skip'" in err
    assert f"{bad}:5:5: rules[0].whne: unknown key 'whne'" in err
    assert "Traceback" not in err


def test_bad_flag_and_bad_snapshot_exit_2(run: Run, tmp_path: Path) -> None:
    code, _, err = run("check", "--policy", DEFAULT, "--now", "yesterday")
    assert code == 2 and "ISO 8601" in err
    snap = tmp_path / "s.json"
    snap.write_text("[1]")
    code, _, err = run("check", "--policy", DEFAULT, "--budget-snapshot", str(snap))
    assert code == 2 and "expected an object" in err


def _github_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pull: dict[str, object]) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "opened", "number": 42, "pull_request": pull,
                                 "sender": {"login": "alice"}}))
    for name, value in {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request",
                        "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": "acme/payments-api",
                        "GITHUB_REPOSITORY_OWNER": "acme", "GITHUB_ACTOR": "alice", "GITHUB_WORKFLOW": "review",
                        "GITHUB_RUN_ID": "7", "GITHUB_SERVER_URL": "https://github.com",
                        "CI_GUARD_AGENT": "pr-review"}.items():
        monkeypatch.setenv(name, value)


def _pull(draft: bool = False, base: str = "main") -> dict[str, object]:
    repo = {"full_name": "acme/payments-api"}
    return {"number": 42, "draft": draft, "title": "Fix rounding", "labels": [{"name": "bug"}],
            "additions": 100, "deletions": 20, "changed_files": 3,
            "base": {"ref": base, "repo": repo}, "head": {"ref": "fix/rounding", "sha": "a" * 40, "repo": repo}}


def test_github_pull_request_environment(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _github_env(monkeypatch, tmp_path, _pull())
    code, out, _ = run("check", "--policy", DEFAULT, "--format", "json")
    data = json.loads(out)
    assert code == 0, data
    assert (data["rule"], data["context"]["team"], data["context"]["pr"]) == ("protected-review", "payments", 42)
    assert data["context"]["platform"] == "github" and data["context"]["labels"] == ["bug"]
    _github_env(monkeypatch, tmp_path, _pull(draft=True))
    assert run("check", "--policy", DEFAULT)[0] == 1


def test_gitlab_merge_request_environment(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "merge_request_event",
                        "CI_PROJECT_PATH": "acme/platform/web", "CI_MERGE_REQUEST_PROJECT_PATH": "acme/platform/web",
                        "CI_MERGE_REQUEST_SOURCE_PROJECT_PATH": "acme/platform/web",
                        "CI_MERGE_REQUEST_IID": "7", "CI_MERGE_REQUEST_TITLE": "Add cache",
                        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "release/3.1",
                        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feat/cache",
                        "CI_MERGE_REQUEST_LABELS": "perf,ai:review",
                        "GITLAB_USER_LOGIN": "bob", "CI_GUARD_AGENT": "pr-review"}.items():
        monkeypatch.setenv(name, value)
    code, out, _ = run("check", "--policy", DEFAULT, "--format", "json", "--diff-lines", "40")
    data = json.loads(out)
    assert code == 0, data
    assert (data["rule"], data["model_tier"]) == ("protected-review", "large")
    ctx = data["context"]
    assert (ctx["platform"], ctx["trigger"], ctx["base_branch"], ctx["team"]) == (
        "gitlab", "pull_request", "release/3.1", "payments")
    assert ctx["labels"] == ["perf", "ai:review"]


def test_a_budget_with_nothing_left_denies_and_names_the_budget(run: Run, tmp_path: Path) -> None:
    snap = tmp_path / "budgets.json"
    snap.write_text('{"repo-daily": {"spent_usd": "1000000"}}')
    code, out, _ = run("check", "--policy", DEFAULT, *PR_FLAGS, "--budget-snapshot", str(snap), "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["decision"] == "deny" and data["rule"] == "budget:repo-daily[acme/web]"
    assert data["reason"].startswith("budget repo-daily[acme/web] has nothing left")
