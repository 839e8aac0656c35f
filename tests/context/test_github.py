"""GitHub Actions detection from realistic event payloads and a real git checkout."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ci_guard.context.detect import detect_context
from ci_guard.errors import ContextError
from tests.context.conftest import commit_all, git, github_env, load_payload, make_repo, pr_change, write

HEAD_SHA = "b1f2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4"


def _detect(tmp_path: Path, event: str, payload: Any, cwd: Path | None = None, **env: str):
    return detect_context(github_env(tmp_path, event, payload, **env), str(cwd or tmp_path))


@pytest.mark.parametrize(("event", "fixture", "expected"), [
    ("pull_request", "github_pull_request_opened.json",
     {"pr": 42, "trigger": "pull_request", "draft": False, "fork": False, "labels": [],
      "base_branch": "main", "head_branch": "feature/refunds", "diff_lines": 150, "diff_files": 4,
      "title": "Add partial refunds", "sha": HEAD_SHA}),
    ("pull_request", "github_pull_request_synchronize.json",
     {"pr": 42, "diff_lines": 225, "diff_files": 6, "fork": False}),
    ("pull_request", "github_pull_request_labeled.json",
     {"labels": ["ai:review", "ai:escalate"], "trigger": "pull_request"}),
    ("pull_request", "github_pull_request_draft.json",
     {"pr": 43, "draft": True, "head_branch": "wip/refunds-v2"}),
    ("pull_request", "github_pull_request_fork.json",
     {"pr": 44, "fork": True, "head_branch": "main", "base_branch": "main"}),
    ("pull_request", "github_pull_request_deleted_fork.json", {"pr": 45, "fork": True}),
    ("pull_request_target", "github_pull_request_target_fork.json",
     {"trigger": "pull_request", "event_name": "pull_request_target", "fork": True, "labels": ["safe-to-test"]}),
])
def test_pull_request_events(tmp_path: Path, event: str, fixture: str, expected: dict[str, Any]) -> None:
    ctx = _detect(tmp_path, event, fixture)
    assert ctx.platform == "github"
    assert (ctx.repo, ctx.org, ctx.actor) == ("acme/payments-api", "acme", "alice")
    assert (ctx.workflow, ctx.job) == ("AI review", "review")
    assert ctx.run_url == "https://github.com/acme/payments-api/actions/runs/9123456789"
    for field, value in expected.items():
        assert getattr(ctx, field) == value, field
    # No history (not a checkout) and no token: lines and files from the payload, paths unknown.
    assert ctx.changed_paths is None
    assert any(n.startswith("changed paths unknown") and "no API token" in n for n in ctx.notes)


def test_push_without_history_takes_paths_from_the_payload(tmp_path: Path) -> None:
    ctx = _detect(tmp_path, "push", "github_push.json", GITHUB_REF="refs/heads/main", GITHUB_SHA=HEAD_SHA)
    assert (ctx.trigger, ctx.base_branch, ctx.head_branch, ctx.pr) == ("push", "main", "main", None)
    assert ctx.changed_paths == ["src/refunds.py", "src/api.py", "docs/refunds.md", "docs/old.md"]
    assert (ctx.diff_files, ctx.diff_lines) == (4, None)
    assert any(n.startswith("diff lines unknown") for n in ctx.notes)


def test_push_with_too_many_commits_in_the_payload_leaves_paths_unknown(tmp_path: Path) -> None:
    payload = load_payload("github_push.json")
    payload["commits"] = [payload["commits"][0]] * 20  # GitHub lists at most 20
    ctx = _detect(tmp_path, "push", payload, GITHUB_REF="refs/heads/main")
    assert ctx.changed_paths is None
    assert any("does not list every commit" in n for n in ctx.notes)


def test_push_with_history_uses_git(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    before = git(root, "rev-parse", "HEAD")
    write(root, "src/new.py", "a\nb\nc\n")
    after = commit_all(root, "more")
    payload = dict(load_payload("github_push.json"), before=before, after=after)
    ctx = _detect(tmp_path, "push", payload, cwd=root, GITHUB_REF="refs/heads/main", GITHUB_SHA=after)
    assert (ctx.diff_lines, ctx.diff_files, ctx.changed_paths) == (3, 1, ["src/new.py"])
    assert ctx.sha == after


def test_push_of_a_tag_has_no_branch(tmp_path: Path) -> None:
    ctx = _detect(tmp_path, "push", "github_push.json", GITHUB_REF="refs/tags/v1.2.0")
    assert ctx.base_branch is None and ctx.head_branch is None


@pytest.mark.parametrize(("event", "fixture", "trigger"), [
    ("schedule", "github_schedule.json", "schedule"),
    ("workflow_dispatch", "github_workflow_dispatch.json", "manual"),
    ("release", "github_schedule.json", "other"),
])
def test_runs_without_a_diff(tmp_path: Path, event: str, fixture: str, trigger: str) -> None:
    ctx = _detect(tmp_path, event, fixture, GITHUB_REF="refs/heads/main")
    assert (ctx.trigger, ctx.event_name) == (trigger, event)
    assert (ctx.base_branch, ctx.head_branch) == ("main", "main")
    assert ctx.pr is None and ctx.changed_paths is None and ctx.diff_lines is None
    assert any(f"a {event} run has no diff" in n for n in ctx.notes)


def test_issue_comment_on_a_pull_request(tmp_path: Path) -> None:
    ctx = _detect(tmp_path, "issue_comment", "github_issue_comment_pr.json", GITHUB_ACTOR="bob",
                  GITHUB_REF="refs/heads/main")
    assert (ctx.trigger, ctx.event_name, ctx.pr) == ("comment", "issue_comment", 42)
    assert ctx.actor == "bob"  # who commented, not the PR author
    assert ctx.labels == ["ai:review"] and ctx.draft is False and ctx.title == "Add partial refunds"
    assert ctx.sha is None  # GITHUB_SHA is the default branch here, not the PR
    assert ctx.base_branch is None and ctx.changed_paths is None
    assert any("issue_comment event carries no diff" in n for n in ctx.notes)


def test_issue_comment_on_a_plain_issue(tmp_path: Path) -> None:
    ctx = _detect(tmp_path, "issue_comment", "github_issue_comment_issue.json", GITHUB_REF="refs/heads/main")
    assert ctx.trigger == "comment" and ctx.pr is None
    assert ctx.head_branch == "main"


def _pr_payload(base: str, head: str, fixture: str = "github_pull_request_opened.json") -> dict[str, Any]:
    payload = copy.deepcopy(load_payload(fixture))
    payload["pull_request"]["base"]["sha"] = base
    payload["pull_request"]["head"]["sha"] = head
    return payload


def test_pull_request_with_full_history_uses_git_not_the_payload(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    base, head = pr_change(root)
    ctx = _detect(tmp_path, "pull_request", _pr_payload(base, head), cwd=root)
    assert (ctx.diff_lines, ctx.diff_files) == (3, 3)  # git, not the payload's 150 / 4
    assert sorted(ctx.changed_paths or []) == ["assets/logo.png", "docs/guide.md", "docs/manual.md", "src/app.py"]
    assert not any(n.startswith("changed paths unknown") for n in ctx.notes)


def _moved_main_merge(root: Path) -> tuple[str, str, str]:
    """A PR (pr_change) whose base moved on after base.sha (main changed README.md), checked out as
    GitHub's test merge commit refs/pull/N/merge. Returns (stale base sha, PR head sha, merge sha)."""
    base, head = pr_change(root)
    git(root, "checkout", "-q", "main")
    write(root, "README.md", "# demo\nmain moved on\n")
    commit_all(root, "main moves on")
    git(root, "checkout", "-q", "--detach", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge feature/x into main", "feature/x")
    return base, head, git(root, "rev-parse", "HEAD")


PR_PATHS = ["assets/logo.png", "docs/guide.md", "docs/manual.md", "src/app.py"]


def test_pull_request_merge_commit_checkout_ignores_later_base_changes(tmp_path: Path) -> None:
    """A labeled event with fetch-depth 0: base.sha is stale, HEAD is the merge commit. Only the PR's
    changes count, not what main gained after base.sha."""
    root = make_repo(tmp_path / "repo")
    base, head, merge = _moved_main_merge(root)
    payload = _pr_payload(base, head, "github_pull_request_labeled.json")
    ctx = _detect(tmp_path, "pull_request", payload, cwd=root, GITHUB_SHA=merge)
    assert sorted(ctx.changed_paths or []) == PR_PATHS
    assert (ctx.diff_lines, ctx.diff_files) == (3, 3)


def test_pull_request_merge_commit_checkout_needs_no_pr_head_ref(tmp_path: Path) -> None:
    """fetch-depth 2: the merge commit and its parents are all that is needed."""
    upstream = make_repo(tmp_path / "upstream")
    base, head, merge = _moved_main_merge(upstream)
    git(upstream, "update-ref", "refs/pull/42/merge", merge)
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", str(work))
    git(work, "fetch", "-q", "--depth", "2", f"file://{upstream}", "refs/pull/42/merge")
    git(work, "checkout", "-q", "--detach", "FETCH_HEAD")
    ctx = _detect(tmp_path, "pull_request", _pr_payload(base, head), cwd=work, GITHUB_SHA=merge)
    assert sorted(ctx.changed_paths or []) == PR_PATHS


def test_checkout_that_is_not_the_pr_merge_uses_base_and_head(tmp_path: Path) -> None:
    """HEAD is a merge commit, but not of this PR's head: base.sha...head.sha instead."""
    root = make_repo(tmp_path / "repo")
    base, head, merge = _moved_main_merge(root)
    payload = _pr_payload(base, head)
    git(root, "checkout", "-q", "-b", "other", base)
    write(root, "other.txt", "x\n")
    commit_all(root, "other")
    git(root, "checkout", "-q", "--detach", merge)
    git(root, "merge", "-q", "--no-ff", "-m", "unrelated merge", "other")
    ctx = _detect(tmp_path, "pull_request", payload, cwd=root, GITHUB_SHA=merge)
    assert sorted(ctx.changed_paths or []) == PR_PATHS


def test_pull_request_target_does_not_diff_the_base_checkout(tmp_path: Path) -> None:
    """pull_request_target checks out the base branch; HEAD is not the PR, so git must not be used."""
    root = make_repo(tmp_path / "repo")
    base = git(root, "rev-parse", "HEAD")
    payload = _pr_payload(base, "f" * 40, "github_pull_request_target_fork.json")
    ctx = _detect(tmp_path, "pull_request_target", payload, cwd=root, GITHUB_SHA=base)
    assert (ctx.diff_lines, ctx.diff_files) == (150, 4)  # from the payload
    assert ctx.changed_paths is None
    assert any("head commit ffffffffffff is not in the clone" in n for n in ctx.notes)


def test_shallow_clone_without_the_base_commit(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream")
    base, head = pr_change(upstream)
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature/x", f"file://{upstream}", str(work))
    ctx = _detect(tmp_path, "pull_request", _pr_payload(base, head), cwd=work)
    assert ctx.changed_paths is None
    assert (ctx.diff_lines, ctx.diff_files) == (150, 4)
    note = next(n for n in ctx.notes if n.startswith("changed paths unknown"))
    assert f"base commit {base[:12]} is not in the clone" in note and "no API token" in note


def test_missing_event_file_is_a_note(tmp_path: Path) -> None:
    env = github_env(tmp_path, "pull_request", "github_pull_request_opened.json",
                     GITHUB_EVENT_PATH=str(tmp_path / "nope.json"))
    ctx = detect_context(env, str(tmp_path))
    assert ctx.pr is None and ctx.trigger == "pull_request"
    assert any("unreadable" in n for n in ctx.notes)
    assert any("the event payload has no pull_request object" in n for n in ctx.notes)


def test_invalid_event_json_is_a_context_error_with_line_and_column(tmp_path: Path) -> None:
    env = github_env(tmp_path, "pull_request", "github_pull_request_opened.json")
    Path(env["GITHUB_EVENT_PATH"]).write_text('{\n  "action": "opened",\n  "number": 42,,\n}')
    with pytest.raises(ContextError) as info:
        detect_context(env, str(tmp_path))
    assert f"{env['GITHUB_EVENT_PATH']}:3:16: invalid JSON" in info.value.render()


def test_event_payload_that_is_not_an_object(tmp_path: Path) -> None:
    env = github_env(tmp_path, "push", "github_push.json")
    Path(env["GITHUB_EVENT_PATH"]).write_text("[1, 2]")
    with pytest.raises(ContextError, match="invalid GitHub event payload"):
        detect_context(env, str(tmp_path))


def test_odd_payload_shapes_do_not_crash(tmp_path: Path) -> None:
    payload = load_payload("github_pull_request_opened.json")
    payload["pull_request"].update(head="garbage", base=None, labels="x", number="42", draft="yes")
    ctx = _detect(tmp_path, "pull_request", payload)
    assert ctx.pr is None and ctx.draft is None and ctx.labels == []
    assert ctx.fork is True  # no head repository known: the cautious answer


def test_agent_from_env(tmp_path: Path) -> None:
    ctx = _detect(tmp_path, "pull_request", "github_pull_request_opened.json", CI_GUARD_AGENT="pr-review")
    assert ctx.agent == "pr-review"


@pytest.mark.parametrize(("event", "fixture", "expected"), [
    ("pull_request_review", "github_pull_request_review.json",
     {"pr": 44, "fork": True, "draft": False, "base_branch": "main", "head_branch": "main",
      "labels": ["ai:review"], "actor": "bob"}),
    ("pull_request_review_comment", "github_pull_request_review_comment.json",
     {"pr": 42, "fork": False, "draft": True, "base_branch": "main", "head_branch": "feature/refunds",
      "title": "Add partial refunds", "sha": HEAD_SHA, "actor": "bob"}),
])
def test_review_events_are_comments_on_the_pull_request(tmp_path: Path, event: str, fixture: str,
                                                        expected: dict[str, Any]) -> None:
    ctx = _detect(tmp_path, event, fixture, GITHUB_ACTOR="bob")
    assert (ctx.trigger, ctx.event_name) == ("comment", event)
    for field, value in expected.items():
        assert getattr(ctx, field) == value, field


MERGE_GROUP_REF = "gh-readonly-queue/main/pr-42-6dcb09b5b57875f334f61aebed695e2e4193db5e"


def test_merge_group_event(tmp_path: Path) -> None:
    ctx = _detect(tmp_path, "merge_group", "github_merge_group.json", GITHUB_REF=f"refs/heads/{MERGE_GROUP_REF}",
                  GITHUB_SHA="c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7")
    assert (ctx.trigger, ctx.event_name) == ("other", "merge_group")
    assert (ctx.base_branch, ctx.head_branch) == ("main", MERGE_GROUP_REF)
    assert ctx.sha == "c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
    assert ctx.pr is None and ctx.fork is None and ctx.changed_paths is None
    assert any(n.startswith("changed paths unknown") and "not a git checkout" in n for n in ctx.notes), ctx.notes


def test_merge_group_diff_from_base_sha_to_head_sha(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    _, _, merge = _moved_main_merge(root)
    payload = load_payload("github_merge_group.json")
    group_base = git(root, "rev-parse", f"{merge}^1")  # the queue's parent commit: main as it is now
    payload["merge_group"].update(base_sha=group_base, head_sha=merge)
    ctx = _detect(tmp_path, "merge_group", payload, cwd=root, GITHUB_REF=f"refs/heads/{MERGE_GROUP_REF}",
                  GITHUB_SHA=merge)
    assert sorted(ctx.changed_paths or []) == PR_PATHS
    assert ctx.base_branch == "main"


def test_workflow_run_of_a_pull_request(tmp_path: Path) -> None:
    ctx = _detect(tmp_path, "workflow_run", "github_workflow_run.json", GITHUB_REF="refs/heads/main")
    assert (ctx.trigger, ctx.event_name) == ("other", "workflow_run")
    assert (ctx.pr, ctx.fork, ctx.head_branch, ctx.base_branch) == (42, False, "feature/refunds", "main")
    assert ctx.sha == HEAD_SHA
    assert ctx.changed_paths is None
    assert any(n.startswith("changed paths unknown") and "no API token" in n for n in ctx.notes), ctx.notes


def test_workflow_run_of_a_fork_pull_request(tmp_path: Path) -> None:
    """GitHub lists no pull_requests for a fork's run: PR and base stay unknown, the fork is detected."""
    ctx = _detect(tmp_path, "workflow_run", "github_workflow_run_fork.json", GITHUB_REF="refs/heads/main")
    assert (ctx.pr, ctx.fork, ctx.head_branch, ctx.base_branch) == (None, True, "main", None)
    assert ctx.sha == "f00dfacef00dfacef00dfacef00dfacef00dface"


def test_workflow_run_of_a_push_is_on_its_branch(tmp_path: Path) -> None:
    payload = load_payload("github_workflow_run.json")
    payload["workflow_run"].update(event="push", head_branch="main", pull_requests=[])
    ctx = _detect(tmp_path, "workflow_run", payload, GITHUB_REF="refs/heads/main")
    assert (ctx.pr, ctx.fork, ctx.head_branch, ctx.base_branch) == (None, False, "main", "main")


def test_workflow_run_diff_from_the_pull_request_shas(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    base, head = pr_change(root)
    git(root, "checkout", "-q", "main")  # workflow_run checks out the default branch
    payload = load_payload("github_workflow_run.json")
    payload["workflow_run"]["pull_requests"][0]["base"]["sha"] = base
    payload["workflow_run"]["pull_requests"][0]["head"]["sha"] = head
    payload["workflow_run"]["head_sha"] = head
    ctx = _detect(tmp_path, "workflow_run", payload, cwd=root, GITHUB_REF="refs/heads/main")
    assert sorted(ctx.changed_paths or []) == PR_PATHS
