"""Local detection from a real git checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_guard.context.detect import detect_context
from ci_guard.context.local import parse_remote
from tests.context.conftest import commit_all, git, make_repo, pr_change, write


def _clone(upstream: Path, dest: Path, *args: str) -> Path:
    git(upstream.parent, "clone", "-q", *args, f"file://{upstream}", str(dest))
    git(dest, "config", "user.name", "Bob Builder")
    git(dest, "config", "user.email", "bob@acme.example")
    return dest


def test_feature_branch_against_origin_head(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream")
    work = _clone(upstream, tmp_path / "work")
    git(work, "remote", "set-url", "origin", "git@github.com:acme/payments-api.git")
    _, head = pr_change(work)

    ctx = detect_context({}, str(work))

    assert ctx.platform == "local"
    assert (ctx.trigger, ctx.event_name) == ("manual", "local")
    assert (ctx.repo, ctx.org) == ("acme/payments-api", "acme")
    assert (ctx.head_branch, ctx.base_branch) == ("feature/x", "main")
    assert ctx.sha == head
    assert ctx.actor == "Bob Builder"
    assert (ctx.diff_lines, ctx.diff_files) == (3, 3)
    assert sorted(ctx.changed_paths or []) == ["assets/logo.png", "docs/guide.md", "docs/manual.md", "src/app.py"]
    assert ctx.notes == []


def test_origin_head_pointing_to_another_default_branch(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream")
    git(upstream, "branch", "-m", "main", "trunk")
    work = _clone(upstream, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "topic")
    write(work, "x.txt", "x\n")
    commit_all(work, "x")
    ctx = detect_context({}, str(work))
    assert ctx.base_branch == "trunk"
    assert ctx.changed_paths == ["x.txt"]


def test_master_fallback_and_email_as_actor(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", user=None, email="carol@acme.example")
    git(root, "branch", "-m", "main", "master")
    git(root, "checkout", "-q", "-b", "topic")
    write(root, "a.md", "a\nb\n")
    commit_all(root, "a")
    ctx = detect_context({}, str(root))
    assert ctx.base_branch == "master"
    assert ctx.actor == "carol@acme.example"
    assert (ctx.diff_lines, ctx.diff_files, ctx.changed_paths) == (2, 1, ["a.md"])
    assert ctx.repo is None  # no remote


def test_no_base_branch_leaves_paths_unknown_with_a_note(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    git(root, "branch", "-m", "main", "develop")
    ctx = detect_context({}, str(root))
    assert ctx.base_branch is None
    assert ctx.changed_paths is None and ctx.diff_lines is None
    assert any(n.startswith("changed paths unknown") and "main and master" in n for n in ctx.notes)


def test_detached_head_has_no_head_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    ctx = detect_context({}, str(repo))
    assert ctx.head_branch is None
    assert ctx.changed_paths == []  # HEAD is main: a known, empty diff


def test_not_a_git_checkout(tmp_path: Path) -> None:
    ctx = detect_context({}, str(tmp_path))
    assert ctx.platform == "local" and ctx.trigger == "manual"
    assert ctx.changed_paths is None and ctx.actor is None
    assert "not a git checkout" in ctx.notes[0]


def test_shallow_single_branch_clone_has_no_base(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream")
    pr_change(upstream)
    git(upstream, "checkout", "-q", "main")
    work = _clone(upstream, tmp_path / "work", "--depth", "1", "--branch", "feature/x", "--single-branch")
    ctx = detect_context({}, str(work))
    assert ctx.head_branch == "feature/x"
    assert ctx.changed_paths is None
    assert any(n.startswith("changed paths unknown") for n in ctx.notes)


def test_ci_guard_env_overrides(repo: Path) -> None:
    env = {"CI_GUARD_AGENT": "pr-review", "CI_GUARD_TEAM": "payments", "CI_GUARD_COHORT": "wave-2",
           "CI_GUARD_REPO": "acme/other", "CI_GUARD_TRIGGER": "pull_request", "CI_GUARD_ENVIRONMENT": "prod",
           "CI_GUARD_WORKFLOW": "nightly", "CI_GUARD_ACTOR": "dave"}
    ctx = detect_context(env, str(repo))
    assert (ctx.agent, ctx.team, ctx.cohort) == ("pr-review", "payments", "wave-2")
    assert (ctx.repo, ctx.org, ctx.trigger) == ("acme/other", "acme", "pull_request")
    assert (ctx.environment, ctx.workflow, ctx.actor) == ("prod", "nightly", "dave")


def test_invalid_ci_guard_trigger_is_a_context_error(repo: Path) -> None:
    from ci_guard.errors import ContextError

    with pytest.raises(ContextError, match="CI_GUARD_TRIGGER: expected one of pull_request"):
        detect_context({"CI_GUARD_TRIGGER": "pr"}, str(repo))


@pytest.mark.parametrize(("url", "expected"), [
    ("git@github.com:acme/payments-api.git", "acme/payments-api"),
    ("https://github.com/acme/payments-api.git", "acme/payments-api"),
    ("https://github.com/acme/payments-api", "acme/payments-api"),
    ("https://oauth2:secret@gitlab.example.com/acme/platform/payments-api.git", "acme/platform/payments-api"),
    ("ssh://git@gitlab.example.com:2222/acme/platform/api.git", "acme/platform/api"),
    ("/srv/git/repo.git", None),
    ("file:///srv/git/repo.git", None),
    (None, None),
])
def test_parse_remote(url: str | None, expected: str | None) -> None:
    assert parse_remote(url) == expected


def test_shallow_clone_with_both_tips_but_no_merge_base(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream")
    pr_change(upstream)
    git(upstream, "checkout", "-q", "main")
    write(upstream, "later.txt", "main moved on\n")
    commit_all(upstream, "later")
    work = _clone(upstream, tmp_path / "work", "--depth", "1", "--no-single-branch")
    git(work, "checkout", "-q", "feature/x")
    ctx = detect_context({}, str(work))
    assert ctx.base_branch == "main"
    assert ctx.changed_paths is None and ctx.diff_files is None
    assert any(n.startswith("changed paths unknown: `git diff` failed") for n in ctx.notes), ctx.notes
