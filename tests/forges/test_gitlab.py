"""The real python-gitlab client against a local fake GitLab: exact requests for every behaviour."""

from __future__ import annotations

import pytest

from ci_guard.forges.base import ForgeRequestError
from ci_guard.forges.gitlab import GitLabForge, from_env
from ci_guard.forges.sticky import RetryPolicy, publish
from ci_guard.report.marker import find_marker
from tests.forges.conftest import comment_at
from tests.forges.fake_gitlab import PROJECT_ID, FakeGitLab

TOKEN = "glpat-alice-000000000000"
NOTES = f"/api/v4/projects/{PROJECT_ID}/merge_requests/7/notes"
LIST, POST = f"GET {NOTES}", f"POST {NOTES}"
READS = ["GET /api/v4/user", "GET /api/v4/projects/acme%2Fapp", f"GET /api/v4/projects/{PROJECT_ID}/merge_requests/7",
         LIST]


def forge(srv: FakeGitLab, token: str = TOKEN, iid: int = 7) -> GitLabForge:
    # CI_API_V4_URL ends in /api/v4; python-gitlab wants the server URL
    return GitLabForge("acme/app", iid, token, srv.url + "/api/v4")


def gl_comment(hour: int):  # type: ignore[no-untyped-def]
    return comment_at(hour, platform="gitlab")


def ours(srv: FakeGitLab) -> list:
    return [n for n in srv.notes if n.author == "alice" and find_marker(n.body, "ci-guard-comment")]


def test_update_creates_then_skips_then_puts(gitlab_srv: FakeGitLab, retry: RetryPolicy) -> None:
    first = publish(forge(gitlab_srv), gl_comment(10), retry=retry)
    assert first.action == "created"
    assert gitlab_srv.lines() == [*READS, POST]
    assert gitlab_srv.requests[-1].body == {"body": gl_comment(10).body}
    assert gitlab_srv.requests[0].headers["private-token"] == TOKEN
    gitlab_srv.clear()
    assert publish(forge(gitlab_srv), gl_comment(10), retry=retry).action == "unchanged"
    assert gitlab_srv.writes() == []
    gitlab_srv.clear()
    assert publish(forge(gitlab_srv), gl_comment(11), retry=retry).action == "updated"
    assert gitlab_srv.writes() == [f"PUT {NOTES}/{first.comment_id}"]
    assert gitlab_srv.requests[-1].body == {"body": gl_comment(11).body}


def test_ten_reruns_leave_exactly_one_note(gitlab_srv: FakeGitLab, retry: RetryPolicy) -> None:
    for _ in range(10):
        publish(forge(gitlab_srv), gl_comment(10), retry=retry)
    for hour in range(11, 21):
        publish(forge(gitlab_srv), gl_comment(hour), retry=retry)
    writes = gitlab_srv.writes()
    assert writes[0] == POST and len(writes) == 11 and all(w.startswith("PUT ") for w in writes[1:])
    assert len(gitlab_srv.notes) == 1


def test_other_users_and_system_notes_are_left_alone(gitlab_srv: FakeGitLab, retry: RetryPolicy) -> None:
    forged = gitlab_srv.add_note("mallory", gl_comment(9).body)
    system = gitlab_srv.add_note("alice", gl_comment(9).body, system=True)
    publish(forge(gitlab_srv), gl_comment(10), retry=retry)
    assert gitlab_srv.writes() == [POST]
    assert forged.body == gl_comment(9).body and system.body == gl_comment(9).body


def test_pagination_past_100_notes(gitlab_srv: FakeGitLab, retry: RetryPolicy) -> None:
    for i in range(130):
        gitlab_srv.add_note("bob", f"note {i}")
    mine = gitlab_srv.add_note("alice", gl_comment(9).body)
    for i in range(40):
        gitlab_srv.add_note("carol", f"later {i}")
    result = publish(forge(gitlab_srv), gl_comment(10), retry=retry)
    assert result.action == "updated" and result.comment_id == mine.id
    lists = [r for r in gitlab_srv.requests if r.line == LIST]
    assert [r.query.get("page", "1") for r in lists] == ["1", "2"]
    assert all(r.query["per_page"] == "100" and r.query["sort"] == "asc" for r in lists)
    assert gitlab_srv.writes() == [f"PUT {NOTES}/{mine.id}"]


def test_hide_and_new_falls_back_to_delete_and_new(gitlab_srv: FakeGitLab, retry: RetryPolicy) -> None:
    old = gitlab_srv.add_note("alice", gl_comment(9).body)
    result = publish(forge(gitlab_srv), gl_comment(10), "hide-and-new", retry=retry)
    assert result.behavior == "delete-and-new" and result.deleted == [old.id]
    assert "cannot hide" in result.notes[0]
    assert gitlab_srv.writes() == [POST, f"DELETE {NOTES}/{old.id}"]


def test_new_and_valid_at(gitlab_srv: FakeGitLab, retry: RetryPolicy) -> None:
    publish(forge(gitlab_srv), gl_comment(12), "new", retry=retry)
    publish(forge(gitlab_srv), gl_comment(13), "new", retry=retry)
    assert len(ours(gitlab_srv)) == 2
    gitlab_srv.clear()
    assert publish(forge(gitlab_srv), gl_comment(11), retry=retry).action == "skipped-newer"
    assert gitlab_srv.writes() == []


@pytest.mark.parametrize(("status", "headers", "wait"), [(429, {"Retry-After": "2"}, 2.0), (500, {}, 1.0)])
def test_retryable_errors(gitlab_srv: FakeGitLab, retry: RetryPolicy, sleeps: list, status: int, headers: dict,
                          wait: float) -> None:
    gitlab_srv.fail("POST", NOTES, status, {"message": "slow down"}, headers)
    result = publish(forge(gitlab_srv), gl_comment(10), retry=retry)
    assert result.action == "created" and result.attempts == 2 and sleeps == [wait]
    assert gitlab_srv.writes() == [POST, POST] and len(gitlab_srv.notes) == 1


@pytest.mark.parametrize(("status", "expect"), [(401, "rejected the token"), (403, "api"), (404, "not found")])
def test_non_retryable_errors(gitlab_srv: FakeGitLab, retry: RetryPolicy, sleeps: list, status: int,
                              expect: str) -> None:
    gitlab_srv.fail("POST", NOTES, status, {"message": f"{status} error"})
    with pytest.raises(ForgeRequestError) as info:
        publish(forge(gitlab_srv), gl_comment(10), retry=retry)
    assert info.value.status == status and expect in info.value.render() and sleeps == []
    assert TOKEN not in info.value.render()


def test_from_env_reads_ci_variables(gitlab_srv: FakeGitLab, retry: RetryPolicy) -> None:
    env = {"GITLAB_TOKEN": TOKEN, "CI_API_V4_URL": gitlab_srv.url + "/api/v4", "CI_PROJECT_ID": str(PROJECT_ID)}
    result = publish(from_env(None, 7, environ=env), gl_comment(10), retry=retry)
    assert result.action == "created"
    assert f"GET /api/v4/projects/{PROJECT_ID}" in gitlab_srv.lines()
    with pytest.raises(ForgeRequestError) as info:
        from_env(None, 7, environ={"CI_JOB_TOKEN": "x" * 20})
    assert "CI_JOB_TOKEN cannot post notes" in info.value.render()


def test_spoofed_markers_neither_freeze_nor_get_deleted(gitlab_srv: FakeGitLab, retry: RetryPolicy) -> None:
    """Notes by the same token user: a marker below the first line is not ours; a marker from
    2099 is ours but describes no real run, so it is replaced."""
    quoted = gitlab_srv.add_note("alice", "see the earlier cost note:\n" + gl_comment(8).body)
    frozen = gitlab_srv.add_note("alice", "[//]: <> (ci-guard-comment, valid-at=2099-01-01T00:00:00Z)\n\nx")
    result = publish(forge(gitlab_srv), gl_comment(10), "delete-and-new", retry=retry)
    assert result.action == "created" and result.deleted == [frozen.id]
    assert quoted in gitlab_srv.notes and frozen not in gitlab_srv.notes
