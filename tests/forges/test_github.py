"""The real PyGithub client against a local fake GitHub: exact requests for every behaviour."""

from __future__ import annotations

import pytest

from ci_guard.forges.base import ForgeRequestError
from ci_guard.forges.github import GitHubForge
from ci_guard.forges.sticky import RetryPolicy, publish
from ci_guard.report.marker import find_marker
from tests.forges.conftest import comment_at
from tests.forges.fake_github import FakeGitHub

TOKEN = "tok-alice"
LIST = "GET /api/v3/repos/acme/app/issues/12/comments"
POST = "POST /api/v3/repos/acme/app/issues/12/comments"
READS = ["GET /api/v3/user", "GET /api/v3/repos/acme/app", "GET /api/v3/repos/acme/app/issues/12", LIST]


def forge(srv: FakeGitHub, token: str = TOKEN, number: int = 12) -> GitHubForge:
    return GitHubForge("acme/app", number, token, srv.url, throttle=False)


def ours(srv: FakeGitHub, login: str = "alice") -> list:
    return [c for c in srv.comments if c.author == login and find_marker(c.body, "ci-guard-comment")]


def test_update_creates_then_skips_then_edits_in_place(github: FakeGitHub, retry: RetryPolicy) -> None:
    first = publish(forge(github), comment_at(10), retry=retry)
    assert first.action == "created"
    assert github.lines() == [*READS, POST]
    assert github.requests[-1].body == {"body": comment_at(10).body}

    github.clear()
    assert publish(forge(github), comment_at(10), retry=retry).action == "unchanged"
    assert github.writes() == []

    github.clear()
    newer = publish(forge(github), comment_at(11), retry=retry)
    assert newer.action == "updated" and newer.comment_id == first.comment_id
    assert github.writes() == [f"PATCH /api/v3/repos/acme/app/issues/comments/{first.comment_id}"]
    assert [c.body for c in ours(github)] == [comment_at(11).body]


def test_ten_reruns_leave_exactly_one_comment(github: FakeGitHub, retry: RetryPolicy) -> None:
    for _ in range(10):
        publish(forge(github), comment_at(10), retry=retry)
    assert github.writes() == [POST]
    github.clear()
    for hour in range(11, 21):  # ten newer pipelines
        publish(forge(github), comment_at(hour), retry=retry)
    writes = github.writes()
    assert len(writes) == 10 and all(w.startswith("PATCH ") for w in writes)
    assert len(ours(github)) == 1 and len(github.comments) == 1


def test_other_users_comments_are_never_touched_even_with_our_marker(github: FakeGitHub, retry: RetryPolicy) -> None:
    forged = github.add_comment("mallory", comment_at(9).body)  # same marker, another author
    human = github.add_comment("bob", "LGTM")
    result = publish(forge(github), comment_at(10), retry=retry)
    assert result.action == "created"
    assert forged.body == comment_at(9).body and human.body == "LGTM"
    assert not any(str(forged.id) in w or str(human.id) in w for w in github.writes())


def test_comments_with_another_tag_are_independent(github: FakeGitHub, retry: RetryPolicy) -> None:
    publish(forge(github), comment_at(10, tag="nightly"), retry=retry)
    publish(forge(github), comment_at(10), retry=retry)
    assert github.writes() == [POST, POST]
    assert len(github.comments) == 2


def test_finds_our_comment_past_100_comments(github: FakeGitHub, retry: RetryPolicy) -> None:
    for i in range(120):
        github.add_comment("bob", f"review comment {i}")
    mine = github.add_comment("alice", comment_at(9).body)
    for i in range(30):
        github.add_comment("carol", f"later {i}")
    result = publish(forge(github), comment_at(10), retry=retry)
    assert result.action == "updated" and result.comment_id == mine.id
    pages = [r.query.get("page", "1") for r in github.requests if r.line == LIST]
    assert pages == ["1", "2"]
    assert all(r.query.get("per_page") == "100" for r in github.requests if r.line == LIST)
    assert github.writes() == [f"PATCH /api/v3/repos/acme/app/issues/comments/{mine.id}"]


def test_new_always_adds_unless_identical(github: FakeGitHub, retry: RetryPolicy) -> None:
    publish(forge(github), comment_at(10), "new", retry=retry)
    publish(forge(github), comment_at(10), "new", retry=retry)  # a rerun: identical body
    publish(forge(github), comment_at(11), "new", retry=retry)
    assert github.writes() == [POST, POST]
    assert len(ours(github)) == 2


def test_hide_and_new_minimizes_the_old_comment(github: FakeGitHub, retry: RetryPolicy) -> None:
    old = github.add_comment("alice", comment_at(9).body)
    result = publish(forge(github), comment_at(10), "hide-and-new", retry=retry)
    assert result.action == "created" and result.hidden == [old.id]
    assert github.writes() == [POST, "POST /api/graphql"]
    mutation = github.requests[-1].body
    assert "minimizeComment" in mutation["query"]
    assert mutation["variables"] == {"input": {"subjectId": old.node_id, "classifier": "OUTDATED"}}
    assert old.minimized and len(github.comments) == 2


def test_delete_and_new_deletes_only_ours(github: FakeGitHub, retry: RetryPolicy) -> None:
    old = github.add_comment("alice", comment_at(9).body)
    theirs = github.add_comment("bob", comment_at(8).body)
    result = publish(forge(github), comment_at(10), "delete-and-new", retry=retry)
    assert result.deleted == [old.id]
    assert github.writes() == [POST, f"DELETE /api/v3/repos/acme/app/issues/comments/{old.id}"]
    assert theirs in github.comments and old not in github.comments


def test_an_older_run_never_overwrites_a_newer_comment(github: FakeGitHub, retry: RetryPolicy) -> None:
    publish(forge(github), comment_at(15), retry=retry)
    github.clear()
    for behavior in ("update", "new", "hide-and-new", "delete-and-new"):
        result = publish(forge(github), comment_at(9), behavior, retry=retry)
        assert result.action == "skipped-newer"
    assert github.writes() == []
    assert ours(github)[0].body == comment_at(15).body


def test_actions_token_identity_comes_from_graphql_viewer(github: FakeGitHub, retry: RetryPolicy) -> None:
    publish(forge(github, "ghs-actions-token"), comment_at(10), retry=retry)
    publish(forge(github, "ghs-actions-token"), comment_at(11), retry=retry)
    assert "POST /api/graphql" in github.lines()
    assert [c.author for c in github.comments] == ["github-actions[bot]"]
    assert github.writes()[-1].startswith("PATCH ")


@pytest.mark.parametrize(("status", "headers", "body", "wait"), [
    (429, {"Retry-After": "2"}, {"message": "Too Many Requests"}, 2.0),
    (403, {"Retry-After": "3"}, {"message": "You have exceeded a secondary rate limit."}, 3.0),
    (500, {}, {"message": "Server Error"}, 1.0),
    (502, {}, {"message": "Bad Gateway"}, 1.0),
])
def test_retryable_errors_are_retried_after_a_wait(github: FakeGitHub, retry: RetryPolicy, sleeps: list,
                                                   status: int, headers: dict, body: dict, wait: float) -> None:
    github.fail("POST", r"/api/v3/repos/acme/app/issues/12/comments", status, body, headers)
    result = publish(forge(github), comment_at(10), retry=retry)
    assert result.action == "created" and result.attempts == 2
    assert sleeps == [wait]
    assert github.writes() == [POST, POST]
    assert len(github.comments) == 1


def test_primary_rate_limit_waits_until_reset(github: FakeGitHub, retry: RetryPolicy, sleeps: list) -> None:
    import time

    reset = str(int(time.time()) + 5)
    github.fail("GET", r"/api/v3/repos/acme/app/issues/12/comments", 403,
                {"message": "API rate limit exceeded for user ID 1."},
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    result = publish(forge(github), comment_at(10), retry=retry)
    assert result.attempts == 2 and len(sleeps) == 1 and 3 <= sleeps[0] <= 7


def test_a_rate_limit_reset_far_away_gives_up_without_sleeping(github: FakeGitHub, retry: RetryPolicy,
                                                                sleeps: list) -> None:
    import time

    github.fail("GET", r"/api/v3/user", 403, {"message": "API rate limit exceeded"},
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)})
    with pytest.raises(ForgeRequestError) as info:
        publish(forge(github), comment_at(10), retry=retry)
    assert info.value.status == 403 and sleeps == []


def test_retries_are_bounded(github: FakeGitHub, retry: RetryPolicy, sleeps: list) -> None:
    github.fail("GET", r"/api/v3/user", 503, {"message": "unavailable"}, times=10)
    with pytest.raises(ForgeRequestError) as info:
        publish(forge(github), comment_at(10), retry=retry)
    assert info.value.status == 503
    assert sleeps == [1.0, 2.0, 4.0]
    assert github.lines().count("GET /api/v3/user") == 4


def test_a_create_that_reached_github_is_not_repeated(github: FakeGitHub, retry: RetryPolicy) -> None:
    # the first POST "fails" with a 502 after GitHub stored it: the retry lists again and finds it
    original = github._create

    def create_then_fail(req, login, number):  # type: ignore[no-untyped-def]
        original(req, login, number)
        github._create = original
        from tests.forges.fake_server import Reply

        return Reply(502, {"message": "Bad Gateway"})

    github._create = create_then_fail  # type: ignore[method-assign]
    result = publish(forge(github), comment_at(10), retry=retry)
    assert result.action == "unchanged" and result.attempts == 2
    assert len(github.comments) == 1


@pytest.mark.parametrize(("status", "message", "expect"), [
    (401, "Bad credentials", "rejected the token"),
    (403, "Resource not accessible by integration", "fork"),
    (404, "Not Found", "was not found"),
])
def test_non_retryable_errors_explain_themselves(github: FakeGitHub, retry: RetryPolicy, sleeps: list,
                                                 status: int, message: str, expect: str) -> None:
    github.fail("POST", r"/api/v3/repos/acme/app/issues/12/comments", status, {"message": message})
    with pytest.raises(ForgeRequestError) as info:
        publish(forge(github), comment_at(10), retry=retry)
    assert info.value.status == status and expect in info.value.render()
    assert sleeps == [] and github.writes() == [POST]
    assert TOKEN not in info.value.render()


def test_bad_token_and_missing_pr(github: FakeGitHub, retry: RetryPolicy) -> None:
    with pytest.raises(ForgeRequestError) as info:
        publish(forge(github, "ghp_wrongwrongwrongwrongwrong0000"), comment_at(10), retry=retry)
    assert info.value.status == 401 and "ghp_wrong" not in info.value.render()
    with pytest.raises(ForgeRequestError) as info:
        publish(forge(github, number=99), comment_at(10), retry=retry)
    assert info.value.status == 404 and "acme/app#99" in info.value.render()


# --- marker spoofing under the shared github-actions[bot] identity ------------------------------
BOT_TOKEN = "ghs-actions-token"
FROZEN = "[//]: <> (ci-guard-comment, valid-at=2099-01-01T00:00:00Z)"


def test_a_marker_below_the_first_line_is_not_ours(github: FakeGitHub, retry: RetryPolicy) -> None:
    """An agent's own `gh pr comment` posts as github-actions[bot] too; quoting our marker
    (with any valid-at) further down neither freezes our comment nor gets it deleted."""
    agent = github.add_comment("github-actions[bot]", "Review done.\n" + comment_at(8).body)
    agent_future = github.add_comment("github-actions[bot]", "Quote:\n\n" + FROZEN + "\n\nhi")
    result = publish(forge(github, BOT_TOKEN), comment_at(10), "delete-and-new", retry=retry)
    assert result.action == "created" and result.deleted == []
    assert agent in github.comments and agent_future in github.comments
    assert [w for w in github.writes() if "graphql" not in w] == [POST]  # graphql: the viewer query


def test_a_marker_from_the_far_future_does_not_freeze_the_comment(github: FakeGitHub, retry: RetryPolicy) -> None:
    frozen = github.add_comment("github-actions[bot]", FROZEN + "\n\nnothing to see")
    result = publish(forge(github, BOT_TOKEN), comment_at(10), retry=retry)
    assert result.action == "updated" and result.comment_id == frozen.id
    assert frozen.body == comment_at(10).body


def test_a_slightly_fast_clock_still_wins(github: FakeGitHub, retry: RetryPolicy) -> None:
    """Within the 10-minute skew allowance a newer valid-at still protects the comment."""
    from datetime import UTC, datetime

    newer = comment_at(15)  # valid at 15:30
    github.add_comment("github-actions[bot]", newer.body)
    now = datetime(2026, 3, 2, 15, 25, tzinfo=UTC)  # our clock is 5 minutes behind theirs
    result = publish(forge(github, BOT_TOKEN), comment_at(9), retry=retry, now=now)
    assert result.action == "skipped-newer"
    late = datetime(2026, 3, 2, 15, 19, tzinfo=UTC)  # 11 minutes behind: not a real run
    assert publish(forge(github, BOT_TOKEN), comment_at(9), retry=retry, now=late).action == "updated"
