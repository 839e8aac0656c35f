"""`ci-guard test`: run policy unit tests (cases with a context and the expected decision)."""

from __future__ import annotations

import click

from ci_guard.commands._color import color_option

EPILOG = """\b
Examples:
  ci-guard test policies/default.yml            # runs policies/default.tests.yml
  ci-guard test policies/default.yml policies/default.tests.yml
  ci-guard test --quiet policy.yml policy.tests.yml

\b
A tests file:
  defaults:
    context: {platform: github, repo: acme/web, trigger: pull_request, agent: pr-review}
  cases:
    - name: drafts are skipped
      context: {draft: true}
      expect: {decision: skip, rule: skip-drafts}
    - name: low budget keeps the small model
      context: {base_branch: main, changed_paths: [src/app.py], diff_lines: 10}
      budgets: {org-monthly: {spent_usd: "1700"}}
      expect: {decision: allow, model: small, limits: {max_turns: 8}}

\b
Exit status: 0 all cases pass, 1 a case failed, 2 invalid policy or tests file.
"""


@click.command(epilog=EPILOG)
@click.argument("policy_path", metavar="POLICY")
@click.argument("tests_paths", nargs=-1, metavar="[TESTS.yml...]")
@click.option("--quiet", "-q", is_flag=True, help="Print only failures and the totals.")
@color_option
def policy_test(policy_path: str, tests_paths: tuple[str, ...], quiet: bool, color: str) -> int:
    """Run policy unit tests, like `opa test` (default: POLICY's sibling POLICY.tests.yml)."""
    from ci_guard.commands._color import echo
    from ci_guard.errors import InvalidInputError
    from ci_guard.policy.decide import load_policy
    from ci_guard.policy.policy_tests import load_tests, render_results, run_tests, tests_file_for

    if not tests_paths:
        found = tests_file_for(policy_path)
        if found is None:
            raise InvalidInputError(f"no tests file given and none found next to {policy_path} "
                                    f"(looked for {tests_file_for(policy_path, must_exist=False)})")
        tests_paths = (str(found),)
    policy = load_policy(policy_path)
    failed = False
    for tests_path in tests_paths:
        results = run_tests(policy, load_tests(tests_path))
        echo("test", render_results(tests_path, results, verbose=not quiet), color)
        failed = failed or not all(r.passed for r in results)
    return 1 if failed else 0
