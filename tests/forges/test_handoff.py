"""`handoff:` on rules, through `ci-guard comment` against the fake GitHub and GitLab servers.

The user's path: a run stopped by a cap leaves a summary; the comment step (which holds the forge
token) adds the policy's label, requests the review and mentions people in the cost comment.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ci_guard.forges.sticky import RetryPolicy
from ci_guard.report.publish import CommentOptions, run_comment
from tests.forges.fake_github import FakeGitHub
from tests.forges.fake_gitlab import FakeGitLab
from tests.report import builders as b

POLICY = """\
version: 1
rules:
  - name: default-review
    decision: allow
    limits: {max_turns: 30, max_cost_usd: 5}
    handoff:
      label: needs-human
      request_review: ["@acme/platform", alice]
      mention: [author, "@acme/oncall"]
"""


def policy(tmp_path: Path, text: str = POLICY) -> str:
    path = tmp_path / "ci-guard.yml"
    path.write_text(text)
    return str(path)


def summary_file(tmp_path: Path, run: object, name: str = "summary.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(run.to_json()))  # type: ignore[attr-defined]
    return str(path)


def gh_env(srv: FakeGitHub, tmp_path: Path) -> dict[str, str]:
    return {"GITHUB_TOKEN": "tok-alice", "GITHUB_API_URL": srv.url, "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "step.md")}


def gl_env(srv: FakeGitLab) -> dict[str, str]:
    return {"GITLAB_TOKEN": "glpat-alice-000000000000", "CI_API_V4_URL": srv.url + "/api/v4"}


def run(opts: CommentOptions, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    opts.no_ledger = True
    if "GITHUB_TOKEN" in env:
        opts.forge_kwargs = {"throttle": False}
    rc = run_comment(opts, environ=env, out=out, err=err, retry=RetryPolicy(sleep=lambda s: None))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def github() -> FakeGitHub:
    with FakeGitHub() as srv:
        srv.add_pull(12, author="dev-dana")
        yield srv


def test_capped_run_labels_requests_review_and_mentions(github: FakeGitHub, tmp_path: Path) -> None:
    opts = CommentOptions(summaries=[summary_file(tmp_path, b.capped())], policy=policy(tmp_path))
    rc, _, err = run(opts, gh_env(github, tmp_path))
    assert rc == 0, err
    assert github.labels(12) == ["needs-human"]
    pull = github.pulls[12]
    assert [t["slug"] for t in pull["requested_teams"]] == ["platform"]
    assert [u["login"] for u in pull["requested_reviewers"]] == ["alice"]
    [comment] = github.visible(12)
    assert "🙋 **Over to a person:** @dev-dana @acme/oncall, the agent was stopped by its cost cap" in comment.body
    assert "handoff: added label needs-human" in err and "requested review from alice, platform" in err


def test_rerun_changes_nothing_twice(github: FakeGitHub, tmp_path: Path) -> None:
    opts = dict(summaries=[summary_file(tmp_path, b.capped())], policy=policy(tmp_path))
    run(CommentOptions(**opts), gh_env(github, tmp_path))  # type: ignore[arg-type]
    writes_after_first = list(github.handoff_writes)
    rc, _, err = run(CommentOptions(**opts), gh_env(github, tmp_path))  # type: ignore[arg-type]
    assert rc == 0
    assert github.handoff_writes == writes_after_first  # no second label or review request
    assert len(github.visible(12)) == 1 and github.labels(12) == ["needs-human"]
    assert "label needs-human already there" in err and "already up to date" in err


def test_completed_run_hands_off_nothing(github: FakeGitHub, tmp_path: Path) -> None:
    opts = CommentOptions(summaries=[summary_file(tmp_path, b.normal())], policy=policy(tmp_path))
    rc, _, _ = run(opts, gh_env(github, tmp_path))
    assert rc == 0 and github.handoff_writes == [] and github.labels(12) == []
    assert "Over to a person" not in github.visible(12)[0].body


def test_cap_not_in_on_hands_off_nothing(github: FakeGitHub, tmp_path: Path) -> None:
    text = POLICY.replace("      label: needs-human\n", "      label: needs-human\n      on: [max_turns]\n")
    opts = CommentOptions(summaries=[summary_file(tmp_path, b.capped())], policy=policy(tmp_path, text))
    rc, _, _ = run(opts, gh_env(github, tmp_path))  # capped() is stopped by max_cost
    assert rc == 0 and github.handoff_writes == []


def test_the_summary_cannot_choose_the_handoff(github: FakeGitHub, tmp_path: Path) -> None:
    """A summary (written where the agent runs) may carry its own handoff: only the policy's counts."""
    forged = b.capped()
    forged.decision["handoff"] = {"label": ["merge-now"], "request_review": ["mallory"], "mention": ["everyone"],
                                  "on": ["max_cost"]}
    forged.decision["rule"] = "no-such-rule"
    opts = CommentOptions(summaries=[summary_file(tmp_path, forged)], policy=policy(tmp_path))
    rc, _, _ = run(opts, gh_env(github, tmp_path))
    assert rc == 0 and github.handoff_writes == [] and github.labels(12) == []
    assert "@everyone" not in github.visible(12)[0].body


def test_hostile_author_login_is_not_a_mention(tmp_path: Path) -> None:
    with FakeGitHub() as srv:
        srv.add_pull(12, author="x @acme/admins [link](http://evil)")
        opts = CommentOptions(summaries=[summary_file(tmp_path, b.capped())], policy=policy(tmp_path))
        rc, _, _ = run(opts, gh_env(srv, tmp_path))
        body = srv.visible(12)[0].body
    assert rc == 0
    line = next(li for li in body.splitlines() if "Over to a person" in li)
    assert "`x @acme/admins [link](http://evil)`" in line  # inert code span
    assert line.count("@") == 2  # @acme/oncall, and the one inside the code span


def test_forge_errors_are_warnings_and_the_comment_still_posts(github: FakeGitHub, tmp_path: Path) -> None:
    github.fail("POST", r".*/issues/12/labels", 403, {"message": "Resource not accessible by integration"})
    opts = CommentOptions(summaries=[summary_file(tmp_path, b.capped())], policy=policy(tmp_path))
    rc, out, err = run(opts, gh_env(github, tmp_path))
    assert rc == 0
    assert "handoff: could not add label needs-human" in err and "::warning" in out
    assert [u["login"] for u in github.pulls[12]["requested_reviewers"]] == ["alice"]
    assert len(github.visible(12)) == 1


def test_author_is_never_asked_for_review(tmp_path: Path) -> None:
    with FakeGitHub() as srv:
        srv.add_pull(12, author="alice")
        opts = CommentOptions(summaries=[summary_file(tmp_path, b.capped())], policy=policy(tmp_path))
        rc, _, err = run(opts, gh_env(srv, tmp_path))
        assert rc == 0 and "alice is the PR author" in err
        assert [u["login"] for u in srv.pulls[12]["requested_reviewers"]] == []
        assert [t["slug"] for t in srv.pulls[12]["requested_teams"]] == ["platform"]


def test_no_handoff_flag(github: FakeGitHub, tmp_path: Path) -> None:
    opts = CommentOptions(summaries=[summary_file(tmp_path, b.capped())], policy=policy(tmp_path), handoff=False)
    rc, _, _ = run(opts, gh_env(github, tmp_path))
    assert rc == 0 and github.handoff_writes == []


def test_gitlab_adds_label_reviewer_and_mention(tmp_path: Path) -> None:
    ctx = b.context(platform="gitlab", repo="acme/app", pr=7)
    capped = b.run("run-capped", run_status="stopped", stop_reason="max_turns", dec=b.decision(context=ctx))
    with FakeGitLab() as srv:
        srv.reviewers = [102]  # bob is already asked
        opts = CommentOptions(summaries=[summary_file(tmp_path, capped)], policy=policy(tmp_path),
                              platform="gitlab")
        rc, _, err = run(opts, gl_env(srv))
        assert rc == 0, err
        assert srv.labels == ["needs-human"] and srv.reviewers == [102, 101]
        assert "gitlab requests reviews from users, not groups: acme/platform was not asked" in err
        [note] = srv.visible(7)
        assert "🙋 **Over to a person:** @dev-dana @acme/oncall, the agent was stopped by its turn cap on this " \
               "merge request" in note.body
        first = list(srv.handoff_writes)
        rc, _, _ = run(CommentOptions(summaries=[summary_file(tmp_path, capped)], policy=policy(tmp_path),
                                      platform="gitlab"), gl_env(srv))
        assert rc == 0 and srv.handoff_writes == first and len(srv.visible(7)) == 1


def test_mention_goes_into_a_new_comment_so_it_notifies(github: FakeGitHub, tmp_path: Path) -> None:
    """Forges notify people mentioned in a new comment, not in an edit: the sticky comment that
    existed before the cap stopped a run is replaced (hidden on GitHub) once, then updated as usual."""
    first = b.run("run-1", started="2026-03-02T09:00:00Z", ended="2026-03-02T09:05:00Z")
    run(CommentOptions(summaries=[summary_file(tmp_path, first, "1.json")], policy=policy(tmp_path)),
        gh_env(github, tmp_path))
    [old] = github.visible(12)
    capped = b.capped()
    opts = dict(summaries=[summary_file(tmp_path, capped, "2.json")], policy=policy(tmp_path))
    rc, _, err = run(CommentOptions(**opts), gh_env(github, tmp_path))  # type: ignore[arg-type]
    assert rc == 0 and "so that the handoff's mention notifies" in err
    old_after, new = github.visible(12)
    assert old_after.id == old.id and old_after.minimized and "Over to a person" not in old_after.body
    assert "Over to a person:** @dev-dana" in new.body and not new.minimized
    rc, _, err = run(CommentOptions(**opts), gh_env(github, tmp_path))  # type: ignore[arg-type]
    assert rc == 0 and len(github.visible(12)) == 2 and "already up to date" in err
