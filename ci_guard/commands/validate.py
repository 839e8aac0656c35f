"""`ci-guard validate`: schema errors and lint findings of one or more policy files."""

from __future__ import annotations

import click

from ci_guard.commands._color import color_option

EPILOG = """\b
Examples:
  ci-guard validate policies/default.yml
  ci-guard validate --strict policies/*.yml

\b
Prints file:line:column: field: problem for every error and warning (unreachable rules, undefined
budgets, tiers or teams). --strict also warns about allow rules without limits.max_cost_usd (their
runs are capped only by what the budgets have left). Exit status: 0 valid, 1 only warnings with
--strict, 2 errors.
"""


@click.command(epilog=EPILOG)
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--strict", is_flag=True,
              help="Also warn about allow rules without a cost cap; treat warnings as failures (exit 1).")
@color_option
def validate(files: tuple[str, ...], strict: bool, color: str) -> int:
    """Validate and lint policy files."""
    from ci_guard.commands._color import echo
    from ci_guard.policy.validate import validate_file

    errors = warnings = 0
    for path in files:
        report = validate_file(path, strict=strict)
        if report.skipped:
            click.echo(f"{path}: {report.skipped}")
            continue
        for problem in report.errors:
            echo("validate", problem.render(), color, err=True)
        for problem in report.warnings:
            rendered = problem.render().replace(": ", ": warning: ", 1) if problem.line else problem.render()
            echo("validate", rendered, color, err=True)
        errors += len(report.errors)
        warnings += len(report.warnings)
        if not report.errors:
            echo("validate", f"{path}: ok ({report.rules} rules" + (f", {len(report.warnings)} warnings)"
                                                                   if report.warnings else ")"), color)
    if errors:
        return 2
    return 1 if strict and warnings else 0
