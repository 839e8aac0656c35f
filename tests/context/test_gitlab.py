"""GitLab CI detection from predefined variable sets and a real git checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_guard.context.detect import detect_context
from tests.context.conftest import commit_all, git, gitlab_env, make_repo, pr_change, write

HEAD_SHA = "b1f2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4"
PIPELINE = "https://gitlab.example.com/acme/platform/payments-api/-/pipelines/981234"


def test_merge_request_pipeline(tmp_path: Path) -> None:
    ctx = detect_context(gitlab_env("gitlab_merge_request_event.json"), str(tmp_path))
    assert ctx.platform == "gitlab"
    assert (ctx.repo, ctx.org) == ("acme/platform/payments-api", "acme")
    assert (ctx.trigger, ctx.event_name, ctx.pr) == ("pull_request", "merge_request_event", 17)
    assert (ctx.base_branch, ctx.head_branch) == ("main", "feature/refunds")
    assert ctx.labels == ["ai:review", "backend"]
    assert (ctx.draft, ctx.fork) == (False, False)
    assert (ctx.actor, ctx.job, ctx.title) == ("alice", "ai-review", "Add partial refunds")
    assert ctx.sha == HEAD_SHA and ctx.run_url == PIPELINE
    assert ctx.changed_paths is None
    assert any(n.startswith("changed paths unknown") and "no API token" in n for n in ctx.notes)


def test_draft_merge_request(tmp_path: Path) -> None:
    ctx = detect_context(gitlab_env("gitlab_merge_request_draft.json"), str(tmp_path))
    assert ctx.draft is True and ctx.labels == [] and ctx.pr == 18


@pytest.mark.parametrize(("title", "draft"), [
    ("Draft: refunds", True), ("[Draft] refunds", True), ("(draft) refunds", True),
    ("Drafting the refunds spec", False), ("Add refunds", False),
])
def test_draft_from_title_on_gitlab_before_17_10(tmp_path: Path, title: str, draft: bool) -> None:
    env = gitlab_env("gitlab_merge_request_event.json", CI_MERGE_REQUEST_TITLE=title)
    del env["CI_MERGE_REQUEST_DRAFT"]
    assert detect_context(env, str(tmp_path)).draft is draft


def test_fork_merge_request_run_in_the_parent_project(tmp_path: Path) -> None:
    ctx = detect_context(gitlab_env("gitlab_merge_request_fork.json"), str(tmp_path))
    assert ctx.fork is True
    assert ctx.repo == "acme/platform/payments-api" and ctx.actor == "mallory"
    assert ctx.labels == ["community", "ai:review"]


def test_fork_merge_request_run_in_the_fork(tmp_path: Path) -> None:
    """CI_PROJECT_ID equals the source project here; the MR's own project id still reveals the fork."""
    ctx = detect_context(gitlab_env("gitlab_merge_request_fork_in_fork.json"), str(tmp_path))
    assert ctx.fork is True
    assert ctx.repo == "acme/platform/payments-api" and ctx.org == "acme"  # attributed to the target


@pytest.mark.parametrize(("fixture", "trigger", "branch", "actor"), [
    ("gitlab_push.json", "push", "main", "alice"),
    ("gitlab_schedule.json", "schedule", "main", "release-bot"),
    ("gitlab_web.json", "manual", "release/2.4", "alice"),
    ("gitlab_api.json", "manual", "main", "deploy-bot"),
])
def test_branch_pipelines(tmp_path: Path, fixture: str, trigger: str, branch: str, actor: str) -> None:
    ctx = detect_context(gitlab_env(fixture), str(tmp_path))
    assert ctx.trigger == trigger and ctx.actor == actor
    assert (ctx.base_branch, ctx.head_branch) == (branch, branch)
    assert ctx.pr is None and ctx.fork is None and ctx.draft is None
    assert ctx.changed_paths is None and any(n.startswith("changed paths unknown") for n in ctx.notes)


def test_push_pipeline_fields(tmp_path: Path) -> None:
    ctx = detect_context(gitlab_env("gitlab_push.json"), str(tmp_path))
    assert (ctx.environment, ctx.workflow) == ("staging", "Deploy main")


def test_tag_pipeline_has_no_branch(tmp_path: Path) -> None:
    ctx = detect_context(gitlab_env("gitlab_tag_push.json"), str(tmp_path))
    assert ctx.trigger == "push" and ctx.head_branch is None


@pytest.mark.parametrize(("source", "trigger"), [
    ("trigger", "manual"), ("note", "comment"), ("pipeline", "other"), ("parent_pipeline", "other"),
    ("external_pull_request_event", "pull_request"),
])
def test_pipeline_source_mapping(tmp_path: Path, source: str, trigger: str) -> None:
    ctx = detect_context(gitlab_env("gitlab_web.json", CI_PIPELINE_SOURCE=source), str(tmp_path))
    assert (ctx.trigger, ctx.event_name) == (trigger, source)


def test_merge_request_with_history_uses_diff_base_sha(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    base, head = pr_change(root)
    env = gitlab_env("gitlab_merge_request_event.json", CI_MERGE_REQUEST_DIFF_BASE_SHA=base, CI_COMMIT_SHA=head)
    ctx = detect_context(env, str(root))
    assert (ctx.diff_lines, ctx.diff_files) == (3, 3)
    assert sorted(ctx.changed_paths or []) == ["assets/logo.png", "docs/guide.md", "docs/manual.md", "src/app.py"]
    assert ctx.notes == []


def test_merge_request_in_a_shallow_clone_notes_the_missing_base(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream")
    base, head = pr_change(upstream)
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature/x", f"file://{upstream}", str(work))
    env = gitlab_env("gitlab_merge_request_event.json", CI_MERGE_REQUEST_DIFF_BASE_SHA=base, CI_COMMIT_SHA=head)
    ctx = detect_context(env, str(work))
    assert ctx.changed_paths is None and ctx.diff_lines is None
    note = next(n for n in ctx.notes if n.startswith("changed paths unknown"))
    assert f"base commit {base[:12]} is not in the clone" in note


def test_push_pipeline_with_history_uses_before_sha(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    base, head = pr_change(root)
    env = gitlab_env("gitlab_push.json", CI_COMMIT_BEFORE_SHA=base, CI_COMMIT_SHA=head, CI_COMMIT_BRANCH="feature/x")
    ctx = detect_context(env, str(root))
    assert (ctx.diff_lines, ctx.diff_files) == (3, 3)


def test_new_branch_push_notes_there_is_nothing_to_compare(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    env = gitlab_env("gitlab_push.json", CI_COMMIT_BEFORE_SHA="0" * 40, CI_COMMIT_SHA=git(root, "rev-parse", "HEAD"))
    ctx = detect_context(env, str(root))
    assert any("created the branch" in n for n in ctx.notes)


def _merged_results_repo(root: Path, train: bool = False) -> dict[str, str]:
    """The MR adds docs/x.md; after the MR forked, main changed src/app.py. GitLab then merges the
    source into the target (for a merge train: into the train's previous merge commit) and runs the
    pipeline on that merge commit. Returns the shas a merged-results pipeline would see."""
    make_repo(root)
    base = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "feature/docs")
    write(root, "docs/x.md", "new doc\n")
    source = commit_all(root, "add docs/x.md")
    git(root, "checkout", "-q", "main")
    write(root, "src/app.py", "main moved on\n")
    commit_all(root, "main changes src/app.py")
    git(root, "checkout", "-q", "--detach", "main")
    if train:  # an earlier MR of the train, merged first
        git(root, "checkout", "-q", "-b", "feature/other", base)
        write(root, "other.txt", "other\n")
        commit_all(root, "other MR")
        git(root, "checkout", "-q", "--detach", "main")
        git(root, "merge", "-q", "--no-ff", "-m", "train: other", "feature/other")
    git(root, "merge", "-q", "--no-ff", "-m", "merged result", "feature/docs")
    return {"base": base, "source": source, "merge": git(root, "rev-parse", "HEAD")}


@pytest.mark.parametrize("event_type", ["merged_result", "merge_train"])
@pytest.mark.parametrize("with_source_sha", [True, False])
def test_merged_results_pipeline_counts_only_the_mr_changes(tmp_path: Path, event_type: str,
                                                             with_source_sha: bool) -> None:
    root = tmp_path / "repo"
    shas = _merged_results_repo(root, train=event_type == "merge_train")
    env = gitlab_env("gitlab_merge_request_event.json", CI_MERGE_REQUEST_EVENT_TYPE=event_type,
                     CI_MERGE_REQUEST_DIFF_BASE_SHA=shas["base"], CI_COMMIT_SHA=shas["merge"],
                     CI_MERGE_REQUEST_SOURCE_BRANCH_SHA=shas["source"] if with_source_sha else "")
    ctx = detect_context(env, str(root))
    assert ctx.changed_paths == ["docs/x.md"]
    assert (ctx.diff_files, ctx.diff_lines) == (1, 1)
    if with_source_sha:
        assert ctx.sha == shas["source"]


def test_source_sha_differing_from_commit_sha_means_a_merged_result(tmp_path: Path) -> None:
    """Older GitLab without CI_MERGE_REQUEST_EVENT_TYPE: the differing source sha gives it away."""
    root = tmp_path / "repo"
    shas = _merged_results_repo(root)
    env = gitlab_env("gitlab_merge_request_event.json", CI_MERGE_REQUEST_EVENT_TYPE="",
                     CI_MERGE_REQUEST_DIFF_BASE_SHA=shas["base"], CI_COMMIT_SHA=shas["merge"],
                     CI_MERGE_REQUEST_SOURCE_BRANCH_SHA=shas["source"])
    assert detect_context(env, str(root)).changed_paths == ["docs/x.md"]


def test_merged_result_without_a_merge_commit_leaves_paths_unknown(tmp_path: Path) -> None:
    """Neither the source commit nor a merge commit at CI_COMMIT_SHA: never fall back to the target's changes."""
    root = tmp_path / "repo"
    shas = _merged_results_repo(root)
    env = gitlab_env("gitlab_merge_request_event.json", CI_MERGE_REQUEST_EVENT_TYPE="merged_result",
                     CI_MERGE_REQUEST_DIFF_BASE_SHA=shas["base"], CI_COMMIT_SHA=git(root, "rev-parse", "main"),
                     CI_MERGE_REQUEST_SOURCE_BRANCH_SHA="")
    ctx = detect_context(env, str(root))
    assert ctx.changed_paths is None
    assert any(n.startswith("changed paths unknown") and "merge commit" in n for n in ctx.notes), ctx.notes
