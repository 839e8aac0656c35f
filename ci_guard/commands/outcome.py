"""`ci-guard outcome` (also `ci-guard ledger outcome`): what became of a run's or a PR's work."""

from __future__ import annotations

import os
import re

import click

from ci_guard.commands._ledger_common import LEDGER_EXIT_STATUS, ledger_option

EPILOG = """\b
Examples:
  ci-guard outcome 01J9Z... merged                      # one run
  ci-guard outcome --pr 42 merged                       # every run of PR 42 of this repository
  ci-guard outcome --pr 42 --repo acme/api closed
  ci-guard outcome 01J9Z... --tests-fixed 3             # a test-repair run fixed three tests
  ci-guard outcome --sync-gitlab --since 14d            # GitLab: merged / closed MRs, from the API
  ci-guard outcome 01J9Z... --junit-before before.xml --junit-after after.xml
                                                        # count them from JUnit XML reports
"""
# where CI says which repository this job belongs to
REPO_VARS = ("GITHUB_REPOSITORY", "CI_PROJECT_PATH")


@click.command(epilog=EPILOG + "\n" + LEDGER_EXIT_STATUS)
@ledger_option
@click.argument("args", nargs=-1, metavar="[RUN_ID] [OUTCOME]")
@click.option("--pr", type=click.IntRange(min=1), help="Record OUTCOME for a pull/merge request: its runs inherit it.")
@click.option("--repo", metavar="OWNER/NAME",
              help="The PR's repository (default: $GITHUB_REPOSITORY or $CI_PROJECT_PATH).")
@click.option("--tests-fixed", type=click.IntRange(min=0), help="Failing tests the run fixed (test repair).")
@click.option("--junit-before", metavar="FILE", help="JUnit XML of the tests before the repair; with --junit-after, "
                                                     "the tests failing here and passing there are the tests fixed.")
@click.option("--junit-after", metavar="FILE", help="JUnit XML of the tests re-run after the repair.")
@click.option("--sync-gitlab", is_flag=True,
              help="GitLab CI: record merged/closed for the project's merge requests that have runs, from the API "
                   "with $GITLAB_TOKEN; without a token, `merged` for the MR named by the merge commit "
                   "($CI_COMMIT_MESSAGE: 'See merge request <project>!<iid>').")
@click.option("--since", "since_text", default="14d", show_default=True, metavar="DURATION",
              help="With --sync-gitlab: merge requests merged or closed within this long.")
def outcome(ledger_url: str | None, args: tuple[str, ...], pr: int | None, repo: str | None,
            tests_fixed: int | None, junit_before: str | None, junit_after: str | None, sync_gitlab: bool,
            since_text: str) -> int:
    """Record what became of an agent's work: merged, closed, or tests fixed.

    Reports join these to spend: cost per merged PR, per fixed test, abandoned runs. A run's own
    outcome wins over its PR's.
    """
    from ci_guard.ledger import open_ledger

    if sync_gitlab:
        if args or pr is not None or tests_fixed is not None or junit_before or junit_after:
            raise click.UsageError("--sync-gitlab takes no RUN_ID, OUTCOME, --pr or test counts")
        return _sync_gitlab(ledger_url, repo, since_text)
    if bool(junit_before) != bool(junit_after):
        raise click.UsageError("--junit-before and --junit-after go together")
    if junit_before:
        if tests_fixed is not None:
            raise click.UsageError("give --tests-fixed or the JUnit reports, not both")
        from ci_guard.junit import fixed_tests

        tests_fixed = len(fixed_tests(junit_before, junit_after))  # type: ignore[arg-type]
    if pr is not None:
        if len(args) != 1 or tests_fixed is not None:
            raise click.UsageError("with --pr give exactly one OUTCOME (e.g. merged or closed) and no --tests-fixed")
        repo = repo or next((os.environ[v] for v in REPO_VARS if os.environ.get(v)), None)
        if not repo:
            raise click.UsageError("--pr needs --repo (or $GITHUB_REPOSITORY / $CI_PROJECT_PATH)")
        what = _checked(args[0])
        store = open_ledger(ledger_url, create=False)  # annotates existing runs: never creates a ledger
        try:
            store.set_pr_outcome(repo, pr, what)
        finally:
            store.close()
        click.echo(f"{repo}#{pr}: outcome {what}")
        return 0
    if not args or len(args) > 2 or (len(args) == 1 and tests_fixed is None):
        raise click.UsageError("expected RUN_ID OUTCOME, RUN_ID --tests-fixed N, or --pr N OUTCOME")
    run_id = args[0]
    what = _checked(args[1]) if len(args) == 2 else None
    store = open_ledger(ledger_url, create=False)  # annotates existing runs: never creates a ledger
    try:
        if what is not None:
            store.set_outcome(run_id, what)
        if tests_fixed is not None:
            store.set_tests_fixed(run_id, tests_fixed)
    finally:
        store.close()
    parts = [f"outcome {what}"] if what else []
    parts += [f"{tests_fixed} tests fixed"] if tests_fixed is not None else []
    click.echo(f"run {run_id}: {', '.join(parts)}")
    return 0


MERGE_COMMIT = re.compile(r"^See merge request (?P<project>\S+)!(?P<iid>[0-9]{1,9})\s*$", re.MULTILINE)


def _sync_gitlab(ledger_url: str | None, repo: str | None, since_text: str) -> int:
    """Outcomes of the project's merge requests (the GitLab outcome job of templates/ci-guard-outcome)."""
    from datetime import UTC, datetime, timedelta

    from ci_guard.errors import InvalidInputError
    from ci_guard.ledger import open_ledger
    from ci_guard.policy.durations import parse_duration

    env = os.environ
    repo = repo or env.get("CI_PROJECT_PATH")
    if not repo:
        raise click.UsageError("--sync-gitlab needs --repo (or $CI_PROJECT_PATH)")
    try:
        since = datetime.now(UTC) - timedelta(seconds=parse_duration(since_text))
    except ValueError as exc:
        raise InvalidInputError(f"--since: {exc}") from None
    if env.get("GITLAB_TOKEN"):
        from ci_guard.forges.gitlab import DEFAULT_URL, finished_merge_requests

        url = env.get("CI_API_V4_URL") or env.get("CI_SERVER_URL") or DEFAULT_URL
        found = finished_merge_requests(env.get("CI_PROJECT_ID") or repo, env["GITLAB_TOKEN"], url, since)
        how = "from the GitLab API"
    else:
        # The merge commit GitLab writes ends "See merge request group/project!12"; fast-forward and squash
        # merges have none, and closed merge requests never show here: those need the token.
        matches = [m for m in MERGE_COMMIT.finditer(env.get("CI_COMMIT_MESSAGE", "")) if m["project"] == repo]
        found = [(int(matches[-1]["iid"]), "merged")] if matches else []
        how = "from the merge commit (set GITLAB_TOKEN to also record closed merge requests)"
    store = open_ledger(ledger_url, create=False)  # annotates existing runs: never creates a ledger
    try:
        with_runs = set(store.pr_costs(repo, datetime(1970, 1, 1, tzinfo=UTC)))
        recorded = [(iid, what) for iid, what in found if iid in with_runs]
        for iid, what in recorded:
            store.set_pr_outcome(repo, iid, what)
    finally:
        store.close()
    for iid, what in recorded:
        click.echo(f"{repo}!{iid}: outcome {what}")
    click.echo(f"{len(recorded)} merge request outcomes recorded {how}"
               f" ({len(found) - len(recorded)} without agent runs skipped)")
    return 0


def _checked(value: str) -> str:
    """Outcomes come from CI scripts: short words, nothing a report or a comment would have to escape."""
    text = value.strip().lower()
    if not text or len(text) > 40 or not all(ch.isalnum() or ch in "_-" for ch in text):
        raise click.BadParameter(f"expected a short word such as merged or closed, got {value!r}",
                                 param_hint="OUTCOME")
    return text
