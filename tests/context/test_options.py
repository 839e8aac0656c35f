"""The shared context flags (ci_guard/commands/options.py): precedence and precise errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ci_guard.commands.options import CONTEXT_KEYWORDS, build_context, context_options
from ci_guard.errors import EXIT_INVALID, ContextError
from tests.context.conftest import make_repo


@click.command()
@click.option("--policy")
@context_options
def probe(policy: str | None, **kwargs: Any) -> None:
    click.echo(build_context(policy=policy, **kwargs).model_dump_json())


@pytest.fixture(autouse=True)
def local_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test as a local run in a fresh checkout, even when the suite itself runs in CI."""
    for name in list(os.environ):
        if name in ("GITHUB_ACTIONS", "GITLAB_CI") or name.startswith("CI_GUARD_"):
            monkeypatch.delenv(name)
    root = make_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


def _run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(probe, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _error(*args: str) -> ContextError:
    result = CliRunner().invoke(probe, list(args))
    assert isinstance(result.exception, ContextError), result.output
    assert result.exception.exit_code == EXIT_INVALID
    return result.exception


def test_help_lists_every_flag_once() -> None:
    @click.command()
    @context_options
    @context_options
    def twice(**kwargs: Any) -> None:
        pass

    for cmd in (twice, context_options(probe)):
        _assert_each_flag_once(CliRunner().invoke(cmd, ["--help"]).output)


def _assert_each_flag_once(text: str) -> None:
    for flag in ("--repo", "--actor", "--team", "--trigger", "--base-branch", "--head-branch", "--diff-lines",
                 "--diff-files", "--changed-file", "--label", "--draft / --no-draft", "--fork / --no-fork",
                 "--agent", "--workflow", "--environment", "--pr", "--cohort", "--context"):
        assert text.count(f"  {flag} ") == 1, flag


def test_decorator_passes_exactly_the_documented_keywords() -> None:
    seen: dict[str, Any] = {}

    @click.command()
    @context_options
    def cmd(**kwargs: Any) -> None:
        seen.update(kwargs)

    CliRunner().invoke(cmd, [], catch_exceptions=False)
    assert set(seen) == set(CONTEXT_KEYWORDS)
    assert seen["labels"] == () and seen["changed_paths"] == () and seen["draft"] is None


def test_flags_set_every_field() -> None:
    ctx = _run("--repo", "acme/payments-api", "--actor", "alice", "--team", "payments", "--trigger", "pull_request",
               "--base-branch", "release/2.4", "--head-branch", "fix/x", "--diff-lines", "5001", "--diff-files", "7",
               "--changed-file", "docs/a.md", "--changed-file", "README.md", "--label", "ai:escalate",
               "--label", "backend", "--draft", "--no-fork", "--agent", "pr-review", "--workflow", "AI review",
               "--environment", "prod", "--pr", "42", "--cohort", "wave-2")
    assert ctx["repo"] == "acme/payments-api" and ctx["org"] == "acme"
    assert (ctx["actor"], ctx["team"], ctx["trigger"]) == ("alice", "payments", "pull_request")
    assert (ctx["base_branch"], ctx["head_branch"]) == ("release/2.4", "fix/x")
    assert (ctx["diff_lines"], ctx["diff_files"], ctx["pr"]) == (5001, 7, 42)
    assert ctx["changed_paths"] == ["docs/a.md", "README.md"]
    assert ctx["labels"] == ["ai:escalate", "backend"]
    assert (ctx["draft"], ctx["fork"]) == (True, False)
    assert (ctx["agent"], ctx["workflow"]) == ("pr-review", "AI review")
    assert (ctx["environment"], ctx["cohort"]) == ("prod", "wave-2")


def test_omitted_flags_keep_what_was_detected() -> None:
    ctx = _run()
    assert ctx["platform"] == "local" and ctx["head_branch"] == "main" and ctx["actor"] == "Alice Example"
    assert ctx["changed_paths"] == [] and ctx["draft"] is None


def test_precedence_detection_then_context_file_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_GUARD_AGENT", "from-env")
    monkeypatch.setenv("CI_GUARD_TEAM", "env-team")
    monkeypatch.setenv("CI_GUARD_COHORT", "env-cohort")
    path = tmp_path / "ctx.json"
    path.write_text(json.dumps({"agent": "from-file", "team": "file-team", "labels": ["x"], "draft": True}))
    ctx = _run("--context", str(path), "--agent", "from-flag")
    assert ctx["agent"] == "from-flag"      # flag beats file and env
    assert ctx["team"] == "file-team"       # file beats env
    assert ctx["cohort"] == "env-cohort"    # env beats nothing
    assert ctx["labels"] == ["x"] and ctx["draft"] is True
    assert ctx["head_branch"] == "main"     # detected, untouched


def test_changed_file_flag_retires_the_unknown_paths_note(local_checkout: Path) -> None:
    (local_checkout / ".git" / "refs" / "heads" / "main").rename(local_checkout / ".git" / "refs" / "heads" / "dev")
    (local_checkout / ".git" / "HEAD").write_text("ref: refs/heads/dev\n")
    assert any(n.startswith("changed paths unknown") for n in _run()["notes"])
    ctx = _run("--changed-file", "docs/a.md")
    assert ctx["changed_paths"] == ["docs/a.md"]
    assert not any(n.startswith("changed paths unknown") for n in ctx["notes"])


def test_context_file_can_say_unknown_with_null(tmp_path: Path) -> None:
    path = tmp_path / "ctx.json"
    path.write_text('{"changed_paths": null, "diff_lines": null, "platform": "github"}')
    ctx = _run("--context", str(path))
    assert ctx["changed_paths"] is None and ctx["diff_lines"] is None and ctx["platform"] == "github"


def test_context_file_repo_sets_org_unless_given(tmp_path: Path) -> None:
    path = tmp_path / "ctx.json"
    path.write_text('{"repo": "globex/api"}')
    assert _run("--context", str(path))["org"] == "globex"
    path.write_text('{"repo": "globex/api", "org": "globex-corp"}')
    assert _run("--context", str(path))["org"] == "globex-corp"


def test_bad_input_fails_before_detection_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ci_guard.context.detect as detect

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("detection must not run for invalid input")

    monkeypatch.setattr(detect, "detect_context", boom)
    assert "--pr" in _error("--pr", "x").render()
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert "invalid JSON" in _error("--context", str(bad)).render()


def test_build_context_ignores_unrelated_keywords() -> None:
    ctx = build_context(policy="p.yml", format="json", budget_snapshot=None, repo="acme/x", labels=())
    assert ctx.repo == "acme/x" and ctx.labels == []


@pytest.mark.parametrize(("args", "message"), [
    (["--diff-lines", "abc"], "--diff-lines: expected an integer >= 0, got 'abc'"),
    (["--diff-lines", "-3"], "--diff-lines: expected an integer >= 0, got '-3'"),
    (["--diff-files", "1.5"], "--diff-files: expected an integer >= 0, got '1.5'"),
    (["--pr", "0"], "--pr: expected an integer >= 1, got '0'"),
    (["--trigger", "pr"], "--trigger: expected one of pull_request, push, schedule, manual, comment, other, got 'pr'"),
    (["--repo", " "], "--repo: expected a non-empty value"),
    (["--label", ""], "--label: expected a non-empty value"),
    (["--changed-file", ""], "--changed-file: expected a non-empty value"),
    (["--context", "/nonexistent/ctx.json"], "/nonexistent/ctx.json: context file not found"),
])
def test_invalid_flags(args: list[str], message: str) -> None:
    assert message in _error(*args).render()


@pytest.mark.parametrize(("text", "expected"), [
    ('{\n  "repo": "acme/x",\n  "draft": tru\n}', ":3:12: invalid JSON: Expecting value"),
    ('["not", "an", "object"]', ":1:1: expected a JSON object with RunContext fields, got an array"),
    ('{\n  "repo": "acme/x",\n  "labelz": ["a"]\n}', ":3:3: labelz: unknown field (expected one of: platform, repo,"),
    ('{"repo": "acme/x",\n "diff_lines": "12"}', ":2:2: diff_lines: Input should be a valid integer, got a string"),
    ('{"draft": "yes"}', ":1:2: draft: Input should be a valid boolean, got a string"),
    ('{"labels": ["ok", 3]}', ":1:2: labels[1]: Input should be a valid string, got a number"),
    ('{"platform": "jenkins"}', ":1:2: platform: Input should be 'github', 'gitlab' or 'local'"),
    ('{"trigger": "merge_request"}', ":1:2: trigger: expected one of pull_request, push"),
    ('{"pr": 0}', ":1:2: pr: expected an integer >= 1, got 0"),
])
def test_invalid_context_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "ctx.json"
    path.write_text(text)
    rendered = _error("--context", str(path)).render()
    assert rendered.startswith("invalid context file\n")
    assert f"{path}{expected}" in rendered


def test_every_problem_in_a_context_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "ctx.json"
    path.write_text('{"pr": "7",\n "bogus": 1,\n "fork": 2}')
    rendered = _error("--context", str(path)).render()
    assert ":1:2: pr:" in rendered and ":2:2: bogus: unknown field" in rendered and ":3:2: fork:" in rendered
