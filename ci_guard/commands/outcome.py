"""`ci-guard outcome` (also `ci-guard ledger outcome`): what became of a run's or a PR's work."""

from __future__ import annotations

import os

import click

from ci_guard.commands._ledger_common import LEDGER_EXIT_STATUS, ledger_option

EPILOG = """\b
Examples:
  ci-guard outcome 01J9Z... merged                      # one run
  ci-guard outcome --pr 42 merged                       # every run of PR 42 of this repository
  ci-guard outcome --pr 42 --repo acme/api closed
  ci-guard outcome 01J9Z... --tests-fixed 3             # a test-repair run fixed three tests
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
def outcome(ledger_url: str | None, args: tuple[str, ...], pr: int | None, repo: str | None,
            tests_fixed: int | None, junit_before: str | None, junit_after: str | None) -> int:
    """Record what became of an agent's work: merged, closed, or tests fixed.

    Reports join these to spend: cost per merged PR, per fixed test, abandoned runs. A run's own
    outcome wins over its PR's.
    """
    from ci_guard.ledger import open_ledger

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


def _checked(value: str) -> str:
    """Outcomes come from CI scripts: short words, nothing a report or a comment would have to escape."""
    text = value.strip().lower()
    if not text or len(text) > 40 or not all(ch.isalnum() or ch in "_-" for ch in text):
        raise click.BadParameter(f"expected a short word such as merged or closed, got {value!r}",
                                 param_hint="OUTCOME")
    return text
