"""`ci-guard comment` end to end: flags, outputs, posting to a fake GitHub, warnings instead of failures."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ci_guard.cli import cli
from ci_guard.errors import ForgeError, InvalidInputError
from ci_guard.forges.sticky import RetryPolicy
from ci_guard.report.publish import CommentOptions, annotation, run_comment
from tests.forges.fake_github import FakeGitHub
from tests.report import builders as b


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as srv:
        yield srv


@pytest.fixture
def summary(tmp_path: Path) -> Path:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(b.normal().to_json()))
    return path


def env_for(srv: FakeGitHub, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"GITHUB_TOKEN": "tok-alice", "GITHUB_API_URL": srv.url, "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "step.md"), **extra}


def run(opts: CommentOptions, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    opts.forge_kwargs = {"throttle": False}
    rc = run_comment(opts, environ=env, out=out, err=err, retry=RetryPolicy(sleep=lambda s: None))
    return rc, out.getvalue(), err.getvalue()


def test_posts_to_the_pr_from_the_run_context(github: FakeGitHub, summary: Path, tmp_path: Path) -> None:
    rc, _, err = run(CommentOptions(summaries=[str(summary)], no_ledger=True), env_for(github, tmp_path))
    assert rc == 0 and "created comment" in err
    assert "POST /api/v3/repos/acme/app/issues/12/comments" in github.writes()
    step = (tmp_path / "step.md").read_text()
    assert step.startswith("### 💸") and "[//]: <>" not in step  # same summary, no marker


def test_repo_and_pr_flags_override_the_context(summary: Path, tmp_path: Path) -> None:
    with FakeGitHub(repo="other/repo", numbers=(5,)) as srv:
        rc, _, _ = run(CommentOptions(summaries=[str(summary)], no_ledger=True, repo="other/repo", pr=5),
                       env_for(srv, tmp_path))
        assert rc == 0 and srv.writes() == ["POST /api/v3/repos/other/repo/issues/5/comments"]


def test_flags_overruling_the_summarys_target_are_reported_without_echoing_it(github: FakeGitHub,
                                                                             tmp_path: Path) -> None:
    """Second stage of the fork pattern: the artifact names PR 99 (with a hostile title); the
    trusted --repo/--pr decide, and the log says so without printing the artifact's values."""
    forged = b.run(dec=b.decision(context=b.context(pr=99, repo="acme/app", title="::set-output x")))
    path = tmp_path / "artifact.json"
    path.write_text(json.dumps(forged.to_json()))
    rc, out, err = run(CommentOptions(summaries=[str(path)], no_ledger=True, repo="acme/app", pr=12),
                       env_for(github, tmp_path))
    assert rc == 0 and github.writes() == ["POST /api/v3/repos/acme/app/issues/12/comments"]
    assert "names another repository or PR; posting to acme/app#12" in err
    assert "#99" not in err and "::set-output" not in out + err


def test_dry_run_prints_and_posts_nothing(github: FakeGitHub, summary: Path, tmp_path: Path) -> None:
    output = tmp_path / "comment.md"
    rc, out, _ = run(CommentOptions(summaries=[str(summary)], no_ledger=True, dry_run=True, output=str(output)),
                     env_for(github, tmp_path))
    assert rc == 0 and out.startswith("[//]: <> (ci-guard-comment, valid-at=2026-03-02T10:04:12Z)")
    assert output.read_text().startswith("### 💸")
    assert github.requests == [] and not (tmp_path / "step.md").exists()


def test_forge_errors_warn_and_annotate_but_do_not_fail(github: FakeGitHub, summary: Path, tmp_path: Path) -> None:
    github.fail("POST", r"/api/v3/repos/acme/app/issues/12/comments", 403,
                {"message": "Resource not accessible by integration"})
    rc, out, err = run(CommentOptions(summaries=[str(summary)], no_ledger=True), env_for(github, tmp_path))
    assert rc == 0
    assert "ci-guard: warning: the cost comment was not posted" in err and "fork" in err
    assert out.startswith("::warning title=ci-guard comment::")
    assert "tok-alice" not in out + err
    # the step summary is still written: the job page shows the cost even when the PR comment fails
    assert (tmp_path / "step.md").exists()


def test_fail_on_error_raises_a_forge_error(github: FakeGitHub, summary: Path, tmp_path: Path) -> None:
    env = env_for(github, tmp_path)
    del env["GITHUB_TOKEN"]
    with pytest.raises(ForgeError) as info:
        run(CommentOptions(summaries=[str(summary)], no_ledger=True, fail_on_error=True), env)
    assert info.value.exit_code == 3 and "GITHUB_TOKEN is not set" in info.value.render()


def test_token_env_names_another_variable(github: FakeGitHub, summary: Path, tmp_path: Path) -> None:
    env = env_for(github, tmp_path, CI_GUARD_GITHUB_TOKEN="tok-alice")
    del env["GITHUB_TOKEN"]
    rc, _, err = run(CommentOptions(summaries=[str(summary)], no_ledger=True, token_env="CI_GUARD_GITHUB_TOKEN"),
                     env)
    assert rc == 0 and "created comment" in err


def test_not_on_a_pr_is_a_warning(summary: Path, tmp_path: Path) -> None:
    data = json.loads(summary.read_text())
    data["decision"]["context"]["pr"] = None
    summary.write_text(json.dumps(data))
    rc, _, err = run(CommentOptions(summaries=[str(summary)], no_ledger=True, platform="github"), {})
    assert rc == 0 and "not on a pull/merge request" in err


def test_bad_summary_and_tag_are_invalid_input(tmp_path: Path, summary: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"run_id": "x",\n "status": }')
    with pytest.raises(InvalidInputError) as info:
        run(CommentOptions(summaries=[str(bad)], no_ledger=True, dry_run=True), {})
    assert f"{bad}:2:" in info.value.render()
    with pytest.raises(InvalidInputError):
        run(CommentOptions(summaries=[str(summary)], no_ledger=True, dry_run=True, tag="bad tag"), {})
    with pytest.raises(InvalidInputError):
        run(CommentOptions(no_ledger=True, dry_run=True), {})


def test_policy_comment_template_is_relative_to_the_policy(tmp_path: Path, summary: Path) -> None:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "comment.md.j2").write_text("Spent {{ view.total_cost|usd }} on {{ view.runs|length }} run(s)\n")
    source = Path("policies/default.yml").read_text()
    (policy_dir / "p.yml").write_text(source + "\ncomment_template: comment.md.j2\n")
    rc, out, _ = run(CommentOptions(summaries=[str(summary)], no_ledger=True, dry_run=True,
                                    policy=str(policy_dir / "p.yml")), {})
    assert rc == 0 and out.endswith("Spent $0.13 on 1 run(s)\n")


def test_annotation_escapes_newlines_and_percent() -> None:
    assert annotation("50% done\nnext") == "::warning title=ci-guard comment::50%25 done%0Anext"


def test_cli_dry_run(summary: Path) -> None:
    result = CliRunner().invoke(cli, ["comment", "--summary", str(summary), "--no-ledger", "--dry-run",
                                      "--tag", "nightly"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[//]: <> (nightly, valid-at=")
