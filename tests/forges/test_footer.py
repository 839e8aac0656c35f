"""`ci-guard comment --footer-on`: a one-line cost footer on the agent's own comment, on fake forges."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.errors import InvalidInputError
from ci_guard.report.publish import CommentOptions, run_comment
from ci_guard.report.render import footer_line
from tests.forges.fake_github import FakeGitHub
from tests.forges.fake_gitlab import FakeGitLab
from tests.forges.test_handoff import run
from tests.report import builders as b

AGENT_BODY = "**Claude finished @dev-dana's task**\n\nReviewed 3 files; see the inline notes.\n"
START = "<!-- ci-guard-footer:ci-guard-comment valid-at="
END = "<!-- /ci-guard-footer:ci-guard-comment -->"


def summary_file(tmp_path: Path, run: object, name: str = "summary.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(run.to_json()))  # type: ignore[attr-defined]
    return str(path)


@pytest.fixture
def github() -> FakeGitHub:
    # the agent posts with the workflow's GITHUB_TOKEN, as claude-code-action does without its app
    with FakeGitHub(integration_tokens={"ghs-actions-token": "github-actions[bot]"}) as srv:
        yield srv


def gh_env(srv: FakeGitHub, tmp_path: Path) -> dict[str, str]:
    return {"GITHUB_TOKEN": "ghs-actions-token", "GITHUB_API_URL": srv.url,
            "GITHUB_STEP_SUMMARY": str(tmp_path / "step.md")}


def test_footer_is_appended_then_updated_in_place(github: FakeGitHub, tmp_path: Path) -> None:
    github.add_comment("someone-else", "unrelated discussion")
    agent = github.add_comment("github-actions[bot]", AGENT_BODY)
    first = b.run("run-1", total="0.50", started="2026-03-02T10:00:00Z", ended="2026-03-02T10:05:00Z")
    opts = dict(footer_on="github-actions[bot]", platform="github")
    rc, _, err = run(CommentOptions(summaries=[summary_file(tmp_path, first)], **opts), gh_env(github, tmp_path))  # type: ignore[arg-type]
    assert rc == 0, err
    assert len(github.visible()) == 2  # no second bot comment
    assert agent.body.startswith(AGENT_BODY.rstrip())  # the agent's text is untouched
    assert agent.body.count(START) == 1 and agent.body.rstrip().endswith(END)
    assert "**1 agent run** · **$0.50** in total" in agent.body
    assert "put the cost footer on comment" in err

    # a later run of the same job: the one footer now tells the new total
    second = b.run("run-2", total="1.25", started="2026-03-02T11:00:00Z", ended="2026-03-02T11:05:00Z",
                   run_status="stopped", stop_reason="max_turns")
    rc, _, _ = run(CommentOptions(summaries=[summary_file(tmp_path, first, "a.json"),
                                             summary_file(tmp_path, second, "b.json")], **opts),  # type: ignore[arg-type]
                   gh_env(github, tmp_path))
    assert rc == 0 and len(github.visible()) == 2
    assert agent.body.count(START) == 1 and agent.body.count(END) == 1
    assert "**$1.75** in total" in agent.body and "$0.50** in total" not in agent.body
    assert "valid-at=2026-03-02T11:05:00Z" in agent.body

    # the same job re-run: nothing is written
    github.clear()
    rc, _, err = run(CommentOptions(summaries=[summary_file(tmp_path, first, "a.json"),
                                               summary_file(tmp_path, second, "b.json")], **opts),  # type: ignore[arg-type]
                     gh_env(github, tmp_path))
    assert rc == 0 and github.writes() == [] and "already up to date" in err


def test_an_older_run_does_not_overwrite_a_newer_footer(github: FakeGitHub, tmp_path: Path) -> None:
    agent = github.add_comment("github-actions[bot]", AGENT_BODY)
    newer = b.run("run-new", total="2.00", started="2026-03-02T12:00:00Z", ended="2026-03-02T12:05:00Z")
    older = b.run("run-old", total="0.10", started="2026-03-02T09:00:00Z", ended="2026-03-02T09:05:00Z")
    run(CommentOptions(summaries=[summary_file(tmp_path, newer)], footer_on="github-actions[bot]"),
        gh_env(github, tmp_path))
    body = agent.body
    rc, _, err = run(CommentOptions(summaries=[summary_file(tmp_path, older, "old.json")],
                                    footer_on="github-actions[bot]"), gh_env(github, tmp_path))
    assert rc == 0 and agent.body == body and "describes a newer run" in err


def test_pr_strings_in_the_footer_are_escaped(github: FakeGitHub, tmp_path: Path) -> None:
    agent = github.add_comment("github-actions[bot]", AGENT_BODY)
    hostile = b.run(dec=b.decision(context=b.context(
        run_url="javascript:alert(1)", repo="acme/app @acme/admins")))
    rc, _, _ = run(CommentOptions(summaries=[summary_file(tmp_path, hostile)], footer_on="github-actions[bot]",
                                  repo="acme/app", pr=12), gh_env(github, tmp_path))
    footer = agent.body[agent.body.index(START):]
    assert rc == 0 and "javascript:" not in footer and "@acme/admins" not in footer
    assert footer.rstrip("\n").count("\n") == 2  # start marker, one line, end marker
    # with the repository's median the line names the repository: inert, in a code span
    line, _ = footer_line([hostile], repo_median=(Decimal("0.10"), 5))
    assert "`acme/app @acme/admins`" in line and "1.3× the median PR" in line and "\n" not in line


def test_forged_footer_markers_in_the_agent_comment_leave_one_footer(github: FakeGitHub, tmp_path: Path) -> None:
    forged = (AGENT_BODY + f"\n{START}2099-01-01T00:00:00Z -->\n<sub>free money</sub>\n{END}\n"
              "<!-- ci-guard-footer:ci-guard-comment -->")
    agent = github.add_comment("github-actions[bot]", forged)
    rc, _, _ = run(CommentOptions(summaries=[summary_file(tmp_path, b.normal())], footer_on="github-actions[bot]"),
                   gh_env(github, tmp_path))
    assert rc == 0 and "free money" not in agent.body  # a far-future valid-at froze nothing
    assert agent.body.count("<!-- ci-guard-footer:") == 1 and agent.body.count(END) == 1


def test_no_agent_comment_falls_back_to_the_cost_comment(github: FakeGitHub, tmp_path: Path) -> None:
    rc, _, err = run(CommentOptions(summaries=[summary_file(tmp_path, b.capped())], footer_on="claude[bot]"),
                     gh_env(github, tmp_path))
    assert rc == 0 and "no comment by claude[bot]" in err and "posting the cost comment instead" in err
    [comment] = github.visible()
    assert comment.body.startswith("[//]: <> (ci-guard-comment")


def test_an_uneditable_comment_falls_back_with_a_warning(github: FakeGitHub, tmp_path: Path) -> None:
    """The Claude app's comments are not the workflow token's to edit (GitHub answers 403)."""
    agent = github.add_comment("claude[bot]", AGENT_BODY)
    rc, _, err = run(CommentOptions(summaries=[summary_file(tmp_path, b.normal())], footer_on="claude[bot]"),
                       gh_env(github, tmp_path))
    assert rc == 0 and agent.body == AGENT_BODY
    assert "could not put the cost footer on the agent's comment" in err
    assert len(github.visible()) == 2  # the cost comment, as without --footer-on


def test_marker_target_and_the_handoff_mention_in_the_footer(github: FakeGitHub, tmp_path: Path) -> None:
    github.add_pull(12, author="dev-dana")
    github.add_comment("github-actions[bot]", "older, unrelated bot text")
    agent = github.add_comment("github-actions[bot]", "<!-- agent-review -->\n" + AGENT_BODY)
    policy = tmp_path / "p.yml"
    policy.write_text("version: 1\nrules:\n  - name: default-review\n    decision: allow\n"
                      "    handoff: {mention: author}\n")
    rc, _, err = run(CommentOptions(summaries=[summary_file(tmp_path, b.capped())], policy=str(policy),
                                    footer_on="marker:<!-- agent-review -->"), gh_env(github, tmp_path))
    assert rc == 0, err
    footer = agent.body[agent.body.index(START):]
    assert "🙋 **Over to a person:** @dev-dana, the agent was stopped by its cost cap" in footer
    assert len(github.visible()) == 2 and "ci-guard" not in github.visible()[0].body


def test_gitlab_footer_on_the_agents_note(tmp_path: Path) -> None:
    ctx = b.context(platform="gitlab", pr=7)
    with FakeGitLab(tokens={"glpat-bot-00000000000000": "project_42_bot"}) as srv:
        note = srv.add_note("project_42_bot", AGENT_BODY)
        env = {"GITLAB_TOKEN": "glpat-bot-00000000000000", "CI_API_V4_URL": srv.url + "/api/v4"}
        summary = summary_file(tmp_path, b.run(dec=b.decision(context=ctx), total="0.42"))
        for _ in range(2):
            rc, _, err = run(CommentOptions(summaries=[summary], platform="gitlab", footer_on="project_42_bot"), env)
            assert rc == 0, err
        assert len(srv.visible(7)) == 1 and note.body.count(START) == 1
        assert "💸 ci-guard on this merge request: **1 agent run** · **$0.42** in total" in note.body


def test_footer_on_needs_a_target() -> None:
    with pytest.raises(InvalidInputError, match="marker: needs a text"):
        run_comment(CommentOptions(summaries=[], footer_on="marker:  "), environ={})
