"""The forge API fallback (PyGithub, python-gitlab) against a local fake forge on 127.0.0.1."""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_guard.context.detect import detect_context
from ci_guard.context.forge_paths import ApiUnavailable, github_pull, gitlab_mr
from tests.context.conftest import github_env, gitlab_env, load_payload
from tests.context.fake_forge import FakeForge, github_file, gitlab_change

GH_TOKEN = "ghs_" + "T" * 36
GL_TOKEN = "glpat-" + "S" * 20


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    with FakeForge() as server:
        yield server


def _pull(number: int = 42, **changes: Any) -> dict[str, Any]:
    pull = copy.deepcopy(load_payload("github_pull_request_opened.json")["pull_request"])
    pull.update(number=number, **changes)
    return pull


def _files(n: int) -> list[dict[str, Any]]:
    files = [github_file(f"src/mod_{i:03}.py", additions=2, deletions=1) for i in range(n - 1)]
    files.append(github_file("docs/manual.md", status="renamed", additions=0, previous="docs/guide.md"))
    return files


# --- GitHub -----------------------------------------------------------------------------------


def test_github_files_follow_pagination_past_thirty_items(forge: FakeForge) -> None:
    forge.pulls[("acme/payments-api", 42)] = _pull(additions=260, deletions=130, changed_files=130)
    forge.pull_files[("acme/payments-api", 42)] = _files(130)

    facts = github_pull(forge.url, "acme/payments-api", 42, GH_TOKEN)

    assert facts.files == 130 and facts.lines == 390
    assert facts.paths is not None and len(facts.paths) == 131  # 129 + renamed file's old and new path
    assert facts.paths[:2] == ["src/mod_000.py", "src/mod_001.py"]
    assert facts.paths[-2:] == ["docs/guide.md", "docs/manual.md"]
    assert (facts.base_branch, facts.head_branch, facts.draft, facts.fork) == ("main", "feature/refunds", False, False)
    file_pages = [r for r in forge.requests if r["path"].endswith("/files")]
    assert [r["query"].get("page", ["1"])[0] for r in file_pages] == ["1", "2"]
    assert all(r["query"]["per_page"] == ["100"] for r in file_pages)
    assert all(GH_TOKEN in r["headers"]["Authorization"] for r in forge.requests)


def test_github_file_list_shorter_than_changed_files_means_unknown_paths(forge: FakeForge) -> None:
    forge.pulls[("acme/payments-api", 42)] = _pull(changed_files=3500)
    forge.pull_files[("acme/payments-api", 42)] = _files(40)
    facts = github_pull(forge.url, "acme/payments-api", 42, GH_TOKEN)
    assert facts.paths is None and facts.files == 3500
    assert "listed 40 of 3500" in facts.notes[0]


def test_github_fork_with_deleted_head_repo(forge: FakeForge) -> None:
    pull = _pull()
    pull["head"]["repo"] = None
    forge.pulls[("acme/payments-api", 42)] = pull
    forge.pull_files[("acme/payments-api", 42)] = _files(2)
    assert github_pull(forge.url, "acme/payments-api", 42, GH_TOKEN).fork is True


def test_github_http_error_is_api_unavailable_without_the_token(forge: FakeForge) -> None:
    forge.fail_status = 401
    with pytest.raises(ApiUnavailable) as info:
        github_pull(forge.url, "acme/payments-api", 42, GH_TOKEN)
    assert "HTTP 401" in str(info.value) and GH_TOKEN not in str(info.value)


def test_unreachable_forge_is_api_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(ApiUnavailable, match="GitHub API request failed"):
        github_pull(f"http://127.0.0.1:{port}", "acme/payments-api", 42, GH_TOKEN)


def test_slow_forge_times_out(forge: FakeForge) -> None:
    forge.delay_s = 2.5
    start = time.monotonic()
    with pytest.raises(ApiUnavailable):
        github_pull(forge.url, "acme/payments-api", 42, GH_TOKEN, timeout=1)
    assert time.monotonic() - start < 2.4


# --- GitLab -----------------------------------------------------------------------------------


def _mr(changes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": 77123, "iid": 17, "project_id": 4242, "title": "Add partial refunds", "state": "opened",
        "target_branch": "main", "source_branch": "feature/refunds", "source_project_id": 4242,
        "target_project_id": 4242, "labels": ["ai:review", "backend"], "draft": False,
        "work_in_progress": False, "sha": "b1f2a3c4", "changes_count": str(len(changes)),
        "diff_refs": {"base_sha": "6dcb09b5", "head_sha": "b1f2a3c4", "start_sha": "6dcb09b5"},
        "overflow": False, "changes": changes, **extra,
    }


CHANGES = [
    gitlab_change("src/app.py", "src/app.py", "@@ -1,3 +1,4 @@\n line\n-old\n+new\n+++plus-plus line\n"),
    gitlab_change("docs/guide.md", "docs/manual.md", "", renamed_file=True),
    gitlab_change("assets/logo.png", "assets/logo.png", "Binary files a/assets/logo.png and b/assets/logo.png differ\n",
                  new_file=True),
]


def test_gitlab_mr_changes(forge: FakeForge) -> None:
    forge.mr_changes[("4242", 17)] = _mr(CHANGES)
    facts = gitlab_mr(forge.url, "4242", 17, private_token=GL_TOKEN)
    assert facts.paths == ["src/app.py", "docs/guide.md", "docs/manual.md", "assets/logo.png"]
    assert (facts.files, facts.lines) == (3, 3)  # "+++plus-plus line" is content inside a hunk
    assert (facts.base_branch, facts.fork, facts.draft) == ("main", False, False)
    assert facts.labels == ["ai:review", "backend"]
    request = forge.requests[-1]
    assert request["path"] == "/api/v4/projects/4242/merge_requests/17/changes"
    assert request["query"]["access_raw_diffs"][0].lower() == "true"
    assert request["headers"]["PRIVATE-TOKEN"] == GL_TOKEN


def test_gitlab_job_token_is_sent_as_job_token(forge: FakeForge) -> None:
    forge.mr_changes[("4242", 17)] = _mr(CHANGES)
    gitlab_mr(forge.url, "4242", 17, job_token="glcbt-64_abcdefabcdef")
    assert forge.requests[-1]["headers"]["JOB-TOKEN"] == "glcbt-64_abcdefabcdef"


def test_gitlab_overflow_means_unknown_paths(forge: FakeForge) -> None:
    forge.mr_changes[("4242", 17)] = _mr(CHANGES, overflow=True, changes_count="1000+")
    facts = gitlab_mr(forge.url, "4242", 17, private_token=GL_TOKEN)
    assert facts.paths is None and facts.lines is None
    assert "truncated" in facts.notes[0] and "1000+" in facts.notes[0]


def test_gitlab_withheld_diff_leaves_lines_unknown_but_paths_known(forge: FakeForge) -> None:
    changes = [*CHANGES, gitlab_change("big.sql", "big.sql", "", too_large=True)]
    forge.mr_changes[("4242", 17)] = _mr(changes)
    facts = gitlab_mr(forge.url, "4242", 17, private_token=GL_TOKEN)
    assert facts.lines is None and facts.files == 4 and "big.sql" in (facts.paths or [])


def test_gitlab_404_is_api_unavailable(forge: FakeForge) -> None:
    with pytest.raises(ApiUnavailable, match="HTTP 404"):
        gitlab_mr(forge.url, "4242", 99, private_token=GL_TOKEN)


# --- through detect_context -------------------------------------------------------------------


def test_github_detection_falls_back_to_the_api(tmp_path: Path, forge: FakeForge) -> None:
    forge.pulls[("acme/payments-api", 42)] = _pull(changed_files=35)
    forge.pull_files[("acme/payments-api", 42)] = _files(35)
    env = github_env(tmp_path, "pull_request", "github_pull_request_opened.json",
                     GITHUB_API_URL=forge.url, GITHUB_TOKEN=GH_TOKEN)
    ctx = detect_context(env, str(tmp_path))
    assert ctx.changed_paths is not None and len(ctx.changed_paths) == 36
    assert (ctx.diff_lines, ctx.diff_files) == (150, 4)  # the payload's counts were already known
    assert not any(n.startswith("changed paths unknown") for n in ctx.notes)


def test_issue_comment_gets_branches_and_diff_from_the_api(tmp_path: Path, forge: FakeForge) -> None:
    forge.pulls[("acme/payments-api", 42)] = _pull(draft=True)
    forge.pull_files[("acme/payments-api", 42)] = _files(4)
    env = github_env(tmp_path, "issue_comment", "github_issue_comment_pr.json", GITHUB_API_URL=forge.url)
    ctx = detect_context(env, str(tmp_path), api_token=GH_TOKEN)
    assert (ctx.base_branch, ctx.head_branch) == ("main", "feature/refunds")
    assert (ctx.diff_lines, ctx.diff_files) == (150, 4)
    assert ctx.changed_paths is not None and len(ctx.changed_paths) == 5
    assert ctx.draft is False  # the payload said so; the API only fills what is unknown
    assert ctx.sha == "b1f2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4"


def test_api_failure_during_detection_is_a_note_without_secrets(tmp_path: Path, forge: FakeForge) -> None:
    forge.fail_status = 403
    env = github_env(tmp_path, "pull_request", "github_pull_request_opened.json",
                     GITHUB_API_URL=forge.url, CI_GUARD_GITHUB_TOKEN=GH_TOKEN)
    ctx = detect_context(env, str(tmp_path))
    note = next(n for n in ctx.notes if n.startswith("changed paths unknown"))
    assert "GitHub API request failed (HTTP 403)" in note
    assert GH_TOKEN not in " ".join(ctx.notes)
    assert ctx.diff_lines == 150


def test_gitlab_detection_falls_back_to_the_api(tmp_path: Path, forge: FakeForge) -> None:
    forge.mr_changes[("4242", 17)] = _mr(CHANGES)
    env = gitlab_env("gitlab_merge_request_event.json", CI_SERVER_URL=forge.url, GITLAB_TOKEN=GL_TOKEN)
    ctx = detect_context(env, str(tmp_path))
    assert ctx.changed_paths == ["src/app.py", "docs/guide.md", "docs/manual.md", "assets/logo.png"]
    assert (ctx.diff_lines, ctx.diff_files) == (3, 3)
    assert ctx.labels == ["ai:review", "backend"]  # from CI_MERGE_REQUEST_LABELS


def test_gitlab_detection_uses_the_job_token_when_no_access_token(tmp_path: Path, forge: FakeForge) -> None:
    forge.mr_changes[("4242", 17)] = _mr(CHANGES)
    env = gitlab_env("gitlab_merge_request_event.json", CI_SERVER_URL=forge.url, CI_JOB_TOKEN="glcbt-64_jobtok1234")
    ctx = detect_context(env, str(tmp_path))
    assert ctx.changed_paths is not None
    assert forge.requests[-1]["headers"]["JOB-TOKEN"] == "glcbt-64_jobtok1234"
